"""Run the control plane: API (uvicorn), cluster gRPC and background tasks in one event loop."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import grpc
import sqlalchemy.exc
import uvicorn
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from controlplane.app import create_app
from controlplane.cluster.messages import add_cluster_service
from controlplane.cluster.servicer import ClusterServicer
from controlplane.db.engine import Database
from controlplane.db.migrate import upgrade
from controlplane.otlp.grpc_service import OtlpTraceService
from controlplane.settings import ControlPlaneSettings
from controlplane.state import ControlPlane
from controlplane.tasks import start_background_tasks
from dataplane.serving import EmbeddedServer, stop_on_signals

__all__ = ["migrate_with_retry", "serve"]

log = logging.getLogger(__name__)


def _unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database is not (yet) there, as opposed to a real error."""
    if isinstance(exc, OSError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sqlalchemy.exc.InterfaceError | sqlalchemy.exc.OperationalError):
        return True
    cause = exc.__cause__ or getattr(exc, "orig", None)
    if isinstance(
        cause,
        asyncpg.InvalidCatalogNameError
        | asyncpg.CannotConnectNowError
        | asyncpg.PostgresConnectionError,
    ):
        return True
    return cause is not None and cause is not exc and _unreachable(cause)


async def migrate_with_retry(
    db: Database,
    *,
    revision: str = "head",
    attempts: int | None = 30,
    max_delay: float = 10.0,
) -> None:
    """Upgrade the schema, waiting with backoff for a database that is not up yet.

    ``attempts=None`` retries forever (the server, which reports unhealthy meanwhile).
    """
    delay = 0.5
    attempt = 0
    while True:
        attempt += 1
        try:
            await upgrade(db, revision)
            return
        except Exception as exc:
            if not _unreachable(exc):
                raise
            if attempts is not None and attempt >= attempts:
                raise RuntimeError(
                    f"database unreachable after {attempts} attempts: {exc}"
                ) from exc
            log.warning(
                "database not reachable (attempt %d): %s; retrying in %.1fs", attempt, exc, delay
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)


def _cluster_credentials(settings: ControlPlaneSettings) -> grpc.ServerCredentials | None:
    if settings.cluster_cert is None or settings.cluster_key is None:
        return None
    ca = settings.cluster_ca.read_bytes() if settings.cluster_ca else None
    return grpc.ssl_server_credentials(
        [(settings.cluster_key.read_bytes(), settings.cluster_cert.read_bytes())],
        root_certificates=ca,
        require_client_auth=ca is not None,
    )


class _Running:
    """What starts once the database is ready, and how to stop it."""

    def __init__(
        self, grpc_servers: list[grpc.aio.Server], tasks: list[asyncio.Task[None]]
    ) -> None:
        self.grpc_servers = grpc_servers
        self.tasks = tasks

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for grpc_server in self.grpc_servers:
            await grpc_server.stop(grace=1.0)


async def _start_when_ready(cp: ControlPlane, host: str) -> _Running:
    settings = cp.settings
    await migrate_with_retry(cp.db, attempts=None)
    grpc_server = grpc.aio.server()
    add_cluster_service(ClusterServicer(cp).Connect, grpc_server)
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
    running = _Running([grpc_server, otlp_server], start_background_tasks(cp))
    cp.ready.set()
    log.info("control plane ready")
    return running


async def serve(settings: ControlPlaneSettings) -> None:
    """Serve until SIGINT/SIGTERM, then shut everything down."""
    cp = ControlPlane(settings=settings, db=Database(settings.database_url))
    host = settings.bind_host()
    if settings.admin_token is None and settings.host is None:
        log.warning("no ACTIVETRACE_ADMIN_TOKEN set: listening on loopback (127.0.0.1) only")
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
    # The API answers at once (``/healthz`` says 503 until the database is migrated); the
    # cluster and OTLP endpoints and background work start once it is.
    started = asyncio.create_task(_start_when_ready(cp, host))
    try:
        await server.serve()
    finally:
        started.cancel()
        endpoints = await asyncio.gather(started, return_exceptions=True)
        cp.registry.close_all()
        if isinstance(endpoints[0], _Running):
            await endpoints[0].stop()
        await cp.db.dispose()
        log.info("control plane stopped")
