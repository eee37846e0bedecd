"""A proxied request leaves no reference cycles behind.

Objects in a cycle outlive their request until the cycle collector runs, and its collections
grow with them: one parser <-> reader cycle per upstream response cost ~4 % of a node's CPU,
one scope <-> cycle link another ~3 % (callgrind, instructions per request). The node's HTTP
server, the proxy and the upstream transport run here as in a node; the upstream and the
client are kept out of the measurement (a subprocess, and one keep-alive connection).
"""

from __future__ import annotations

import asyncio
import gc
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from opentelemetry.proto.resource.v1 import resource_pb2

from controlplane.launcher import free_port
from dataplane.gateway_config import GatewayConfig, normalise_declarative
from dataplane.plugins.host import PluginHost
from dataplane.proxy import Proxy
from dataplane.runtime import GatewayRuntime
from dataplane.server import HttpServer
from dataplane.tracing.export import SpanExport
from dataplane.tracing.sessions import SessionDefinition
from dataplane.tracing.tracer import Tracer
from dataplane.transport import UpstreamTransport

UPSTREAM = """
import asyncio, sys
BODY = b'{"hello": "world"}'
HEAD = b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
ANSWER = HEAD + b"Content-Length: %d\\r\\n\\r\\n%b" % (len(BODY), BODY)
class Upstream(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.pending = transport, b""
    def data_received(self, data):
        self.pending += data
        while b"\\r\\n\\r\\n" in self.pending:
            _, _, self.pending = self.pending.partition(b"\\r\\n\\r\\n")
            self.transport.write(ANSWER)
async def main():
    server = await asyncio.get_running_loop().create_server(Upstream, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    await server.serve_forever()
asyncio.run(main())
"""

REQUESTS = 200


@contextmanager
def upstream() -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", UPSTREAM, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield port
    finally:
        process.terminate()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


@asynccontextmanager
async def node(upstream_port: int, *, plugins: bool, traced: bool) -> AsyncIterator[int]:
    """The proxy served by the node's server (as a node runs it); yields its port."""
    transport = UpstreamTransport()
    host = PluginHost(node_id="dp-test", http_transport=transport)
    tracer = Tracer(SpanExport(node_resource=resource_pb2.Resource(), version="test"))
    route: dict[str, Any] = {"name": "all", "paths": ["/"]}
    document: dict[str, Any] = {
        "services": [{"name": "s", "url": f"http://127.0.0.1:{upstream_port}", "routes": [route]}]
    }
    if plugins:
        route["plugins"] = [
            {"name": "key-auth"},
            {"name": "rate-limiting", "config": {"second": 1_000_000, "policy": "local"}},
            {"name": "correlation-id"},
        ]
        document["consumers"] = [{"username": "u", "keyauth_credentials": [{"key": "k"}]}]
    config = GatewayConfig.load(normalise_declarative(document))
    host.load_consumers(config.consumers)
    runtime = GatewayRuntime.build(config, host)
    tracer.sessions.set_routes(runtime.route_services)
    if traced:
        tracer.sessions.start(
            SessionDefinition(session_id="s", max_samples=10_000, duration_secs=600)
        )
    proxy = Proxy(runtime=runtime, tracer=tracer, transport=transport)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    server = HttpServer(proxy, "127.0.0.1", sock.getsockname()[1])
    serving = asyncio.create_task(server.serve(sock=sock))
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await serving
        sock.close()
        for plugin in runtime.plugins:
            await plugin.close()
        await host.close()
        await transport.aclose()


async def requests(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: int) -> None:
    request = b"GET /a HTTP/1.1\r\nhost: gateway\r\napikey: k\r\n\r\n"
    for _ in range(count):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)


@pytest.mark.parametrize(
    ("plugins", "traced"), [(False, False), (True, False), (False, True), (True, True)]
)
async def test_proxied_requests_leave_no_cyclic_garbage(plugins: bool, traced: bool) -> None:
    with upstream() as upstream_port:
        async with node(upstream_port, plugins=plugins, traced=traced) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                await requests(reader, writer, 20)  # connections and first-use state
                gc.collect()
                gc.set_debug(gc.DEBUG_SAVEALL)  # what the collector frees is kept to look at
                try:
                    await requests(reader, writer, REQUESTS)
                    gc.collect()
                    garbage = Counter(type(item).__qualname__ for item in gc.garbage)
                finally:
                    gc.set_debug(0)
                    gc.garbage.clear()
            finally:
                writer.close()
    # Per-request cycles would leave REQUESTS (or a multiple) of some type.
    assert sum(garbage.values()) < REQUESTS // 4, garbage.most_common(10)
