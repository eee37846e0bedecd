"""docker-compose.yml's topology started as real processes against PostgreSQL.

No Docker engine runs here, so this test reads docker-compose.yml and runs every activetrace
service's own command and environment (secrets from .env.example) in dependency order, the way
compose would. Only what a container network provides differently is translated: service host
names become 127.0.0.1, each container port gets a free loopback port (both nodes listen on
8000 in their own containers), the PostgreSQL host is the local server and the cache
directory is a temporary one. If the compose file wires something wrong (a flag, a port, a
missing secret, the start order), this test fails.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from controlplane.launcher import Supervised, start, stop_all, wait_until
from tests.conftest import free_port
from tests.integration.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
PORT_FLAGS = {
    "--api-port",
    "--cluster-port",
    "--otlp-grpc-port",
    "--proxy-port",
    "--status-port",
    "--port",
}
HOST_FLAGS = {"--host", "--status-host", "--proxy-host"}

pytestmark = pytest.mark.postgres


def _dotenv() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env and env[name] != "":
            return env[name]
        if op == ":-":
            return arg or ""
        raise AssertionError(f"compose needs {name}: {arg}")

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


class Topology:
    """Free loopback ports for every (service, container port) the compose file uses."""

    def __init__(self) -> None:
        self.ports: dict[tuple[str, int], int] = {}
        for name, service in SERVICES.items():
            command = service.get("command") or []
            for flag, value in itertools.pairwise(command):
                if flag in PORT_FLAGS:
                    self.ports[(name, int(value))] = free_port()

    def port(self, service: str, port: int) -> int:
        mapped = self.ports.get((service, port))
        assert mapped is not None, f"{service} does not listen on {port} (no port flag)"
        return mapped

    def rewrite(self, service: str, value: str) -> str:
        """A value as seen from the loopback network instead of the compose network."""
        for (name, port), mapped in self.ports.items():
            value = value.replace(f"{name}:{port}", f"127.0.0.1:{mapped}")
        own = re.compile(r"127\.0\.0\.1:(\d+)")
        return own.sub(
            lambda m: (
                f"127.0.0.1:{self.ports[(service, int(m.group(1)))]}"
                if (service, int(m.group(1))) in self.ports
                else m.group(0)
            ),
            value,
        )

    def command(self, service: str, workdir: Path) -> list[str]:
        args = [str(a) for a in SERVICES[service]["command"]]
        out: list[str] = []
        previous = ""
        for arg in args:
            if previous in PORT_FLAGS:
                arg = str(self.port(service, int(arg)))
            elif previous in HOST_FLAGS and arg == "0.0.0.0":
                arg = "127.0.0.1"
            elif previous == "--cache-dir":
                arg = str(workdir / service / "cache")
            else:
                arg = self.rewrite(service, arg)
            out.append(arg)
            previous = arg if arg.startswith("--") else ""
        return out

    def published(self, service: str, host_port: int) -> int:
        """The loopback port standing in for a published ``host:container`` port."""
        for spec in SERVICES[service].get("ports", []):
            host, _, container = str(spec).partition(":")
            if host == str(host_port):
                return self.port(service, int(container))
        raise AssertionError(f"{service} does not publish {host_port}")


def _env(service: str, topology: Topology, database_url: str) -> dict[str, str]:
    dotenv = _dotenv()
    env = {"ACTIVETRACE_LOG_FORMAT": "text", "ACTIVETRACE_HEARTBEAT_INTERVAL_SECS": "1"}
    for key, value in (SERVICES[service].get("environment") or {}).items():
        resolved = _interpolate(str(value), dotenv)
        if key == "ACTIVETRACE_DATABASE_URL":
            assert resolved.startswith("postgresql+asyncpg://activetrace:")
            assert "@postgres:5432/activetrace" in resolved
            resolved = database_url
        env[key] = topology.rewrite(service, resolved)
    return env


def _healthy(service: str, topology: Topology) -> bool:
    test = SERVICES[service]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "activetrace"], test
    args = [topology.rewrite(service, str(a)) for a in test[2:]]
    result = subprocess.run(
        [sys.executable, "-m", "controlplane.cli", *args], capture_output=True, timeout=10
    )
    return result.returncode == 0


def _order() -> list[str]:
    """Compose's start order from depends_on (the default profile only)."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for dependency in SERVICES[name].get("depends_on") or {}:
            visit(dependency)
        ordered.append(name)

    for name, service in SERVICES.items():
        if not service.get("profiles"):
            visit(name)
    return ordered


