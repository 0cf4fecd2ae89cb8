"""The memberlist Secret: the speakers' gossip key, created by the controller when missing.

The speaker DaemonSet mounts Secret `memberlist`, key `secretkey` (MetalLB's name and key, so
a Secret MetalLB created keeps working and a MetalLB speaker can read ours). The volume is
not optional on purpose: a speaker that started without the key would gossip in the clear
and split from the others. So someone must create it, and as in MetalLB that is the
controller: `ensure_memberlist_secret` reads the one name it may read and creates the
Secret if it is absent. Unlike MetalLB's, ours carries no ownerReference: uninstalling
either project must not garbage-collect the key the other's speakers use.

The value is what MetalLB's speaker turns into its AES-256 key: MetalLB appends
SHA-256("") to the secret text and keeps the first 32 bytes, so 32 characters of text fill
the key. We write 24 random bytes as base64 (32 characters, 192 bits); MetalLB's
controller writes 16 (22 characters plus padding from the digest, 128 bits).
"""

from __future__ import annotations

import base64
import enum
import logging
import os
from collections.abc import Callable
from typing import Any

from kubernetes import client

from l2agent.kube.convert import api_failure, call, call_json

__all__ = [
    "MEMBERLIST_KEY",
    "MEMBERLIST_SECRET",
    "SecretOutcome",
    "ensure_memberlist_secret",
    "memberlist_secret_body",
    "new_secret_text",
]

log = logging.getLogger(__name__)

MEMBERLIST_SECRET = "memberlist"
MEMBERLIST_KEY = "secretkey"
_RANDOM_BYTES = 24


class SecretOutcome(enum.Enum):
    PRESENT = "present"  # there already (ours, MetalLB's, or the user's)
    CREATED = "created"
    FAILED = "failed"  # could not tell or could not create: try again later


def new_secret_text(random_bytes: bytes) -> str:
    """The `secretkey` text from random bytes: base64, 32 characters for 24 bytes."""
    return base64.b64encode(random_bytes).decode("ascii")


def memberlist_secret_body(namespace: str, name: str, text: str) -> dict[str, Any]:
    """The Secret to create (no ownerReferences: see the module docstring)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "l2agent"},
            "annotations": {
                "l2agent.io/created-by": "l2agent controller: memberlist gossip key",
            },
        },
        "data": {MEMBERLIST_KEY: base64.b64encode(text.encode("ascii")).decode("ascii")},
    }


def ensure_memberlist_secret(
    api: client.ApiClient,
    namespace: str,
    name: str = MEMBERLIST_SECRET,
    *,
    token: Callable[[int], bytes] = os.urandom,
    request_timeout: float = 10.0,
) -> SecretOutcome:
    """Create the Secret if it does not exist. Needs `get` on that one name and `create`
    on secrets in the namespace; never reads any other Secret, never changes one."""
    core = client.CoreV1Api(api)
    try:
        existing = call_json(
            core.read_namespaced_secret, name, namespace, _request_timeout=request_timeout
        )
    except Exception as exc:
        failure = api_failure(exc)
        if not failure.not_found:
            log.warning("Secret %s/%s: cannot read it: %s", namespace, name, failure.message)
            return SecretOutcome.FAILED
    else:
        if MEMBERLIST_KEY not in (existing.get("data") or {}):
            log.error(
                "Secret %s/%s has no key %r: speakers cannot mount it (recreate it)",
                namespace,
                name,
                MEMBERLIST_KEY,
            )
        return SecretOutcome.PRESENT
    body = memberlist_secret_body(namespace, name, new_secret_text(token(_RANDOM_BYTES)))
    try:
        call(core.create_namespaced_secret, namespace, body, _request_timeout=request_timeout)
    except Exception as exc:
        failure = api_failure(exc)
        if failure.conflict:  # the other replica was quicker
            return SecretOutcome.PRESENT
        log.warning("Secret %s/%s: cannot create it: %s", namespace, name, failure.message)
        return SecretOutcome.FAILED
    log.info("created Secret %s/%s (the speakers' gossip key)", namespace, name)
    return SecretOutcome.CREATED
