"""Fixtures shared by every test: free ports and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from controlplane.db.engine import Database
from controlplane.db.migrate import upgrade
from controlplane.launcher import free_port as free_port  # re-exported for the tests
from dataplane.server import HttpServer
from dataplane.serving import EmbeddedServer

POSTGRES_ADMIN_DSN = os.environ.get(
    "ACTIVETRACE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _postgres_reachable() -> str | None:
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """The admin DSN of the test PostgreSQL; in CI a missing server fails the test."""
    problem = asyncio.run(_postgres_reachable())
    if problem is not None:
        message = f"PostgreSQL at {POSTGRES_ADMIN_DSN} unreachable: {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_ADMIN_DSN


@pytest.fixture
def postgres_database(postgres_admin: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database; yields its SQLAlchemy URL and drops it afterwards."""
    name = f"activetrace_test_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(postgres_admin)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base = postgres_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def sqlite_url(workdir: Path, name: str = "activetrace.db") -> str:
    """The SQLAlchemy URL of a SQLite database file in ``workdir``."""
    return f"sqlite+aiosqlite:///{workdir / name}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each supported backend (empty database)."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend."""
    database = Database(database_url)
    await upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, *, node_server: bool = False) -> AsyncIterator[str]:
    """Serve an ASGI app on a loopback socket bound before it starts; yields its URL.

    uvicorn by default; ``node_server`` serves it with the node's own :class:`HttpServer` (what
    serves a node's proxy port). The socket listens before the server runs, so clients can
    connect at once (no waiting).
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    server: HttpServer | EmbeddedServer
    if node_server:
        server = HttpServer(app, "127.0.0.1", port)
        serving = asyncio.create_task(server.serve(sock=sock))
    else:
        server = EmbeddedServer(
            uvicorn.Config(app, log_config=None, lifespan="off", access_log=False)
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        sock.close()


@dataclass(frozen=True)
class Pki:
    """Certificates generated for one test run (files in a temporary directory)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate signed by another CA
    rogue_key: Path
    expired_cert: Path  # signed by the right CA, expired yesterday
    expired_key: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    days: tuple[int, int] = (-1, 30),
    san: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer is not None else (name, key)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A CA, a server certificate for 127.0.0.1/localhost, good, rogue and expired clients."""
    ca_key, rogue_ca_key = _key(), _key()
    ca_cert = _cert("activetrace test CA", ca_key, None, ca=True)
    rogue_ca = _cert("rogue CA", rogue_ca_key, None, ca=True)
    ca_path, _ = _write(tmp_path, "ca", ca_cert, ca_key)
    issuer = (ca_cert.subject, ca_key)
    server_key, client_key, rogue_key, expired_key = _key(), _key(), _key(), _key()
    server = _write(
        tmp_path, "server", _cert("localhost", server_key, issuer, san=True), server_key
    )
    client = _write(tmp_path, "client", _cert("dp-1", client_key, issuer), client_key)
    rogue = _write(
        tmp_path, "rogue", _cert("dp-1", rogue_key, (rogue_ca.subject, rogue_ca_key)), rogue_key
    )
    expired = _write(
        tmp_path, "expired", _cert("dp-1", expired_key, issuer, days=(-30, -1)), expired_key
    )
    return Pki(ca_path, *server, *client, *rogue, *expired)
