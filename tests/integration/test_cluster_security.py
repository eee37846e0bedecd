"""Both planes are protected: admin token on the API, cluster token and mutual TLS for nodes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from protos.activetrace.cluster.v1 import cluster_pb2 as pb
from protos.activetrace.cluster.v1 import cluster_pb2_grpc as pb_grpc
from tests.conftest import Pki, sqlite_url
from tests.integration.conftest import Stack, launch_stack, running

TOKEN = "cluster-secret"
ADMIN = "admin-secret"


@pytest.fixture
def secured(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A control plane with an admin token and a cluster token (SQLite)."""
    url = sqlite_url(tmp_path)
    with running(launch_stack(url, tmp_path, cluster_token=TOKEN, admin_token=ADMIN), request) as s:
        yield s


def _hello(node_id: str = "dp-x") -> pb.NodeMessage:
    return pb.NodeMessage(hello=pb.Hello(node_id=node_id, hostname="h", version="t"))


def _first_reply(channel: grpc.Channel, first: pb.NodeMessage, token: str | None) -> pb.CpMessage:
    """Open a stream, send ``first``, return the CP's first message (or raise RpcError)."""
    done = threading.Event()

    def requests() -> Iterator[pb.NodeMessage]:
        yield first
        done.wait(10)

    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    replies = pb_grpc.ClusterServiceStub(channel).Connect(requests(), metadata=metadata, timeout=10)
    try:
        return next(iter(replies))
    finally:
        done.set()
        replies.cancel()


def _node_ids(stack: Stack) -> set[str]:
    return {n["id"] for n in stack.ok("GET", "/api/v1/nodes")}


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_node_without_the_cluster_token_is_refused(secured: Stack, token: str | None) -> None:
    with (
        grpc.insecure_channel(f"127.0.0.1:{secured.cluster_port}") as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        _first_reply(channel, _hello(), token)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _node_ids(secured) == set()
    assert "missing or wrong cluster token" in (secured.workdir / "controlplane.log").read_text()


def test_node_with_the_token_gets_the_config(secured: Stack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{secured.cluster_port}") as channel:
        reply = _first_reply(channel, _hello("dp-ok"), TOKEN)
    assert reply.WhichOneof("message") == "config"
    assert reply.config.version >= 1
    assert _node_ids(secured) == {"dp-ok"}


@pytest.mark.parametrize(
    "first",
    [
        pb.NodeMessage(heartbeat=pb.Heartbeat()),
        _hello(""),
        _hello("bad id with spaces"),
        _hello("x" * 200),
    ],
)
def test_garbage_first_messages_are_refused(secured: Stack, first: pb.NodeMessage) -> None:
    with (
        grpc.insecure_channel(f"127.0.0.1:{secured.cluster_port}") as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        _first_reply(channel, first, TOKEN)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _node_ids(secured) == set()


def test_raw_garbage_on_the_cluster_port_does_not_hurt(secured: Stack) -> None:
    with socket.create_connection(("127.0.0.1", secured.cluster_port)) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)) * 10)
    assert secured.call("GET", "/healthz").status_code == 200


def test_admin_api_needs_the_bearer_token(secured: Stack) -> None:
    api = secured.api + "/api/v1/nodes"
    assert httpx.get(api).status_code == 401
    assert httpx.get(api).headers["www-authenticate"] == "Bearer"
    assert httpx.get(api, headers={"authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(api, headers={"authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert httpx.get(secured.api + "/healthz").status_code == 200
    assert httpx.get(secured.api + "/metrics").status_code == 200


@pytest.fixture
def mtls(tmp_path: Path, pki: Pki, request: pytest.FixtureRequest) -> Iterator[Stack]:
    """A control plane whose cluster endpoint requires client certificates from the test CA."""
    url = sqlite_url(tmp_path)
    args = [
        "--cluster-cert",
        str(pki.server_cert),
        "--cluster-key",
        str(pki.server_key),
        "--cluster-ca",
        str(pki.ca),
    ]
    with running(launch_stack(url, tmp_path, cluster_token=TOKEN, cp_args=args), request) as s:
        yield s


def _tls_channel(stack: Stack, pki: Pki, cert: Path | None, key: Path | None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None,
    )
    return grpc.secure_channel(f"127.0.0.1:{stack.cluster_port}", credentials)


def test_mtls_node_with_a_good_certificate_connects(mtls: Stack, pki: Pki) -> None:
    with _tls_channel(mtls, pki, pki.client_cert, pki.client_key) as channel:
        reply = _first_reply(channel, _hello("dp-tls"), TOKEN)
    assert reply.WhichOneof("message") == "config"


@pytest.mark.parametrize("which", ["none", "rogue", "expired"])
def test_mtls_refuses_bad_certificates(mtls: Stack, pki: Pki, which: str) -> None:
    cert, key = {
        "none": (None, None),
        "rogue": (pki.rogue_cert, pki.rogue_key),
        "expired": (pki.expired_cert, pki.expired_key),
    }[which]
    with _tls_channel(mtls, pki, cert, key) as channel, pytest.raises(grpc.RpcError) as refused:
        _first_reply(channel, _hello("dp-bad"), TOKEN)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _node_ids(mtls) == set()


def test_real_node_connects_over_mtls(mtls: Stack, pki: Pki) -> None:
    mtls.start_node(
        "dp-1",
        "--cluster-cert",
        str(pki.client_cert),
        "--cluster-key",
        str(pki.client_key),
        "--cluster-ca",
        str(pki.ca),
        "--cluster-server-name",
        "localhost",
    )
    mtls.wait_connected("dp-1")
