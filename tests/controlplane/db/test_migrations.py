"""Alembic migrations: from empty, from every revision, downgrade, twice, models in step."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from controlplane.db.engine import Database
from controlplane.db.migrate import alembic_config, downgrade, upgrade
from controlplane.db.models import Base

TABLES = {
    "nodes",
    "gateway_config_versions",
    "tracing_sessions",
    "session_targets",
    "traces",
    "spans",
}


def _revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(alembic_config(url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _differences(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


async def test_upgrade_from_empty_matches_the_models(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_tables) >= TABLES
            assert await conn.run_sync(_differences) == []
    finally:
        await db.dispose()


async def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    db = Database(database_url)
    try:
        await upgrade(db)
        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_current) == _revisions(database_url)[-1]
    finally:
        await db.dispose()


async def test_upgrade_from_every_revision(database_url: str) -> None:
    revisions = _revisions(database_url)
    for revision in revisions:
        db = Database(database_url)
        try:
            await downgrade(db, "base")
            await upgrade(db, revision)
            await upgrade(db)
            async with db.engine.connect() as conn:
                assert await conn.run_sync(_current) == revisions[-1]
        finally:
            await db.dispose()


async def test_downgrade_of_the_newest_revision(database_url: str) -> None:
    revisions = _revisions(database_url)
    db = Database(database_url)
    try:
        await upgrade(db)
        await downgrade(db, "-1")
        async with db.engine.connect() as conn:
            expected = revisions[-2] if len(revisions) > 1 else None
            assert await conn.run_sync(_current) == expected
        await upgrade(db)
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await db.dispose()


def test_cli_upgrade_runs_offline_sql() -> None:
    """The migrations render as SQL too (what a DBA reviews before running them)."""
    config = alembic_config("postgresql+asyncpg://localhost/none")
    command.upgrade(config, "head", sql=True)
