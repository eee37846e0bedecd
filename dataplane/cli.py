"""``activetrace dataplane`` / ``python -m dataplane``: run a gateway node."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["app", "dataplane"]

app = typer.Typer(add_completion=False, help="Run an activetrace data plane node.")


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@app.command()
def dataplane(
    node_id: Annotated[
        str | None,
        typer.Option(help="Node ID sessions target [env ACTIVETRACE_NODE_ID; default: host name]"),
    ] = None,
    control_plane: Annotated[
        str | None,
        typer.Option(help="Control plane cluster address host:port [default 127.0.0.1:8005]"),
    ] = None,
    cluster_token: Annotated[
        str | None, typer.Option(help="Cluster token [env ACTIVETRACE_CLUSTER_TOKEN]")
    ] = None,
    cluster_cert: Annotated[
        Path | None, typer.Option(help="Client certificate for mutual TLS")
    ] = None,
    cluster_key: Annotated[Path | None, typer.Option(help="Client key for mutual TLS")] = None,
    cluster_ca: Annotated[
        Path | None, typer.Option(help="CA certificate that signed the control plane's")
    ] = None,
    cluster_server_name: Annotated[
        str | None, typer.Option(help="Name to verify on the CP certificate")
    ] = None,
    proxy_host: Annotated[
        str | None, typer.Option(help="Proxy listen address [default 0.0.0.0]")
    ] = None,
    proxy_port: Annotated[int | None, typer.Option(help="Proxy port [default 8000]")] = None,
    status_host: Annotated[
        str | None, typer.Option(help="Status listen address [default 127.0.0.1]")
    ] = None,
    status_port: Annotated[
        int | None, typer.Option(help="Status port (/status, /metrics) [default 8100]")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Config cache directory [default var/dataplane]")
    ] = None,
    log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error")] = None,
    log_format: Annotated[str | None, typer.Option(help="json or text")] = None,
) -> None:
    """Run a data plane node: proxy traffic, apply config from the CP, trace sessions."""
    from dataplane.logs import setup_logging
    from dataplane.settings import DataPlaneSettings

    settings = DataPlaneSettings(
        **_given(
            node_id=node_id,
            control_plane=control_plane,
            cluster_token=cluster_token,
            cluster_cert=cluster_cert,
            cluster_key=cluster_key,
            cluster_ca=cluster_ca,
            cluster_server_name=cluster_server_name,
            proxy_host=proxy_host,
            proxy_port=proxy_port,
            status_host=status_host,
            status_port=status_port,
            cache_dir=cache_dir,
            log_level=log_level,
            log_format=log_format,
        )
    )
    setup_logging(settings.node_id, level=settings.log_level, fmt=settings.log_format)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    import uvloop

    from dataplane.node import serve

    uvloop.run(serve(settings))
    raise typer.Exit(0)


def main() -> None:
    """Entry point of ``python -m dataplane``."""
    app()
