"""The gateway config: versions in SQL, validation with the data plane's own models, pushing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.cluster.registry import NodeRegistry
from controlplane.db.models import GatewayConfigVersion
from controlplane.errors import Conflict, Invalid
from controlplane.schemas import ErrorDetail
from dataplane.gateway_config import ConfigError, GatewayConfig
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = [
    "CurrentConfig",
    "config_message",
    "current_config",
    "save_config",
    "save_if_changed",
    "validate_config",
]


class CurrentConfig:
    """The newest config version with its validated model."""

    def __init__(self, version: int, hash_: str, config: GatewayConfig) -> None:
        self.version = version
        self.hash = hash_
        self.config = config


_EMPTY = GatewayConfig()


async def current_config(db: AsyncSession) -> CurrentConfig:
    """The newest stored config (version 0, empty, when none was ever applied)."""
    row = await db.scalar(
        select(GatewayConfigVersion).order_by(GatewayConfigVersion.version.desc()).limit(1)
    )
    if row is None:
        return CurrentConfig(0, _EMPTY.content_hash(), _EMPTY)
    config = GatewayConfig.model_validate({**row.body, "version": row.version})
    return CurrentConfig(row.version, row.hash, config)


def validate_config(
    body: dict[str, Any], *, loc_prefix: tuple[str | int, ...] = ()
) -> GatewayConfig:
    """Validate a whole normalised config; every problem is a 422 naming entity and field."""
    try:
        return GatewayConfig.load(body)
    except ConfigError as exc:
        raise Invalid.at([*loc_prefix, *exc.loc], exc.message) from None
    except ValidationError as exc:
        errors = [
            ErrorDetail(loc=[*loc_prefix, *error["loc"]], message=error["msg"])
            for error in exc.errors(include_url=False)
        ]
        raise Invalid(f"invalid config: {errors[0].message}", errors) from None


async def save_config(
    db: AsyncSession,
    registry: NodeRegistry,
    config: GatewayConfig,
    *,
    change: str,
    now: datetime,
    expected_version: int,
) -> CurrentConfig:
    """Store ``config`` as the next version and push it to every connected node.

    ``expected_version`` is the version the change was based on: a concurrent change makes the
    insert conflict (409) instead of silently losing one of the two.
    """
    version = expected_version + 1
    body = config.model_dump(mode="json")
    body.pop("version")
    hash_ = config.content_hash()
    db.add(
        GatewayConfigVersion(version=version, hash=hash_, body=body, created_at=now, change=change)
    )
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        raise Conflict("the config changed concurrently; retry the request") from None
    stored = config.model_copy(update={"version": version})
    registry.broadcast(config_message(version, hash_, stored))
    return CurrentConfig(version, hash_, stored)


async def save_if_changed(
    db: AsyncSession,
    registry: NodeRegistry,
    config: GatewayConfig,
    *,
    current: CurrentConfig,
    change: str,
    now: datetime,
) -> CurrentConfig:
    """Store ``config`` as the version after ``current`` unless their content is equal."""
    if config.content_hash() == current.hash:
        return current
    return await save_config(
        db, registry, config, change=change[:255], now=now, expected_version=current.version
    )


def config_message(version: int, hash_: str, config: GatewayConfig) -> pb.CpMessage:
    """The ConfigSnapshot a node receives."""
    return pb.CpMessage(
        config=pb.ConfigSnapshot(version=version, hash=hash_, config_json=config.to_json())
    )
