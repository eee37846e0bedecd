"""controlplane.launcher helpers the tests and benchmarks share."""

from __future__ import annotations

import socket

from controlplane.launcher import free_port


def test_free_ports_are_never_handed_out_twice() -> None:
    # A stack picks its API, cluster, OTLP and upstream ports before any process binds one;
    # the OS may offer a port again once the probe socket is closed (CI once gave the API and
    # the upstream the same port).
    ports = [free_port() for _ in range(2_000)]
    assert len(set(ports)) == len(ports)


def test_a_free_port_can_be_bound() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
