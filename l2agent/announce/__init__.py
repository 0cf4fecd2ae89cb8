"""Announcer: when to send gratuitous ARP / unsolicited NA rounds (``schedule``).

The socket side (``l2agent.announce.sender``) is not imported here, so this package stays
sans-IO.
"""

from l2agent.announce.schedule import AnnounceConfig, AnnounceSchedule, Due

__all__ = ["AnnounceConfig", "AnnounceSchedule", "Due"]
