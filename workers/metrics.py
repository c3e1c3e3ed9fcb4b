"""Prometheus endpoints of the mysqlops processes (docs/observability.md lists what each shows).

Each process serves its own `prometheus-client` registry on `--metrics-address`; the worker also
gets the Temporal SDK's endpoint, served by the SDK's core from the `Runtime` made here and
handed to its client (never set as the process default: shared code must not depend on it).
"""

import argparse
import os
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from workers.errors import UsageError

log = structlog.get_logger()

WORKER = "127.0.0.1:9464"
WORKER_SDK = "127.0.0.1:9463"
WATCHER = "127.0.0.1:9465"


def split_address(text: str) -> tuple[str, int] | None:
    """`host:port` -> (host, port); "" or a missing port -> None: the endpoint is off."""
    host, _, port = text.strip().rpartition(":")
    if not port:
        return None
    try:
        number = int(port)
    except ValueError:
        raise UsageError(f"metrics address {text!r}: the port is not a number") from None
    if not 0 <= number <= 65535:
        raise UsageError(f"metrics address {text!r}: the port must be 0-65535")
    return host or "0.0.0.0", number


def _address(text: str) -> str:
    """argparse's check of an address flag (a bad one: exit 2 with the reason)."""
    try:
        split_address(text)
    except UsageError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def address_flags(
    parser: argparse.ArgumentParser, default: str, sdk_default: str | None = None
) -> None:
    """`--metrics-address` (and the worker's `--sdk-metrics-address`), with their variables."""
    parser.add_argument(
        "--metrics-address",
        type=_address,
        default=os.environ.get("MYSQLOPS_METRICS_ADDRESS", default),
        metavar="HOST:PORT",
        help=f"Prometheus endpoint (default {default}; MYSQLOPS_METRICS_ADDRESS; port 0: any "
        "free port; empty: none)",
    )
    if sdk_default is not None:
        parser.add_argument(
            "--sdk-metrics-address",
            type=_address,
            default=os.environ.get("MYSQLOPS_SDK_METRICS_ADDRESS", sdk_default),
            metavar="HOST:PORT",
            help=f"the Temporal SDK's Prometheus endpoint (default {sdk_default}; "
            "MYSQLOPS_SDK_METRICS_ADDRESS; empty: none)",
        )


@dataclass
class Endpoint:
    """A running `prometheus-client` HTTP server."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    @property
    def address(self) -> str:
        host = self.server.server_address[0]
        return f"{host.decode() if isinstance(host, bytes) else host}:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(address: str, registry: CollectorRegistry = REGISTRY) -> Endpoint | None:
    """Serve `registry` on `address`; None when the address turns it off, or when the port is
    taken (said in the log: a worker or an agent matters more than its metrics)."""
    parsed = split_address(address)
    if parsed is None:
        return None
    host, port = parsed
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as error:
        log.error("metrics not served", address=address, error=error.strerror)
        return None
    return Endpoint(server, thread)


def sdk_runtime(address: str) -> Runtime | None:
    """A Temporal SDK runtime serving its metrics on `address`, names by Prometheus
    conventions (`_total`, `_seconds`); None when the address turns it off."""
    parsed = split_address(address)
    if parsed is None:
        return None
    host, port = parsed
    config = PrometheusConfig(
        bind_address=f"{host}:{port}",
        counters_total_suffix=True,
        unit_suffix=True,
        durations_as_seconds=True,
    )
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=config))
    except Exception as error:  # the core's "Address already in use"
        log.error("Temporal SDK metrics not served", address=address, error=str(error)[:200])
        return None
