"""Kubernetes glue: watches, status and Event writers, Lease leader election.

The adapters are I/O around the pure model: objects travel as plain dicts in the API's JSON
shape, exactly what `build_state` reads in static mode too. `heartbeat` and `ratelimit` are
their pure helpers; import modules, not this package, so those stay importable without I/O.
"""