@pytest.fixture
def compose_database(postgres_admin: str) -> Iterator[str]:
    """A database owned by the role compose's URL names (trust auth: any password works)."""
    name = f"activetrace_compose_{uuid.uuid4().hex[:10]}"

    async def admin(*statements: str) -> None:
        conn = await asyncpg.connect(postgres_admin)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(
        admin(
            "DO $$ BEGIN CREATE ROLE activetrace LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
            f'CREATE DATABASE "{name}" OWNER activetrace',
        )
    )
    host = postgres_admin.split("@", 1)[1].split("/", 1)[0]
    password = _dotenv()["POSTGRES_PASSWORD"]
    try:
        yield f"postgresql+asyncpg://activetrace:{password}@{host}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_compose_topology_runs_as_wired(compose_database: str, tmp_path: Path) -> None:
    topology = Topology()
    processes: list[Supervised] = []
    order = _order()
    assert order.index("migrate") < order.index("controlplane") < order.index("dp-1")
    try:
        for service in order:
            if service == "postgres":
                continue  # the machine's PostgreSQL stands in for the container
            env = _env(service, topology, compose_database)
            args = ["controlplane.cli", *topology.command(service, tmp_path)]
            log = tmp_path / f"{service}.log"
            if SERVICES[service].get("restart") == "no":  # one-shot jobs run to completion
                done = subprocess.run(
                    [sys.executable, "-m", *args],
                    env={**os.environ, **env},
                    capture_output=True,
                    timeout=60,
                )
                log.write_bytes(done.stdout + done.stderr)
                assert done.returncode == 0, (service, done.stdout, done.stderr)
                continue
            processes.append(start(service, args, env=env, log=log))
            if "healthcheck" in SERVICES[service] and service != "demo-upstream":
                wait_until(
                    lambda s=service: _healthy(s, topology),  # type: ignore[misc]
                    what=f"{service} healthy",
                    processes=processes,
                    timeout=60,
                )
        admin = {"authorization": f"Bearer {_dotenv()['ACTIVETRACE_ADMIN_TOKEN']}"}
        api = f"http://127.0.0.1:{topology.published('controlplane', 8001)}"
        assert httpx.get(api + "/api/v1/nodes", timeout=5).status_code == 401

        def nodes() -> list[str]:
            body = httpx.get(api + "/api/v1/nodes", headers=admin, timeout=5).json()
            return sorted(n["id"] for n in body if n["status"] == "connected")

        wait_for(lambda: nodes() == ["dp-1", "dp-2"], "both nodes connected")
        proxies = {
            "dp-1": f"http://127.0.0.1:{topology.published('dp-1', 8000)}",
            "dp-2": f"http://127.0.0.1:{topology.published('dp-2', 8010)}",
        }
        wait_until(
            lambda: _healthy("demo-upstream", topology),
            what="demo upstream healthy",
            processes=processes,
        )
        for proxy in proxies.values():
            response = httpx.get(proxy + "/demo/hello", timeout=5)
            assert response.status_code == 200, response.text

        created = httpx.post(
            api + "/api/v1/tracing-sessions",
            headers=admin,
            json={
                "name": "compose",
                "targets": ["dp-1"],
                "scope": {"service": "demo"},
                "max_samples": 1,
                "duration_secs": 60,
            },
            timeout=5,
        )
        assert created.status_code == 201, created.text
        session_id = created.json()["id"]

        def state() -> str:
            body = httpx.get(
                f"{api}/api/v1/tracing-sessions/{session_id}", headers=admin, timeout=5
            ).json()
            return str(body["targets"][0]["state"])

        wait_for(lambda: state() == "active", "session active on dp-1")
        assert httpx.get(proxies["dp-1"] + "/demo/orders", timeout=5).status_code == 200
        wait_for(lambda: state() == "completed", "session completed")
        traces = httpx.get(
            f"{api}/api/v1/tracing-sessions/{session_id}/traces", headers=admin, timeout=5
        ).json()["items"]
        assert len(traces) == 1
        trace_id = traces[0]["trace_id"]

        # The demo upstream exports its own spans to the CP's OTLP/gRPC port as compose wires it;
        # they join the trace under the gateway.upstream span whose context they continue.
        def spans() -> list[dict[str, Any]]:
            body = httpx.get(f"{api}/api/v1/traces/{trace_id}", headers=admin, timeout=5).json()
            return list(body["spans"])

        wait_for(
            lambda: any(s["service_name"] == "demo-upstream" for s in spans()),
            "the demo upstream's span",
        )
        by_id = {s["span_id"]: s for s in spans()}
        service_span = next(s for s in by_id.values() if s["service_name"] == "demo-upstream")
        assert by_id[service_span["parent_span_id"]]["name"] == "gateway.upstream"
    except BaseException:
        stop_all(processes)
        for log in sorted(tmp_path.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}")
        raise
    stop_all(processes)
