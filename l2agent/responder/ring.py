"""Memory-mapped packet rings (PACKET_RX_RING / PACKET_TX_RING, TPACKET_V2) on one socket.

Receiving through a ring costs no system call per frame: the kernel writes each frame that
passes the filter into the next free slot of a buffer shared with us and flips the slot's
status; we read every slot marked ours, hand it back, and poll only when the ring is empty.
Sending through a ring is the same the other way: replies are written into slots marked
"send", and one ``send()`` (MSG_DONTWAIT) pushes the whole batch out.

TPACKET_V2, not V3: a V3 block reaches user space only when it is full or its retire timer
(at least 1 ms) fires, so at a quiet 10,000 requests/s every answer waits for the timer; V2
slots are ours as soon as the kernel has written them, and under load we still read many
per wake-up. ``bench/ring_versions.py`` (results in ``bench/results/ring_versions.json``),
minimal readers at 10,000 frames/s: a frame waits 7 µs (p50) / 43 µs (p99) in a V2 ring,
175 / 538 µs in a V3 ring, which would take half of the 1 ms p99 budget. Under a full-rate
flood the V3 reader costs less per frame (0.7 µs against 9 µs: one wake-up per block, not
per frame); the responder's flood cost is mostly answering and sending (~5 µs a request),
so V2's latency won. A V3 ring is the next step if floods must be answered at kernel rate.

Memory ordering: the kernel publishes a slot's status after its data (``smp_wmb``); we read
the status, then copy the data out, then write the status back. The copy happens thousands
of instructions after the status load in the interpreter, far beyond any reordering window.
"""

from __future__ import annotations

import mmap
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RingConfig", "RingSocket"]

SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
PACKET_TX_RING = 13
TPACKET_V2 = 1

TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_AVAILABLE = 0
TP_STATUS_SEND_REQUEST = 1
TP_STATUS_WRONG_FORMAT = 4
PACKET_OUTGOING = 4

_REQ = struct.Struct("=IIII")  # struct tpacket_req: block size, blocks, frame size, frames
_HDR = struct.Struct("=IIIHHIIHH")  # struct tpacket2_hdr (without the trailing padding)
_STATUS = struct.Struct("=I")
_TX_LEN = struct.Struct("=II")  # tp_len, tp_snaplen
_STATS = struct.Struct("=II")  # struct tpacket_stats: packets, drops
_HDR_ALIGNED = 32  # TPACKET_ALIGN(sizeof(struct tpacket2_hdr))
_PKTTYPE = _HDR_ALIGNED + 10  # sockaddr_ll.sll_pkttype follows the header
_TX_DATA = _HDR_ALIGNED  # TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)
_ZERO = _STATUS.pack(TP_STATUS_KERNEL)
_SEND = _STATUS.pack(TP_STATUS_SEND_REQUEST)


@dataclass(frozen=True, slots=True)
class RingConfig:
    """Ring sizes: 1.1 MiB per interface by default, about 30 ms of a 130,000 frames/s
    flood (longer than the data path ever rests: ``DataPathBudget.window``)."""

    rx_frames: int = 4096
    """Receive slots; a flood beyond what we read in time is dropped (and counted) by the
    kernel, never queued without bound."""
    tx_frames: int = 512
    """Send slots: several wake-ups' replies (``DataPathBudget.frames_per_wakeup``)."""
    frame_size: int = 256
    """Bytes per slot, header included: room for 190 bytes of frame (ARP is 60, an NS
    with a link-layer option 86); longer frames are cut and judged malformed."""
    block_size: int = 1 << 16
    """The kernel allocates the ring in blocks of this many bytes (a page multiple)."""

    def __post_init__(self) -> None:
        if self.frame_size % 16 or self.frame_size < 128:
            raise ValueError("frame_size must be a multiple of 16, at least 128")
        if self.block_size % mmap.PAGESIZE or self.block_size % self.frame_size:
            raise ValueError("block_size must be a page multiple holding whole frames")
        per_block = self.block_size // self.frame_size
        for n in (self.rx_frames, self.tx_frames):
            if n < per_block or n % per_block:
                raise ValueError(f"ring sizes must be multiples of {per_block} frames")


