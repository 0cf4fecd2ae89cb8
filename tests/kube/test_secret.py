"""The memberlist Secret: the leading controller creates it when missing (MetalLB's name and
key, no ownerReference) and leaves an existing one (say, MetalLB's) exactly as it is."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client

from gossip.keyring import metallb_key
from l2agent.controller.runner import Controller, ControllerConfig
from l2agent.kube.lease import LeaseConfig
from l2agent.kube.secret import (
    MEMBERLIST_KEY,
    MEMBERLIST_SECRET,
    SecretOutcome,
    ensure_memberlist_secret,
    new_secret_text,
)
from l2agent.kube.watch import WatchConfig

from ._util import wait_until

NS = "metallb-system"
CFG = ControllerConfig(
    namespace=NS,
    identity="pod-a",
    lease=LeaseConfig(lease_duration=2, renew_deadline=1, retry_period=0.05),
    watch=WatchConfig(backoff_initial=0.02, backoff_max=0.2),
    debounce=0.02,
)


def secret_text(obj: dict[str, Any]) -> str:
    return base64.b64decode(obj["data"][MEMBERLIST_KEY]).decode()


def test_controller_creates_the_memberlist_secret(
    apiserver: Any, api_client: client.ApiClient
) -> None:
    c = Controller(api_client, CFG).start()
    try:
        wait_until(lambda: apiserver.get("Secret", NS, MEMBERLIST_SECRET), what="Secret")
        wait_until(lambda: c.secret is SecretOutcome.CREATED, what="outcome")
    finally:
        c.stop()
    secret = apiserver.get("Secret", NS, MEMBERLIST_SECRET)
    # Nothing a MetalLB (or l2agent) uninstall would garbage-collect it with.
    assert not secret["metadata"].get("ownerReferences")
    text = secret_text(secret)
    assert len(text) == 32
    assert len(base64.b64decode(text)) == 24
    # What a MetalLB speaker (and ours) derives: the 32 characters are the whole key.
    assert metallb_key(text.encode()) == text.encode()
    # Only the leader wrote it, once.
    assert len(apiserver.requests_for("POST", "/secrets")) == 1


def test_an_existing_secret_is_left_alone(apiserver: Any, api_client: client.ApiClient) -> None:
    """Migrating from MetalLB: its Secret (owned by its controller Deployment) is used as
    is; we only read it."""
    metallbs = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": "memberlist",
            "namespace": NS,
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "Deployment", "name": "controller", "uid": "u"}
            ],
        },
        "data": {"secretkey": base64.b64encode(b"c2VjcmV0LWZyb20tbWV0YWxsYg").decode()},
    }
    before = apiserver.put(metallbs)
    c = Controller(api_client, CFG).start()
    try:
        wait_until(lambda: c.secret is SecretOutcome.PRESENT, what="checked")
    finally:
        c.stop()
    assert apiserver.get("Secret", NS, MEMBERLIST_SECRET) == before
    assert [r.method for r in apiserver.requests if "/secrets" in r.path] == ["GET"]


def test_ensure_reports_what_happened(apiserver: Any, api_client: client.ApiClient) -> None:
    apiserver.fail_next("GET", "/secrets/memberlist", 403)
    assert ensure_memberlist_secret(api_client, NS) is SecretOutcome.FAILED
    apiserver.fail_next("POST", "/secrets", 409)  # the other replica was quicker
    assert ensure_memberlist_secret(api_client, NS) is SecretOutcome.PRESENT
    assert ensure_memberlist_secret(api_client, NS, token=lambda n: bytes(n)) is (
        SecretOutcome.CREATED
    )
    assert secret_text(apiserver.get("Secret", NS, MEMBERLIST_SECRET)) == new_secret_text(bytes(24))
    assert ensure_memberlist_secret(api_client, NS) is SecretOutcome.PRESENT
