"""A database that is not there at start: the CP reports unhealthy, retries, then recovers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest

from controlplane.launcher import start, stop_all, wait_until
from tests.conftest import free_port, sqlite_url


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.mark.postgres
def test_control_plane_waits_for_its_database(postgres_admin: str, tmp_path: Path) -> None:
    name = f"activetrace_late_{uuid.uuid4().hex[:10]}"
    url = (
        postgres_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        + f"/{name}"
    )
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    process = start(
        "controlplane",
        [
            "controlplane.cli",
            "controlplane",
            "--database-url",
            url,
            "--api-port",
            str(api_port),
            "--cluster-port",
            str(free_port()),
            "--otlp-grpc-port",
            str(free_port()),
        ],
        log=tmp_path / "cp.log",
    )
    try:
        wait_until(
            lambda: httpx.get(api + "/healthz").status_code == 503, what="503", processes=[process]
        )
        unhealthy = httpx.get(api + "/healthz").json()
        assert "database" in unhealthy["message"]
        assert httpx.get(api + "/api/v1/nodes").status_code == 503
        asyncio.run(_admin(postgres_admin, f'CREATE DATABASE "{name}"'))
        wait_until(
            lambda: httpx.get(api + "/healthz").status_code == 200,
            what="recovery",
            timeout=30,
            processes=[process],
        )
        assert httpx.get(api + "/api/v1/nodes").json() == []
        assert "database not reachable" in (tmp_path / "cp.log").read_text()
    finally:
        stop_all([process])
        asyncio.run(_admin(postgres_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_db_upgrade_command_twice(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, "x.db")
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "controlplane.cli", "db", "upgrade", "--database-url", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "database at revision head" in result.stdout
