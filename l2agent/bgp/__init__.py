"""BGP mode: which prefixes go to which peers, rendered as frr.conf and applied to FRR.

Pure modules (sans-IO): ``plan`` (MetalLB's rule: every eligible node announces, per peer,
with its attributes), ``frr_config`` (the plan as one frr.conf, shaped like MetalLB's FRR
mode), ``metrics`` (MetalLB's BGP/BFD metric names on an injected registry). This
``__init__`` imports nothing, so importing a pure module never pulls an adapter in.
"""
