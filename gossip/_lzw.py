"""LZW as Go's compress/lzw does it with LSB order and 8-bit literals (the GIF flavour).

memberlist compresses with it (EnableCompression is on in every Go preset), so we must
decode it; we can also encode it byte-for-byte like Go's writer. Codes: 0-255 literals,
256 clear, 257 end; width 9..12 bits, packed least significant bit first; the width grows as
soon as the next code to assign reaches 1 << width; the writer clears at code 4095.

Decoding is resumable (`LzwDecoder`): a stream's compressed bytes are decoded a slice at a
time, so one call never costs more than the slice it was given (a code can expand to ~4 KiB,
so callers bound the output of a slice too).
"""

from __future__ import annotations

from gossip.errors import MalformedMessage, MalformedReason

__all__ = ["LzwDecoder", "lzw_compress", "lzw_decompress"]

_CLEAR = 256
_EOF = 257
_MAX_WIDTH = 12
_MAX_CODE = (1 << _MAX_WIDTH) - 1


def _bad(detail: str) -> MalformedMessage:
    return MalformedMessage(MalformedReason.BAD_COMPRESSION, detail)


class LzwDecoder:
    """Decode one LZW stream in slices; `done` once the end code has been read.

    `max_size` bounds the total output (TOO_LARGE past it). Bytes after the end code are
    ignored, as Go's reader ignores them.
    """

    __slots__ = (
        "_acc",
        "_hi",
        "_last",
        "_nbits",
        "_overflow",
        "_table",
        "_width",
        "done",
        "max_size",
        "produced",
    )

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.produced = 0
        self.done = False
        self._table: list[bytes] = [bytes([i]) for i in range(256)] + [b"", b""]
        self._width = 9
        self._hi = _EOF  # the next code to assign, once a previous code exists
        self._overflow = 1 << 9
        self._last: bytes | None = None
        self._acc = 0
        self._nbits = 0

    def decode(self, data: bytes | memoryview, max_out: int) -> tuple[bytes, int]:
        """Decode from `data` until about `max_out` bytes came out (or the end code).

        Returns (output, bytes of `data` consumed); the caller keeps the rest for later.
        """
        if self.done:
            return b"", len(data)
        out = bytearray()
        table = self._table
        width, hi, overflow, last = self._width, self._hi, self._overflow, self._last
        acc, nbits = self._acc, self._nbits
        mask = (1 << width) - 1
        consumed = len(data)
        for i, byte in enumerate(data):
            acc |= byte << nbits
            nbits += 8
            if nbits < width:
                continue
            code = acc & mask
            acc >>= width
            nbits -= width
            if code == _CLEAR:
                del table[258:]
                width, hi, overflow, last, mask = 9, _EOF, 1 << 9, None, 511
                continue
            if code == _EOF:
                self.done = True
                break
            if code < _CLEAR or code < len(table):
                entry = table[code]
            elif code == len(table) and last is not None:
                entry = last + last[:1]  # the KwKwK case
            else:
                raise _bad(f"invalid code {code}")
            out += entry
            if last is not None:
                table.append(last + entry[:1])
            last = entry
            hi += 1
            if hi >= overflow:
                if width == _MAX_WIDTH:
                    last = None  # table full: no new entries until a clear code
                    hi -= 1
                else:
                    width += 1
                    overflow = 1 << width
                    mask = overflow - 1
            if len(out) >= max_out:
                consumed = i + 1
                break
        self._width, self._hi, self._overflow, self._last = width, hi, overflow, last
        self._acc, self._nbits = acc, nbits
        self._account(len(out))
        return bytes(out), len(data) if self.done else consumed

    def _account(self, n: int) -> None:
        self.produced += n
        if self.produced > self.max_size:
            raise MalformedMessage(
                MalformedReason.TOO_LARGE, f"decompressed size passes {self.max_size}"
            )


def lzw_decompress(data: bytes, max_size: int) -> bytes:
    """Decode a whole LZW stream that ends with the end code; refuse output past max_size."""
    decoder = LzwDecoder(max_size)
    out, _ = decoder.decode(data, max_size + 1)
    if not decoder.done:
        raise _bad("stream ends without an end code")
    return out


def lzw_compress(data: bytes) -> bytes:
    """Encode like Go's lzw.NewWriter(w, lzw.LSB, 8): same codes, same bits, same padding."""
    out = bytearray()
    acc = 0
    nbits = 0
    width = 9
    hi = _EOF
    overflow = 1 << width
    table: dict[int, int] = {}

    def write(code: int) -> None:
        nonlocal acc, nbits
        acc |= code << nbits
        nbits += width
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8

    def inc_hi() -> bool:
        """Go's incHi; False when the codes ran out and the table was cleared."""
        nonlocal hi, width, overflow
        hi += 1
        if hi == overflow:
            width += 1
            overflow <<= 1
        if hi == _MAX_CODE:
            write(_CLEAR)
            width, hi, overflow = 9, _EOF, 1 << 9
            table.clear()
            return False
        return True

    write(_CLEAR)
    if data:
        code = data[0]
        for literal in data[1:]:
            key = code << 8 | literal
            found = table.get(key)
            if found is not None:
                code = found
                continue
            write(code)
            code = literal
            if inc_hi():
                table[key] = hi
        write(code)
        inc_hi()
    write(_EOF)
    if nbits > 0:
        out.append(acc & 0xFF)
    return bytes(out)
