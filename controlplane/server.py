"""Run the control plane: API (uvicorn), cluster gRPC and background tasks in one event loop."""

from __future__ import annotations

import asyncio
import logging

import grpc
import uvicorn
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from controlplane.app import create_app
from controlplane.cluster.servicer import ClusterServicer
from controlplane.db.engine import Database
from controlplane.db.migrate import upgrade
from controlplane.otlp.grpc_service import OtlpTraceService
from controlplane.settings import ControlPlaneSettings
from controlplane.state import ControlPlane
from controlplane.tasks import start_background_tasks
from dataplane.serving import EmbeddedServer, stop_on_signals
from protos.activetrace.cluster.v1 import cluster_pb2_grpc as pb_grpc

__all__ = ["migrate_with_retry", "serve"]

log = logging.getLogger(__name__)


async def migrate_with_retry(
    db: Database, *, revision: str = "head", attempts: int = 30, max_delay: float = 10.0
) -> None:
    """Upgrade the schema, waiting with backoff for a database that is not up yet."""
    delay = 0.5
    for attempt in range(1, attempts + 1):
        try:
            await upgrade(db, revision)
            return
        except (OSError, ConnectionError) as exc:
            error: Exception = exc
        except Exception as exc:  # drivers raise their own connection errors
            if "connect" not in str(exc).lower() and "refused" not in str(exc).lower():
                raise
            error = exc
        log.warning(
            "database not reachable (attempt %d/%d): %s; retrying in %.1fs",
            attempt,
            attempts,
            error,
            delay,
        )
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
    raise RuntimeError(f"database at {db.url!r} unreachable after {attempts} attempts")


def _cluster_credentials(settings: ControlPlaneSettings) -> grpc.ServerCredentials | None:
    if settings.cluster_cert is None or settings.cluster_key is None:
        return None
    ca = settings.cluster_ca.read_bytes() if settings.cluster_ca else None
    return grpc.ssl_server_credentials(
        [(settings.cluster_key.read_bytes(), settings.cluster_cert.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


async def serve(settings: ControlPlaneSettings) -> None:
    """Serve until SIGINT/SIGTERM, then shut everything down."""
    cp = ControlPlane(settings=settings, db=Database(settings.database_url))
    host = settings.bind_host()
    if settings.admin_token is None and settings.host is None:
        log.warning("no ACTIVETRACE_ADMIN_TOKEN set: listening on loopback (127.0.0.1) only")
    await migrate_with_retry(cp.db)
    grpc_server = grpc.aio.server()
    pb_grpc.add_ClusterServiceServicer_to_server(ClusterServicer(cp), grpc_server)
    credentials = _cluster_credentials(settings)
    address = f"{host}:{settings.cluster_port}"
    if credentials is not None:
        grpc_server.add_secure_port(address, credentials)
    else:
        grpc_server.add_insecure_port(address)
    await grpc_server.start()
    log.info("cluster endpoint listening on %s (tls=%s)", address, credentials is not None)
    otlp_server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        OtlpTraceService(cp.otlp_receiver), otlp_server
    )
    otlp_address = f"{host}:{settings.otlp_grpc_port}"
    otlp_server.add_insecure_port(otlp_address)
    await otlp_server.start()
    log.info("OTLP gRPC receiver listening on %s", otlp_address)
    tasks = start_background_tasks(cp)
    config = uvicorn.Config(
        create_app(cp),
        host=host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    server = EmbeddedServer(config)
    stop_on_signals([server])
    try:
        await server.serve()
    finally:
        cp.registry.close_all()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await grpc_server.stop(grace=1.0)
        await otlp_server.stop(grace=1.0)
        await cp.db.dispose()
        log.info("control plane stopped")
