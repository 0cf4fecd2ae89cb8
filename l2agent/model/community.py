"""BGP community values as MetalLB writes them: standard `A:B` and large `large:A:B:C`.

MetalLB's `internal/bgp/community`: a standard community is two 16-bit numbers, a large one
(RFC 8092) the marker `large` then three 32-bit numbers.  A string with the wrong number of
`:` parts is a *format* error (it may be the name of a Community alias that does not exist
yet, so MetalLB treats it as transient); a string with the right shape and a bad number is a
*value* error.  Order is MetalLB's `LessThan`: a standard community sorts as the large
community `(A<<16|B):0:0`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from l2agent.errors import ConfigError

__all__ = [
    "BGPCommunity",
    "CommunityFormatError",
    "CommunityKind",
    "parse_community",
]

_LARGE_MARKER = "large"
_U16 = 0xFFFF
_U32 = 0xFFFFFFFF


class CommunityKind(enum.Enum):
    """Standard (RFC 1997) or large (RFC 8092); `.value` is FRR's `set` keyword."""

    STANDARD = "community"
    LARGE = "large-community"


class CommunityFormatError(ConfigError):
    """Not `A:B` nor `large:A:B:C` (perhaps an alias whose Community object is missing)."""


@dataclass(frozen=True, slots=True, order=False)
class BGPCommunity:
    """One community: `parts` is (A, B) for a standard one, (A, B, C) for a large one."""

    kind: CommunityKind
    parts: tuple[int, ...]

    def __post_init__(self) -> None:
        width, limit = (2, _U16) if self.kind is CommunityKind.STANDARD else (3, _U32)
        if len(self.parts) != width or not all(0 <= p <= limit for p in self.parts):
            raise ConfigError(f"invalid {self.kind.value} {self.parts!r}")

    @property
    def is_large(self) -> bool:
        return self.kind is CommunityKind.LARGE

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """MetalLB's `LessThan`: standard A:B compares as large (A<<16|B):0:0."""
        if self.kind is CommunityKind.STANDARD:
            return ((self.parts[0] << 16) | self.parts[1], 0, 0)
        return (self.parts[0], self.parts[1], self.parts[2])

    def __str__(self) -> str:
        """`A:B` or `A:B:C` (large without its marker), as MetalLB's `String()` and FRR print it."""
        return ":".join(str(p) for p in self.parts)

    @property
    def spec_text(self) -> str:
        """The spelling a BGPAdvertisement uses: `A:B` or `large:A:B:C`."""
        return f"{_LARGE_MARKER}:{self}" if self.is_large else str(self)


def _number(text: str, limit: int, whole: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ConfigError(f"invalid community value {whole!r}: {text!r} is not a number")
    value = int(text)
    if value > limit:
        raise ConfigError(f"invalid community value {whole!r}: {value} is larger than {limit}")
    return value


def parse_community(text: str) -> BGPCommunity:
    """`A:B` (16-bit each) or `large:A:B:C` (32-bit each).

    Raises `CommunityFormatError` for another shape and `ConfigError` for bad numbers.
    """
    if not isinstance(text, str):
        raise ConfigError(f"invalid community {text!r}: not a string")
    fields = text.split(":")
    if len(fields) == 2:
        return BGPCommunity(CommunityKind.STANDARD, tuple(_number(f, _U16, text) for f in fields))
    if len(fields) == 4:
        if fields[0] != _LARGE_MARKER:
            raise ConfigError(
                f"invalid community value {text!r}: a large community is "
                f"{_LARGE_MARKER}:<uint32>:<uint32>:<uint32>"
            )
        return BGPCommunity(CommunityKind.LARGE, tuple(_number(f, _U32, text) for f in fields[1:]))
    raise CommunityFormatError(
        f"invalid community format {text!r} (expected A:B, large:A:B:C or a Community alias)"
    )
