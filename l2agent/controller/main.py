"""`l2agent controller`: command line -> a running Controller, its HTTP endpoint and signals."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from prometheus_client import CollectorRegistry

from l2agent.controller.runner import Controller, ControllerConfig

__all__ = ["run_controller"]

log = logging.getLogger(__name__)


def run_controller(args: Any) -> int:
    """`l2agent controller`: run until SIGTERM/SIGINT; 0 on a clean stop.

    Reads `args.kubeconfig` ('-' or None in a pod: in-cluster), `args.namespace`,
    `args.identity` (pod name), `args.lb_class`, `args.metrics_addr`, `args.log_level`,
    and optionally `args.lease_name`.
    """
    from l2agent import logs
    from l2agent.health import HealthServer, parse_metrics_addr
    from l2agent.kube.convert import new_api_client

    logs.setup(getattr(args, "log_level", "info") or "info")
    identity = getattr(args, "identity", None)
    if not identity:
        import socket

        identity = socket.gethostname()
    config = ControllerConfig(
        namespace=args.namespace,
        identity=identity,
        lb_class=getattr(args, "lb_class", None) or None,
        lease_name=getattr(args, "lease_name", None) or "l2agent-controller",
    )
    try:
        api = new_api_client(getattr(args, "kubeconfig", None))
    except Exception as exc:
        log.error("cannot configure the Kubernetes client: %s", exc)
        return 1
    registry = CollectorRegistry()
    controller = Controller(api, config, registry=registry)
    try:
        host, port = parse_metrics_addr(
            getattr(args, "metrics_addr", "") or "", getattr(args, "metrics_port", 7472)
        )
    except ValueError as exc:
        log.error("bad --metrics-addr: %s", exc)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        server = HealthServer(
            registry,
            host=host,
            port=port,
            ready=lambda: controller.ready,
            live=controller.stuck,
        )
        await server.start()
        controller.start()
        try:
            await stop.wait()
        finally:
            await loop.run_in_executor(None, controller.stop)
            await server.close()

    asyncio.run(main())
    return 0
