"""Data plane node settings: flags and ``ACTIVETRACE_*`` environment variables."""

from __future__ import annotations

import socket
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DataPlaneSettings"]


class DataPlaneSettings(BaseSettings):
    """Everything a node can be told; each field is ``ACTIVETRACE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ACTIVETRACE_", extra="ignore")

    node_id: str = Field(
        default_factory=socket.gethostname,
        description="Stable ID sessions target (default: the host name)",
    )
    control_plane: str = Field(default="127.0.0.1:8005", description="Cluster gRPC host:port")
    cluster_token: SecretStr | None = None
    cluster_cert: Path | None = Field(default=None, description="Client certificate (mTLS)")
    cluster_key: Path | None = None
    cluster_ca: Path | None = Field(default=None, description="CA that signed the CP's certificate")
    cluster_server_name: str | None = Field(
        default=None, description="TLS name to verify on the CP certificate"
    )
    proxy_host: str = "0.0.0.0"
    proxy_port: int = Field(default=8000, ge=0, le=65535)
    status_host: str = "127.0.0.1"
    status_port: int = Field(default=8100, ge=0, le=65535)
    cache_dir: Path = Field(
        default=Path("var/dataplane"), description="Where the config cache lives"
    )
    labels: dict[str, str] = Field(default_factory=dict)
    heartbeat_interval_secs: float = Field(default=10.0, gt=0)
    max_queued_spans: int = Field(default=50_000, ge=100)
    # Span export's batches (OpenTelemetry's batch span processor has the same two knobs): a
    # batch is sent when it holds this many spans, or after this interval, whichever is first.
    # At most 8,192 spans (~1.9 MB): the control plane takes messages of up to 4 MB.
    export_batch_spans: int = Field(default=2048, ge=1, le=8192)
    export_flush_interval_secs: float = Field(default=0.2, gt=0, le=60)
    tracing: bool = Field(
        default=True,
        description="False ignores every session (a baseline for measuring tracing's cost)",
    )
    # Client connections (nginx's names): idle keep-alive, a request head from its first byte,
    # a request body and a response between two moves of data.
    client_keepalive_timeout_secs: float = Field(default=5.0, gt=0)
    client_header_timeout_secs: float = Field(default=60.0, gt=0)
    client_body_timeout_secs: float = Field(default=60.0, gt=0)
    client_send_timeout_secs: float = Field(default=60.0, gt=0)
    log_level: str = "info"
    log_format: str = Field(default="json", pattern="^(json|text)$")

    @property
    def cache_file(self) -> Path:
        """The cached config of this node."""
        return self.cache_dir / f"{self.node_id}.config.json"
