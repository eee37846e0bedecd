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
config_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Gateway config tools.")
app.add_typer(config_app, name="config")
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
    forward_otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            help="Forward stored spans: http(s)://host:4318/v1/traces or grpc://host:4317"
        ),
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
            forward_otlp_endpoint=forward_otlp_endpoint,
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
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            help="Export the service's own spans (OTel SDK, OTLP/gRPC), e.g. http://127.0.0.1:4317"
        ),
    ] = None,
) -> None:
    """Run the demo upstream service (fixed, slow, erroring and streaming endpoints)."""
    import uvicorn

    from controlplane.demo.upstream import create_app

    app: Any = create_app()
    provider = None
    if otlp_endpoint:
        from controlplane.demo.telemetry import TracingMiddleware, tracer_provider

        provider = tracer_provider(otlp_endpoint)
        app = TracingMiddleware(app, provider)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        if provider is not None:
            provider.shutdown()


@app.command()
def healthcheck(
    url: Annotated[
        str | None,
        typer.Argument(
            help="URL that must answer 2xx [env ACTIVETRACE_HEALTHCHECK_URL; default: CP /healthz]"
        ),
    ] = None,
) -> None:
    """Exit 0 when ``url`` answers 2xx (the container HEALTHCHECK)."""
    import urllib.error
    import urllib.request

    target = url or os.environ.get("ACTIVETRACE_HEALTHCHECK_URL", "http://127.0.0.1:8001/healthz")
    try:
        with urllib.request.urlopen(target, timeout=3) as response:  # any body: only status counts
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        typer.echo(f"unhealthy: {exc}", err=True)
        raise typer.Exit(1) from None
    if not 200 <= status < 300:
        typer.echo(f"unhealthy: HTTP {status}", err=True)
        raise typer.Exit(1)


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


def _admin_headers(token: str | None) -> dict[str, str]:
    token = token or os.environ.get("ACTIVETRACE_ADMIN_TOKEN")
    return {"authorization": f"Bearer {token}"} if token else {}


def _put_config(api: str, document: dict[str, Any], token: str | None) -> None:
    from controlplane.launcher import http_json, wait_until

    url = f"{api.rstrip('/')}/api/v1/config"
    wait_until(
        lambda: http_json("GET", f"{api.rstrip('/')}/healthz")[0] == 200, what=api, timeout=60
    )
    status, body = http_json("PUT", url, document, headers=_admin_headers(token))
    if status != 200:
        typer.echo(f"config rejected ({status}): {body}", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"config version {body['version']} ({'changed' if body['changed'] else 'unchanged'})"
    )


@config_app.command("apply")
def config_apply(
    file: Annotated[Path, typer.Argument(help="Declarative config, YAML or JSON (decK-style)")],
    api: Annotated[str, typer.Option(help="Control plane API URL")] = "http://127.0.0.1:8001",
    token: Annotated[
        str | None, typer.Option(help="Admin token [env ACTIVETRACE_ADMIN_TOKEN]")
    ] = None,
) -> None:
    """Replace the gateway config with FILE (validated as a whole, applied atomically)."""
    import yaml

    try:
        document = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        typer.echo(f"cannot read {file}: {exc}", err=True)
        raise typer.Exit(1) from None
    _put_config(api, document or {}, token)


@config_app.command("demo")
def config_demo(
    api: Annotated[str, typer.Option(help="Control plane API URL")] = "http://127.0.0.1:8001",
    upstream_url: Annotated[
        str, typer.Option(help="Where the demo upstream listens")
    ] = "http://127.0.0.1:9000",
    token: Annotated[
        str | None, typer.Option(help="Admin token [env ACTIVETRACE_ADMIN_TOKEN]")
    ] = None,
) -> None:
    """Apply the quick start's demo config (service ``demo``, routes ``demo`` and ``orders``)."""
    from controlplane.demo.config import demo_config

    _put_config(api, demo_config(upstream_url), token)


@app.command()
def export(
    session_id: Annotated[str, typer.Argument(help="Tracing session ID")],
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write")],
    api: Annotated[str, typer.Option(help="Control plane API URL")] = "http://127.0.0.1:8001",
    format: Annotated[str, typer.Option(help="json (OTLP/JSON) or protobuf")] = "json",
    token: Annotated[
        str | None, typer.Option(help="Admin token [env ACTIVETRACE_ADMIN_TOKEN]")
    ] = None,
) -> None:
    """Download every trace of a session as OTLP (importable into any OTel backend)."""
    import httpx
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    if format not in ("json", "protobuf"):
        typer.echo("--format must be json or protobuf", err=True)
        raise typer.Exit(2)
    accept = "application/x-protobuf" if format == "protobuf" else "application/json"
    headers = {"accept": accept, **_admin_headers(token)}
    base = api.rstrip("/")
    try:
        with httpx.Client(headers=headers, timeout=60) as client:
            session = client.get(f"{base}/api/v1/tracing-sessions/{session_id}")
            if session.status_code != 200:
                typer.echo(f"cannot export: {session.status_code} {session.text}", err=True)
                raise typer.Exit(1)
            traces = session.json()["samples"]
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
            )
            with (
                Progress(*columns, transient=False) as progress,
                client.stream(
                    "GET", f"{base}/api/v1/tracing-sessions/{session_id}/otlp"
                ) as response,
                output.open("wb") as file,
            ):
                response.raise_for_status()
                task = progress.add_task(f"session {session_id[:8]} ({traces} traces)", total=None)
                for chunk in response.iter_bytes():
                    file.write(chunk)
                    progress.update(task, advance=len(chunk))
    except httpx.HTTPError as exc:
        typer.echo(f"cannot export: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"wrote {output} ({output.stat().st_size} bytes, OTLP {format})")


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
