"""The ``activetrace`` command: run the control plane, nodes, the demo, or all of them."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dataplane.cli import dataplane as dataplane_command

__all__ = ["app"]

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="activetrace: an API gateway with on-demand deep tracing.",
)
db_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Database schema tools.")
app.add_typer(db_app, name="db")
app.command(name="dataplane")(dataplane_command)


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@app.command()
def controlplane(
    database_url: Annotated[
        str | None,
        typer.Option(
            help="SQLAlchemy URL [env ACTIVETRACE_DATABASE_URL; default sqlite+aiosqlite:///var/activetrace.db]"
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Listen address [default 127.0.0.1, or 0.0.0.0 with an admin token]"),
    ] = None,
    api_port: Annotated[
        int | None, typer.Option(help="HTTP API + viewer port [default 8001]")
    ] = None,
    cluster_port: Annotated[
        int | None, typer.Option(help="Cluster gRPC port [default 8005]")
    ] = None,
    otlp_grpc_port: Annotated[
        int | None, typer.Option(help="OTLP gRPC receiver port [default 4317]")
    ] = None,
    admin_token: Annotated[
        str | None, typer.Option(help="Bearer token for the API [env ACTIVETRACE_ADMIN_TOKEN]")
    ] = None,
    cluster_token: Annotated[
        str | None, typer.Option(help="Token nodes must present [env ACTIVETRACE_CLUSTER_TOKEN]")
    ] = None,
    cluster_cert: Annotated[
        Path | None, typer.Option(help="Server certificate for the cluster endpoint (TLS)")
    ] = None,
    cluster_key: Annotated[
        Path | None, typer.Option(help="Server key for the cluster endpoint (TLS)")
    ] = None,
    cluster_ca: Annotated[
        Path | None, typer.Option(help="CA for client certificates (mutual TLS)")
    ] = None,
    retention_days: Annotated[
        float | None, typer.Option(help="Keep sessions and traces this long [default 7]")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error")] = None,
    log_format: Annotated[str | None, typer.Option(help="json or text")] = None,
) -> None:
    """Run the control plane: API and viewer, cluster endpoint, OTLP receiver."""
    from controlplane.settings import ControlPlaneSettings
    from dataplane.logs import setup_logging

    settings = ControlPlaneSettings(
        **_given(
            database_url=database_url,
            host=host,
            api_port=api_port,
            cluster_port=cluster_port,
            otlp_grpc_port=otlp_grpc_port,
            admin_token=admin_token,
            cluster_token=cluster_token,
            cluster_cert=cluster_cert,
            cluster_key=cluster_key,
            cluster_ca=cluster_ca,
            retention_days=retention_days,
            log_level=log_level,
            log_format=log_format,
        )
    )
    setup_logging("controlplane", level=settings.log_level, fmt=settings.log_format)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from controlplane.server import serve

    asyncio.run(serve(settings))


@app.command("demo-upstream")
def demo_upstream(
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port")] = 9000,
) -> None:
    """Run the demo upstream service (fixed, slow, erroring and streaming endpoints)."""
    import uvicorn

    from controlplane.demo.upstream import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="warning", access_log=False)


@db_app.command("upgrade")
def db_upgrade(
    database_url: Annotated[
        str | None, typer.Option(help="SQLAlchemy URL [env ACTIVETRACE_DATABASE_URL]")
    ] = None,
    revision: Annotated[str, typer.Option(help="Target revision")] = "head",
) -> None:
    """Upgrade the database schema (the control plane also does this at start)."""
    from controlplane.db.engine import Database
    from controlplane.server import migrate_with_retry
    from controlplane.settings import ControlPlaneSettings
    from dataplane.logs import setup_logging

    settings = ControlPlaneSettings(**_given(database_url=database_url))
    setup_logging("db", fmt="text")

    async def run() -> None:
        db = Database(settings.database_url)
        try:
            await migrate_with_retry(db, revision=revision)
        finally:
            await db.dispose()

    asyncio.run(run())
    typer.echo(f"database at revision {revision}")


@app.command()
def up(
    base_dir: Annotated[Path, typer.Option(help="Where the SQLite database and caches go")] = Path(
        "var"
    ),
    api_port: Annotated[int, typer.Option(help="Control plane API port")] = 8001,
    cluster_port: Annotated[int, typer.Option(help="Control plane cluster port")] = 8005,
    otlp_grpc_port: Annotated[int, typer.Option(help="OTLP gRPC receiver port")] = 4317,
    dp_ports: Annotated[str, typer.Option(help="Proxy ports of dp-1,dp-2")] = "8000,8010",
    upstream_port: Annotated[int, typer.Option(help="Demo upstream port")] = 9000,
) -> None:
    """Start everything locally: control plane (SQLite), dp-1 and dp-2, the demo upstream."""
    from controlplane.up import run_local_stack

    ports = [int(p) for p in dp_ports.split(",") if p.strip()]
    code = run_local_stack(
        base_dir=base_dir,
        api_port=api_port,
        cluster_port=cluster_port,
        otlp_grpc_port=otlp_grpc_port,
        dp_ports=ports,
        upstream_port=upstream_port,
    )
    sys.exit(code)


def main() -> None:
    """Entry point of ``python -m controlplane`` (the control plane alone)."""
    typer.run(controlplane)


if __name__ == "__main__":
    app()
