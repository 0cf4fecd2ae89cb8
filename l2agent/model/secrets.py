"""Secrets a BGPPeer's `passwordSecret` names, reduced to the one key MetalLB reads.

MetalLB takes a peer's TCP MD5 password from a Secret of type `kubernetes.io/basic-auth`,
key `password`, in its own namespace.  This view keeps only that key (no other data of any
Secret is held) wrapped in `Password`, whose `repr`/`str` never show it, so a password can
cross logs, exceptions and `repr(state)` without leaking.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from l2agent.errors import ConfigError
from l2agent.model import _meta

__all__ = ["BASIC_AUTH", "PASSWORD_KEY", "Password", "SecretView", "check_password"]

BASIC_AUTH = "kubernetes.io/basic-auth"
PASSWORD_KEY = "password"
#: Linux's TCP_MD5SIG_MAXKEYLEN: a longer key cannot be installed on the socket.
MAX_PASSWORD_BYTES = 80


@dataclass(frozen=True, slots=True)
class Password:
    """A TCP MD5 password; `reveal()` is the only way to read it (the renderer's)."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Password(<redacted>)"

    __str__ = __repr__


def check_password(text: str, where: str) -> Password:
    """A password FRR can hold on one config line: printable ASCII, no spaces, <= 80 bytes.

    Messages never include the password itself.
    """
    if not text:
        raise ConfigError(f"{where}: the password is empty")
    if len(text.encode()) > MAX_PASSWORD_BYTES:
        raise ConfigError(f"{where}: the password is longer than {MAX_PASSWORD_BYTES} bytes")
    if not all("!" <= ch <= "~" for ch in text):
        raise ConfigError(
            f"{where}: the password has a space, a control or a non-ASCII character "
            "(FRR reads it as one word of printable ASCII)"
        )
    return Password(text)


@dataclass(frozen=True, slots=True)
class SecretView:
    """A v1 Secret as a peer password source: its type and its `password` key, if any.

    `problem` says why the key cannot be used (bad base64, not UTF-8); it is reported only
    when a BGPPeer refers to this Secret.
    """

    name: str
    namespace: str
    type: str = "Opaque"
    password: Password | None = None
    problem: str | None = None

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> SecretView:
        name, ns, _, _ = _meta.metadata(obj, default_namespace="default")
        where = f"Secret {ns}/{name}"
        stype = obj.get("type") or "Opaque"
        if not isinstance(stype, str):
            raise ConfigError(f"{where}: type must be a string")
        password: Password | None = None
        problem: str | None = None
        string_data = _meta.mapping(obj.get("stringData"), f"{where}: stringData")
        data = _meta.mapping(obj.get("data"), f"{where}: data")
        try:
            if PASSWORD_KEY in string_data:
                password = check_password(_text(string_data[PASSWORD_KEY]), where)
            elif PASSWORD_KEY in data:
                password = check_password(_decode(data[PASSWORD_KEY]), where)
        except ConfigError as exc:
            problem = exc.message
        return cls(name=name, namespace=ns, type=stype, password=password, problem=problem)


def _text(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigError("stringData.password is not a string")
    return raw


def _decode(raw: Any) -> str:
    if not isinstance(raw, str):
        raise ConfigError("data.password is not a base64 string")
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ConfigError("data.password is not valid base64 of UTF-8 text") from None
