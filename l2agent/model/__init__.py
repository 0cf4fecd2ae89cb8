"""l2agent.model: MetalLB's resources and the Kubernetes views the plans read, all pure.

Build a `ClusterState` with `build_state(objects)` from plain dicts (static YAML files or
objects the Kubernetes glue converted); every value here is a frozen dataclass.
"""

from l2agent.model.bgp import (
    BFDProfile,
    BGPAdvertisement,
    BGPPeer,
    CommunityAliases,
    DynamicASN,
    SecretRef,
    ServiceBGPStatus,
)
from l2agent.model.community import BGPCommunity, CommunityKind, parse_community
from l2agent.model.crds import (
    ALL_INTERFACES,
    InterfaceSelection,
    IPAddressPool,
    L2Advertisement,
    PreferredNodeSelector,
    ServiceAllocation,
    ServiceL2Status,
    parse_address_entry,
)
from l2agent.model.secrets import Password, SecretView
from l2agent.model.selectors import LabelSelector, Operator, Requirement
from l2agent.model.snapshot import BGP_KINDS, BuildResult, ClusterState, build_state
from l2agent.model.types import IPAddress
from l2agent.model.views import (
    EXCLUDE_LB_LABEL,
    Endpoint,
    EndpointSliceView,
    IPFamilyPolicy,
    NamespaceView,
    NodeView,
    Port,
    ServiceView,
    TrafficPolicy,
)

__all__ = [
    "ALL_INTERFACES",
    "BGP_KINDS",
    "EXCLUDE_LB_LABEL",
    "BFDProfile",
    "BGPAdvertisement",
    "BGPCommunity",
    "BGPPeer",
    "BuildResult",
    "ClusterState",
    "CommunityAliases",
    "CommunityKind",
    "DynamicASN",
    "Endpoint",
    "EndpointSliceView",
    "IPAddress",
    "IPAddressPool",
    "IPFamilyPolicy",
    "InterfaceSelection",
    "L2Advertisement",
    "LabelSelector",
    "NamespaceView",
    "NodeView",
    "Operator",
    "Password",
    "Port",
    "PreferredNodeSelector",
    "Requirement",
    "SecretRef",
    "SecretView",
    "ServiceAllocation",
    "ServiceBGPStatus",
    "ServiceL2Status",
    "ServiceView",
    "TrafficPolicy",
    "build_state",
    "parse_address_entry",
    "parse_community",
]
