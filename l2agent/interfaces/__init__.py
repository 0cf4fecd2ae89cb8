"""Interfaces: the pure eligibility/selection rules and (in ``netlink``) the live inventory.

``l2agent.interfaces.netlink`` (pyroute2) is not imported here, so importing this package
stays free of I/O.
"""

from l2agent.interfaces.inventory import (
    DEFAULT_EXCLUDE,
    Family,
    Ineligible,
    Interface,
    desired_by_interface,
    eligible,
    ineligibility,
    missing_names,
    reannounce_needed,
    responder_interfaces,
    select,
)

__all__ = [
    "DEFAULT_EXCLUDE",
    "Family",
    "Ineligible",
    "Interface",
    "desired_by_interface",
    "eligible",
    "ineligibility",
    "missing_names",
    "reannounce_needed",
    "responder_interfaces",
    "select",
]
