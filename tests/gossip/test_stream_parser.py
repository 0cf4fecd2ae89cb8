"""The incremental stream parser: same result however the bytes arrive, bounded work per
step, and refusals as soon as a header declares too much (issue 11, item 3)."""

from __future__ import annotations

import gc
import itertools
import os
import random
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossip._lzw import LzwDecoder, lzw_compress, lzw_decompress
from gossip.codec import encode_stream_message
from gossip.errors import DecryptFailed, MalformedMessage, MalformedReason
from gossip.framing import WireOptions, seal_stream
from gossip.keyring import Keyring
from gossip.messages import Message, NodeState, PushNodeState, PushPull, UserMsg
from gossip.stream_parser import (
    STATE_COST,
    WORK_LZW_IN,
    WORK_STATE,
    StreamLimits,
    StreamMessage,
    StreamParser,
)

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))


def _nonce() -> Callable[[int], bytes]:
    counter = itertools.count()
    return lambda n: next(counter).to_bytes(n, "big")


def _push_pull(n: int, user: bytes = b"user") -> PushPull:
    states = tuple(
        PushNodeState(
            f"node-{i:05d}",
            bytes([10, 0, i >> 8 & 255, i & 255]),
            7946,
            b"",
            i + 1,
            NodeState.ALIVE,
        )
        for i in range(n)
    )
    return PushPull(join=True, states=states, user_state=user)


def _sealed(msg: Message, opts: WireOptions, compress: bool) -> bytes:
    return seal_stream(encode_stream_message(msg), opts, _nonce(), dialer=True, compress=compress)


def _parse(
    data: bytes, opts: WireOptions, chunk: int, budget: int, limits: StreamLimits | None = None
) -> tuple[StreamMessage, int, int]:
    """Feed in `chunk`-byte pieces, stepping with `budget` until done; (message, steps,
    largest single step's work)."""
    parser = StreamParser(opts, expect_label=True, limits=limits)
    steps = biggest = 0
    got = None
    for i in range(0, len(data), chunk):
        parser.feed(data[i : i + chunk])
        while True:
            got = parser.step(budget)
            steps += 1
            biggest = max(biggest, parser.spent)
            if got is not None or not parser.has_work:
                break
        if got is not None:
            break
    assert got is not None
    return got, steps, biggest


CASES = {
    "plain": (WireOptions(), False),
    "compressed": (WireOptions(), True),
    "encrypted": (WireOptions(keyring=Keyring((KEY,))), False),
    "encrypted+compressed+label": (WireOptions(label=b"lab", keyring=Keyring((KEY,))), True),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 30])
def test_any_split_of_the_bytes_gives_the_same_message(case: str, chunk: int) -> None:
    opts, compress = CASES[case]
    msg = _push_pull(300 if chunk > 1 else 40)
    got, _, _ = _parse(_sealed(msg, opts, compress), opts, chunk, 1 << 30)
    assert got.message == msg
    assert (got.encrypted, got.compressed) == (opts.keyring is not None, compress)


@pytest.mark.parametrize("case", CASES)
def test_a_large_push_pull_is_spread_over_bounded_steps(case: str) -> None:
    opts, compress = CASES[case]
    msg = _push_pull(5000)
    data = _sealed(msg, opts, compress)
    budget = 8192
    got, steps, biggest = _parse(data, opts, len(data), budget)
    assert got.message == msg
    assert steps > 20, "the work was spread over many steps"
    # a step may overshoot its budget by one unit of work at most (one state, one LZW code)
    assert biggest <= budget + max(WORK_STATE, 4096 + WORK_LZW_IN)


def test_a_user_message_and_its_trailer_arrive_in_pieces() -> None:
    msg = UserMsg(os.urandom(100_000))
    got, _, _ = _parse(_sealed(msg, WireOptions(), True), WireOptions(), 999, 4096)
    assert got.message == msg


def test_an_oversized_envelope_is_refused_at_its_header() -> None:
    opts = WireOptions(keyring=Keyring((KEY,)))
    parser = StreamParser(opts, expect_label=False, limits=StreamLimits(max_bytes=1 << 20))
    parser.feed(b"\x0a" + (20 << 20).to_bytes(4, "big"))
    with pytest.raises(MalformedMessage) as info:
        parser.step(1 << 20)
    assert info.value.reason is MalformedReason.TOO_LARGE
    assert parser.held == 0


