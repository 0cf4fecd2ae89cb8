"""BGP mode: which prefixes go to which peers, rendered as frr.conf and applied to FRR.

Pure modules (sans-IO): ``plan`` (MetalLB's rule: every eligible node announces, per peer,
with its attributes), ``frr_config`` (the plan as one frr.conf, shaped like MetalLB's FRR
mode), ``frr_state`` (FRR's JSON -> typed session/BFD values), ``reload_outcome`` (reload
results and the rules the reloader decides by). Thin adapters (asyncio child processes):
``reload`` (``FrrReloader``: apply a text to FRR) and ``frr_poll`` (``FrrStatePoller``).
This ``__init__`` imports nothing, so importing a pure module never pulls an adapter in.
"""
