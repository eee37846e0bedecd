"""docker-compose.yml and the Dockerfile stay correct and in step with the CLI.

No Docker engine runs here, so these tests check what can be checked without one.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from controlplane.cli import app
from controlplane.settings import ControlPlaneSettings
from dataplane.settings import DataPlaneSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
OURS = {name: s for name, s in SERVICES.items() if s.get("image") == "activetrace:latest"}
CLI = typer.main.get_command(app)


def _parse(args: list[str]) -> tuple[str, dict[str, Any]]:
    """Resolve ``activetrace <args>`` to a command and parse its options like the CLI would."""
    command: Any = CLI
    path: list[str] = []
    while hasattr(command, "commands"):  # a group: descend into the named subcommand
        name, args = args[0], args[1:]
        sub = command.commands.get(name)
        assert sub is not None, f"no command {name!r} in {' '.join(path) or 'activetrace'}"
        command, path = sub, [*path, name]
    context = command.make_context(" ".join(path), list(args))
    return " ".join(path), dict(context.params)


def test_expected_services_exist() -> None:
    assert {"postgres", "migrate", "controlplane", "dp-1", "dp-2", "dp", "demo-upstream"} <= set(
        SERVICES
    )


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_is_a_valid_cli_invocation(name: str) -> None:
    command, params = _parse(list(OURS[name]["command"]))
    assert command in {"controlplane", "dataplane", "demo-upstream", "db upgrade", "config demo"}
    assert params


@pytest.mark.parametrize(
    "name", sorted(n for n in SERVICES if n != "migrate" and n != "demo-config")
)
def test_long_running_services_have_healthchecks(name: str) -> None:
    test = SERVICES[name]["healthcheck"]["test"]
    if name in OURS:
        assert test[:2] == ["CMD", "activetrace"]
        _parse(test[2:])


def test_nodes_have_explicit_ids_and_publish_their_proxy_port() -> None:
    for name, published in (("dp-1", "8000"), ("dp-2", "8010")):
        _, params = _parse(SERVICES[name]["command"])
        assert params["node_id"] == name
        assert params["control_plane"] == "controlplane:8005"
        assert SERVICES[name]["ports"] == [f"{published}:{params['proxy_port']}"]
    _, scaled = _parse(SERVICES["dp"]["command"])
    assert scaled["node_id"] is None  # scaled nodes take their container host name


def test_control_plane_ports_match_its_flags() -> None:
    _, params = _parse(SERVICES["controlplane"]["command"])
    published = {p.split(":")[1].split()[0] for p in SERVICES["controlplane"]["ports"]}
    assert published == {str(params["api_port"]), str(params["otlp_grpc_port"])}
    assert SERVICES["controlplane"]["expose"] == [str(params["cluster_port"])]
    assert params["host"] == "0.0.0.0"


def test_environment_names_are_real_settings() -> None:
    known = {f"ACTIVETRACE_{f.upper()}" for f in ControlPlaneSettings.model_fields} | {
        f"ACTIVETRACE_{f.upper()}" for f in DataPlaneSettings.model_fields
    }
    for name, service in OURS.items():
        for variable in service.get("environment", {}):
            assert variable in known, f"{name}: {variable} is not a setting"


def test_secrets_come_from_the_env_file() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z_]+)", text))
    example = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert used <= example
    assert "change-me" not in text


def test_startup_order() -> None:
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (
        SERVICES["controlplane"]["depends_on"]["migrate"]["condition"]
        == "service_completed_successfully"
    )
    for node in ("dp-1", "dp-2", "dp"):
        assert SERVICES[node]["depends_on"]["controlplane"]["condition"] == "service_healthy"
    assert "pgdata" in COMPOSE["volumes"]


def test_dockerfile() -> None:
    lines = [
        line.strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all(
        re.match(r"FROM python:3\.1[1-9]-slim", line) for line in lines if line.startswith("FROM")
    )
    users = [line for line in lines if line.startswith("USER")]
    assert users
    assert users[-1] != "USER root"
    assert 'ENTRYPOINT ["activetrace"]' in lines
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    assert not any("TOKEN" in line for line in lines if line.startswith("ENV"))


def test_wheel_carries_the_migrations(tmp_path: Path) -> None:
    from hatchling.builders.wheel import WheelBuilder

    wheel = Path(
        next(iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])))
    )
    names = zipfile.ZipFile(wheel).namelist()
    assert "controlplane/migrations/env.py" in names
    assert any(n.startswith("controlplane/migrations/versions/0001") for n in names)
    assert "protos/activetrace/cluster/v1/cluster_pb2.py" in names
    # the C extensions are compiled into the wheel (the image's build stage has gcc)
    assert any(n.startswith("dataplane/tracing/_wire.") and n.endswith(".so") for n in names)
    assert any(n.startswith("dataplane/_http1.") and n.endswith(".so") for n in names)
    assert any(n.startswith("controlplane/otlp/_rows.") and n.endswith(".so") for n in names)
    assert not wheel.name.endswith("-none-any.whl")  # a platform wheel, since it carries C


def test_dockerfile_can_compile_the_span_encoder() -> None:
    text = (ROOT / "Dockerfile").read_text()
    build_stage = text.split("\nFROM ")[1]  # the first stage: "FROM python:3.1x-slim AS build"
    assert "gcc" in build_stage
    assert "hatch_build.py" in build_stage
    assert "**/*.so" in (ROOT / ".dockerignore").read_text().splitlines()