def test_an_envelope_is_held_as_it_arrives_and_opened_only_when_whole() -> None:
    opts = WireOptions(keyring=Keyring((KEY,)))
    data = _sealed(_push_pull(2000), opts, False)
    parser = StreamParser(opts, expect_label=True)
    parser.feed(data[:-1])
    assert parser.step(1 << 30) is None
    assert parser.held >= len(data) - 100  # buffered, not yet authenticated or parsed
    parser.feed(data[-1:])
    got = parser.step(1 << 30)
    assert got is not None and got.encrypted


def test_an_envelope_under_an_older_key_opens_and_a_tampered_one_does_not() -> None:
    old = WireOptions(keyring=Keyring((OTHER,)))
    data = _sealed(_push_pull(10), old, True)
    both = WireOptions(keyring=Keyring((KEY, OTHER)))
    assert _parse(data, both, len(data), 1 << 30)[0].message == _push_pull(10)
    tampered = bytearray(data)
    tampered[-3] ^= 1
    with pytest.raises(DecryptFailed):
        _parse(bytes(tampered), both, len(data), 1 << 30)


def test_parsed_states_are_charged_to_held() -> None:
    data = _sealed(_push_pull(1000), WireOptions(), False)
    parser = StreamParser(WireOptions(), expect_label=True)
    parser.feed(data[: len(data) * 3 // 4])
    parser.step(1 << 30)
    assert parser.held >= 700 * STATE_COST


def test_a_push_pull_declaring_more_states_than_allowed_is_refused() -> None:
    data = _sealed(_push_pull(50), WireOptions(), False)
    with pytest.raises(MalformedMessage) as info:
        _parse(data, WireOptions(), len(data), 1 << 30, StreamLimits(max_states=10))
    assert info.value.reason is MalformedReason.TOO_LARGE


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x09\x82\xa4Algo\x01\xa3Buf\xc4\x01\x00", MalformedReason.BAD_COMPRESSION),
        (b"\x09\x91\x00", MalformedReason.BAD_FIELD_TYPE),
        (b"\x09\x81\xa3Buf\x01", MalformedReason.BAD_FIELD_TYPE),
        (b"\x09\x81\xa3Buf\xa3\x00\x01\x02", MalformedReason.BAD_COMPRESSION),
        (b"\x04\x80", MalformedReason.UNKNOWN_TYPE),
        (b"\xf4\x00", MalformedReason.BAD_LABEL),
    ],
)
def test_bad_streams_table(data: bytes, reason: MalformedReason) -> None:
    parser = StreamParser(WireOptions(), expect_label=True)
    parser.feed(data)
    with pytest.raises(MalformedMessage) as info:
        parser.step(1 << 20)
        parser.eof()
    assert info.value.reason is reason


def test_lzw_decodes_in_slices_exactly_like_whole() -> None:
    rng = random.Random(7)
    for size in (0, 1, 100, 5000, 70_000):
        data = bytes(rng.choice(b"abcdefgh") for _ in range(size))
        packed = lzw_compress(data)
        decoder = LzwDecoder(1 << 20)
        out = bytearray()
        pos = 0
        while not decoder.done:
            piece, used = decoder.decode(packed[pos : pos + rng.randint(1, 50)], 300)
            out += piece
            pos += used
        assert bytes(out) == data == lzw_decompress(packed, 1 << 20)


SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STEP_CPU_LIMIT = 0.05
"""Generous bound on one step's CPU time (a loaded 2-core CI machine); typically < 3 ms."""


@SETTINGS
@given(st.binary(max_size=4000), st.integers(1, 512), st.sampled_from(list(CASES)))
def test_fuzz_no_step_takes_long(data: bytes, chunk: int, case: str) -> None:
    opts, _ = CASES[case]
    parser = StreamParser(opts, expect_label=True)
    worst = 0.0
    try:
        for i in range(0, len(data), chunk):
            parser.feed(data[i : i + chunk])
            gc.disable()  # collector pauses depend on the process's heap, not the input
            t = time.process_time()
            parser.step(65536)
            worst = max(worst, time.process_time() - t)
            gc.enable()
    except MalformedMessage:
        pass
    assert worst < STEP_CPU_LIMIT


def test_a_zip_bomb_costs_bounded_steps() -> None:
    bomb = bytes(30 << 20)
    data = seal_stream(
        encode_stream_message(UserMsg(bomb[: 8 << 20])), WireOptions(), _nonce(), dialer=True
    )
    parser = StreamParser(WireOptions(), expect_label=True)
    parser.feed(data)
    worst = 0.0
    for _ in range(5000):
        gc.disable()
        t = time.process_time()
        got = parser.step(65536)
        worst = max(worst, time.process_time() - t)
        gc.enable()
        if got is not None:
            break
    assert got is not None and got.message == UserMsg(bomb[: 8 << 20])
    assert worst < STEP_CPU_LIMIT
