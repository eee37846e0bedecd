"""Control plane settings: flags and ``ACTIVETRACE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["ControlPlaneSettings"]


class ControlPlaneSettings(BaseSettings):
    """Everything the control plane process can be told; each field is ``ACTIVETRACE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="ACTIVETRACE_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///var/activetrace.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    host: str | None = Field(
        default=None,
        description="Address the API, cluster and OTLP listeners bind to. Default: 0.0.0.0 "
        "when an admin token is set, 127.0.0.1 otherwise.",
    )
    api_port: int = Field(default=8001, ge=0, le=65535)
    cluster_port: int = Field(default=8005, ge=0, le=65535)
    otlp_grpc_port: int = Field(default=4317, ge=0, le=65535)
    admin_token: SecretStr | None = None
    cluster_token: SecretStr | None = None
    cluster_cert: Path | None = None
    cluster_key: Path | None = None
    cluster_ca: Path | None = None
    retention_days: float = Field(default=7.0, gt=0)
    retention_interval_secs: float = Field(default=60.0, gt=0, description="How often to purge")
    heartbeat_interval_secs: float = Field(default=10.0, gt=0)
    forward_otlp_endpoint: str | None = Field(
        default=None,
        pattern=r"^(https?|grpcs?)://",
        description="Send every stored span on: http(s)://host:4318/v1/traces or grpc://host:4317",
    )
    forward_max_queued_spans: int = Field(default=100_000, ge=100)
    log_level: str = "info"
    log_format: str = Field(default="json", pattern="^(json|text)$")

    def bind_host(self) -> str:
        """The listen address: loopback unless an admin token protects the API."""
        if self.host:
            return self.host
        return "0.0.0.0" if self.admin_token else "127.0.0.1"