class RingSocket:
    """An RX and a TX ring on ``sock`` (an AF_PACKET socket not yet bound).

    Set up before ``bind`` so no frame is queued outside the ring. ``exchange`` reads what
    the kernel handed over and queues the replies; ``queue`` queues one frame; ``flush``
    sends everything queued.
    """

    def __init__(self, sock: socket.socket, config: RingConfig | None = None) -> None:
        self.config = cfg = config or RingConfig()
        self._sock = sock
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        for option, frames in ((PACKET_RX_RING, cfg.rx_frames), (PACKET_TX_RING, cfg.tx_frames)):
            blocks = frames * cfg.frame_size // cfg.block_size
            sock.setsockopt(
                SOL_PACKET, option, _REQ.pack(cfg.block_size, blocks, cfg.frame_size, frames)
            )
        self._rx_bytes = cfg.rx_frames * cfg.frame_size
        size = self._rx_bytes + cfg.tx_frames * cfg.frame_size
        self._mm = mmap.mmap(sock.fileno(), size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self._rx_next = 0
        self._tx_next = 0
        self._tx_queued = 0
        self.tx_full = 0
        """Replies not sent because every send slot was still in flight."""

    def close(self) -> None:
        self._mm.close()

    def exchange(self, budget: int, respond: Callable[[bytes, int | None], bytes | None]) -> int:
        """Read up to ``budget`` frames; queue ``respond(frame, vid)``'s reply for each, if
        any, for the next :meth:`flush`. Returns how many replies found no free send slot.

        ``read`` and ``queue`` fused into one loop: this is the flood path.
        """
        mm = self._mm
        cfg = self.config
        size = cfg.frame_size
        count = cfg.rx_frames
        tx_base = self._rx_bytes
        tx_count = cfg.tx_frames
        room = size - _TX_DATA
        index = self._rx_next
        tx_index = self._tx_next
        unpack = _HDR.unpack_from
        status_of = _STATUS.unpack_from
        pack_len = _TX_LEN.pack_into
        queued = unsent = 0
        for _ in range(budget):
            base = index * size
            status, _len, snaplen, mac, _net, _sec, _nsec, tci, _tpid = unpack(mm, base)
            if not status & TP_STATUS_USER:
                break
            start = base + mac
            frame = mm[start : start + snaplen]
            outgoing = mm[base + _PKTTYPE] == PACKET_OUTGOING
            mm[base : base + 4] = _ZERO
            index = index + 1 if index + 1 < count else 0
            if outgoing:
                continue
            reply = respond(frame, tci & 0x0FFF if status & TP_STATUS_VLAN_VALID else None)
            if reply is None:
                continue
            slot = tx_base + tx_index * size
            tx_status = status_of(mm, slot)[0]
            if (tx_status != TP_STATUS_AVAILABLE and tx_status != TP_STATUS_WRONG_FORMAT) or len(
                reply
            ) > room:
                unsent += 1
                continue
            mm[slot + _TX_DATA : slot + _TX_DATA + len(reply)] = reply
            pack_len(mm, slot + 4, len(reply), len(reply))
            mm[slot : slot + 4] = _SEND
            tx_index = tx_index + 1 if tx_index + 1 < tx_count else 0
            queued += 1
        self._rx_next = index
        self._tx_next = tx_index
        self._tx_queued += queued
        self.tx_full += unsent
        return unsent

    def queue(self, frame: bytes) -> bool:
        """Put ``frame`` in the next send slot; False when that slot is still in flight."""
        cfg = self.config
        if len(frame) > cfg.frame_size - _TX_DATA:
            raise ValueError(f"frame of {len(frame)} bytes does not fit a send slot")
        mm = self._mm
        base = self._rx_bytes + self._tx_next * cfg.frame_size
        status = _STATUS.unpack_from(mm, base)[0]
        if status != TP_STATUS_AVAILABLE and status != TP_STATUS_WRONG_FORMAT:
            self.tx_full += 1
            return False
        mm[base + _TX_DATA : base + _TX_DATA + len(frame)] = frame
        _TX_LEN.pack_into(mm, base + 4, len(frame), len(frame))
        mm[base : base + 4] = _SEND
        self._tx_next = self._tx_next + 1 if self._tx_next + 1 < cfg.tx_frames else 0
        self._tx_queued += 1
        return True

    def flush(self) -> int:
        """Send every queued frame with one system call (not waiting for completion)."""
        queued, self._tx_queued = self._tx_queued, 0
        if queued:
            self._sock.send(b"", socket.MSG_DONTWAIT)
        return queued

    def drops(self) -> int:
        """Frames the kernel dropped since the last call because the receive ring was full."""
        raw = self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _STATS.size)
        return int(_STATS.unpack(raw)[1])
