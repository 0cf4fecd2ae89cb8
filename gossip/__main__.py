"""Run one gossip member and print its membership events as JSON lines.

    python -m gossip --name NAME --bind IP:PORT [--advertise IP:PORT] [--join IP:PORT ...]
                     [--key-file FILE] [--preset lan|wan|local|fast] [--label LABEL]

Each event is one line: {"event": "join"|"update"|"leave"|"fail", "node", "addr", "port",
"meta"} ("leave" is a graceful leave, "fail" a member declared dead); also "suspect",
"recover", "user" (a user message, hex "data") and "state" (push/pull user state). SIGTERM
or SIGINT leaves gracefully and exits 0. With --commands, stdin lines drive the member
(`members`, `send NAME HEX`, `sendudp NAME HEX`, `broadcast HEX`, `meta HEX`, `join IP:PORT`,
`leave`), which is how the interop tests use it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

from gossip import config as presets
from gossip.actions import Address
from gossip.addresses import GOSSIP_PORT, parse_address
from gossip.aio.runtime import GossipRuntime
from gossip.config import GossipConfig, with_settings
from gossip.errors import BadAddress, GossipError, LocalError
from gossip.events import (
    Event,
    MemberFailed,
    MemberJoined,
    MemberLeft,
    MemberRecovered,
    MemberSuspected,
    MemberUpdated,
    UserMessage,
)
from gossip.keyring import KEY_SIZES, Keyring, metallb_key

log = logging.getLogger("gossip")

_EVENT_NAMES: dict[type, str] = {
    MemberJoined: "join",
    MemberUpdated: "update",
    MemberLeft: "leave",
    MemberFailed: "fail",
    MemberSuspected: "suspect",
    MemberRecovered: "recover",
}


def _addr(text: str) -> Address:
    try:
        return parse_address(text, GOSSIP_PORT)
    except BadAddress as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def read_key(path: Path) -> bytes:
    """A key file holds the key as hex (32/48/64 digits) or as 16/24/32 raw bytes."""
    raw = path.read_bytes()
    text = raw.strip()
    if len(text) in (32, 48, 64):
        try:
            return bytes.fromhex(text.decode())
        except (UnicodeDecodeError, ValueError):
            pass
    if len(raw) in KEY_SIZES:
        return raw
    raise LocalError(f"{path}: want a 16/24/32-byte key, raw or hex")


def build_config(args: argparse.Namespace) -> GossipConfig:
    bind_ip, bind_port = args.bind
    adv_ip, adv_port = args.advertise if args.advertise else ("", 0)
    config = presets.PRESETS[args.preset](
        args.name,
        bind_addr=bind_ip,
        bind_port=bind_port,
        advertise_addr=adv_ip,
        advertise_port=adv_port,
        label=args.label,
    )
    return with_settings(config, args.set)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m gossip", description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True)
    p.add_argument("--bind", type=_addr, default=("0.0.0.0", GOSSIP_PORT), help="IP[:PORT]")
    p.add_argument("--advertise", type=_addr, help="IP[:PORT] others reach us at")
    p.add_argument("--join", type=_addr, nargs="+", default=[], action="extend")
    p.add_argument("--key-file", type=Path, help="AES key: hex or 16/24/32 raw bytes")
    p.add_argument("--metallb-secret-file", type=Path, help="derive the key as MetalLB does")
    p.add_argument("--preset", choices=sorted(presets.PRESETS), default="lan")
    p.add_argument("--label", default="")
    p.add_argument("--meta", default="", help="node metadata as hex (at most 512 bytes)")
    p.add_argument("--state", default="", help="push/pull user state as hex")
    p.add_argument("--set", action="append", default=[], help="any GossipConfig field: K=V")
    p.add_argument("--commands", action="store_true", help="read commands on stdin")
    p.add_argument("--leave-timeout", type=float, default=5.0)
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)


class _State:
    """Push/pull user state for the CLI: a fixed blob out, a printed line in."""

    def __init__(self, out: bytes) -> None:
        self._out = out

    def local_state(self, join: bool) -> bytes:
        return self._out

    def merge_remote_state(self, data: bytes, join: bool) -> None:
        _emit({"event": "state", "data": data.hex(), "join": join})


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _event_json(event: Event) -> dict[str, Any] | None:
    name = _EVENT_NAMES.get(type(event))
    if name is not None:
        member = event.member  # type: ignore[union-attr]
        return {
            "event": name,
            "node": member.name,
            "addr": member.addr,
            "port": member.port,
            "meta": member.meta.hex(),
        }
    if isinstance(event, UserMessage):
        return {"event": "user", "data": event.data.hex(), "reliable": event.reliable}
    return None


async def _print_events(runtime: GossipRuntime) -> None:
    while True:
        line = _event_json(await runtime.events.get())
        if line is not None:
            _emit(line)


async def _commands(runtime: GossipRuntime, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while not stop.is_set():
        raw = await reader.readline()
        if not raw:
            return
        words = raw.decode().split()
        if not words:
            continue
        verb = words[0]
        reply: dict[str, Any] = {"event": "done", "cmd": verb}
        try:
            if verb == "members":
                reply = {
                    "event": "members",
                    "members": [
                        {"node": m.name, "addr": m.addr, "port": m.port, "state": int(m.state)}
                        for m in runtime.members()
                    ],
                }
            elif verb in ("send", "sendudp"):
                target = runtime.engine.member(words[1])
                if target is None:
                    raise LocalError("no such member")
                runtime.send_user(
                    (target.addr, target.port), bytes.fromhex(words[2]), reliable=verb == "send"
                )
            elif verb == "broadcast":
                runtime.broadcast_user(bytes.fromhex(words[1]))
            elif verb == "meta":
                runtime.set_meta(bytes.fromhex(words[1] if len(words) > 1 else ""))
            elif verb == "join":
                done = await runtime.join([_addr(w) for w in words[1:]], timeout=30)
                reply["count"] = done.succeeded
            elif verb == "leave":
                stop.set()
                return
            else:
                raise LocalError("unknown command")
        except (TimeoutError, GossipError, ValueError, IndexError) as exc:
            reply["error"] = str(exc) or type(exc).__name__
        _emit(reply)


async def run(args: argparse.Namespace) -> int:
    config = build_config(args)
    keyring = None
    if args.key_file:
        keyring = Keyring((read_key(args.key_file),))
    elif args.metallb_secret_file:
        keyring = Keyring((metallb_key(args.metallb_secret_file.read_bytes()),))
    runtime = await GossipRuntime.start(
        config,
        meta=bytes.fromhex(args.meta),
        keyring=keyring,
        hooks=_State(bytes.fromhex(args.state)),
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    printer = loop.create_task(_print_events(runtime))
    tasks = [printer]
    _emit({"event": "ready", "node": config.name, "port": config.advertise[1]})
    if args.join:
        done = await runtime.join(args.join, timeout=config.tcp_timeout * len(args.join) + 5)
        _emit({"event": "joined", "count": done.succeeded})
    if args.commands:
        tasks.append(loop.create_task(_commands(runtime, stop)))
    started, cpu_start = time.monotonic(), _cpu()
    await stop.wait()
    left = await runtime.leave(args.leave_timeout)
    await asyncio.sleep(0)  # let the printer see the last events
    cpu = _cpu() - cpu_start
    elapsed = time.monotonic() - started
    _emit({"event": "stopped", "left": left, "cpu_seconds": cpu, "wall_seconds": elapsed})
    for task in tasks:
        task.cancel()
    await runtime.close()
    return 0


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    try:
        return asyncio.run(run(args))
    except (GossipError, OSError, ValueError) as exc:
        print(f"gossip: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
