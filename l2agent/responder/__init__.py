"""Responder: pure ``decide`` (answer or drop reason) and the kernel BPF program.

The AF_PACKET loop lives in ``l2agent.responder.loop`` and is not imported here, so
importing this package stays free of sockets and event loops.
"""

from l2agent.responder.decide import (
    Drop,
    DropReason,
    InterfaceView,
    Owned,
    Reply,
    ReplyKind,
    decide,
)

__all__ = ["Drop", "DropReason", "InterfaceView", "Owned", "Reply", "ReplyKind", "decide"]
