"""Fixtures for the Kubernetes glue: a fake API server and a real client pointed at it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers.fake_apiserver import FakeApiServer

from l2agent.kube.convert import new_api_client


@pytest.fixture
def apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer() as api:
        yield api
        # Every Event names its object by uid, or `kubectl describe` never shows it.
        assert api.events_with_wrong_uid() == []


@pytest.fixture
def api_client(apiserver: FakeApiServer) -> Iterator[client.ApiClient]:
    c = new_api_client(None, host=apiserver.url)
    yield c
    c.close()
