"""Run Alembic migrations from code (the CP runs ``upgrade head`` at start)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from controlplane.db.engine import Database

__all__ = ["alembic_config", "downgrade", "upgrade"]


def _script_location() -> Path:
    package_dir = Path(__file__).resolve().parent.parent
    # Installed wheels carry the migrations inside the package; a checkout has them at the root.
    for candidate in (package_dir / "migrations", package_dir.parent / "migrations"):
        if (candidate / "env.py").exists():
            return candidate
    raise FileNotFoundError("Alembic migrations directory not found")


def alembic_config(url: str, connection: Connection | None = None) -> Config:
    """An Alembic config for ``url``; with ``connection``, migrations run on it."""
    config = Config()
    config.set_main_option("script_location", str(_script_location()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` in one transaction (PostgreSQL) or step by step."""
    async with db.engine.begin() as conn:
        await conn.run_sync(
            lambda sync_conn: command.upgrade(alembic_config(db.url, sync_conn), revision)
        )


async def downgrade(db: Database, revision: str) -> None:
    """Downgrade the schema to ``revision``."""
    async with db.engine.begin() as conn:
        await conn.run_sync(
            lambda sync_conn: command.downgrade(alembic_config(db.url, sync_conn), revision)
        )
