"""The node's stream to the control plane: hello, config, sessions, span batches, heartbeats.

Reconnects with jittered exponential backoff (1 s to 30 s). While disconnected the node keeps
proxying with its last config and keeps span batches until they are acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
from collections.abc import Callable
from typing import Final, Protocol

import grpc

from dataplane.gateway_config import ConfigError, GatewayConfig
from dataplane.settings import DataPlaneSettings
from dataplane.tracing.sessions import SessionDefinition
from dataplane.tracing.tracer import Tracer
from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = ["ClusterClient", "ConfigTarget", "session_definition"]

log = logging.getLogger(__name__)

BACKOFF_MIN_SECS = 1.0
BACKOFF_MAX_SECS = 30.0
PROGRESS_INTERVAL_SECS = 0.1


class ConfigTarget(Protocol):
    """Where received configs go (the node)."""

    config_version: int
    config_hash: str

    def apply_config(self, config: GatewayConfig, version: int, hash_: str) -> None:
        """Switch to ``config``."""


def session_definition(start: pb.SessionStart) -> SessionDefinition:
    """The node's view of a SessionStart."""
    scope = start.scope.WhichOneof("target")
    return SessionDefinition(
        session_id=start.session_id,
        name=start.name,
        scope_kind={"service_id": "service", "route_id": "route"}.get(scope or ""),
        scope_id=getattr(start.scope, scope) if scope else None,
        rule=start.sampling_rule,
        max_samples=start.max_samples,
        ends_at_unix_nano=start.ends_at_unix_nano,
        duration_secs=start.duration_secs,
        capture=list(start.capture),
        body_max_bytes=start.body_max_bytes,
        samples_taken=start.samples_taken,
    )


CONNECT_METHOD: Final = "/activetrace.cluster.v1.ClusterService/Connect"


def _serialize(message: pb.NodeMessage | bytes) -> bytes:
    """The stream's request serializer: span batches arrive already serialized."""
    return message if isinstance(message, bytes) else message.SerializeToString()


class ClusterClient:
    """Keeps one stream to the control plane open, for as long as the node runs."""

    def __init__(
        self,
        settings: DataPlaneSettings,
        *,
        node: ConfigTarget,
        tracer: Tracer,
        version: str,
        counters: Callable[[], pb.Heartbeat],
    ) -> None:
        self.settings = settings
        self.node = node
        self.tracer = tracer
        self.version = version
        self.counters = counters
        self.connected = asyncio.Event()
        self.reconnects = 0
        self._outbox: asyncio.Queue[pb.NodeMessage | bytes] | None = None

    def send(self, message: pb.NodeMessage | bytes) -> bool:
        """Queue a message (or a serialized one) on the live stream; False when disconnected."""
        if self._outbox is None:
            return False
        self._outbox.put_nowait(message)
        return True

    async def run(self) -> None:
        """Connect, serve the stream, reconnect after a backoff; forever."""
        backoff = BACKOFF_MIN_SECS
        while True:
            established = False
            try:
                established = await self._stream()
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as exc:
                level = (
                    logging.ERROR
                    if exc.code() == grpc.StatusCode.UNAUTHENTICATED
                    else logging.WARNING
                )
                log.log(level, "control plane stream ended: %s %s", exc.code().name, exc.details())
            except Exception:
                log.exception("control plane stream failed")
            finally:
                self._disconnected()
            if established:
                backoff = BACKOFF_MIN_SECS
            delay = backoff * random.uniform(0.5, 1.0)
            self.reconnects += 1
            log.info("reconnecting to the control plane in %.1fs", delay)
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, BACKOFF_MAX_SECS)

    def _channel(self) -> grpc.aio.Channel:
        s = self.settings
        if s.cluster_ca is None and s.cluster_cert is None:
            return grpc.aio.insecure_channel(s.control_plane)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=s.cluster_ca.read_bytes() if s.cluster_ca else None,
            private_key=s.cluster_key.read_bytes() if s.cluster_key else None,
            certificate_chain=s.cluster_cert.read_bytes() if s.cluster_cert else None,
        )
        options = []
        if s.cluster_server_name:
            options.append(("grpc.ssl_target_name_override", s.cluster_server_name))
        return grpc.aio.secure_channel(s.control_plane, credentials, options=options)

    def _hello(self) -> pb.NodeMessage:
        return pb.NodeMessage(
            hello=pb.Hello(
                node_id=self.settings.node_id,
                hostname=socket.gethostname(),
                version=self.version,
                labels=self.settings.labels,
                config_hash=self.node.config_hash,
                config_version=self.node.config_version,
                session_ids=list(self.tracer.sessions.sessions),
            )
        )

    async def _stream(self) -> bool:
        """One connection; returns whether it got as far as receiving the config."""
        metadata: list[tuple[str, str]] = []
        if self.settings.cluster_token is not None:
            metadata.append(
                ("authorization", f"Bearer {self.settings.cluster_token.get_secret_value()}")
            )
        established = False
        async with self._channel() as channel:
            connect = channel.stream_stream(
                CONNECT_METHOD,
                request_serializer=_serialize,
                response_deserializer=pb.CpMessage.FromString,
            )
            call = connect(metadata=metadata)
            await call.write(self._hello())
            outbox: asyncio.Queue[pb.NodeMessage | bytes] = asyncio.Queue()
            writer = asyncio.create_task(self._write(call, outbox))
            ticker: asyncio.Task[None] | None = None
            try:
                while True:
                    message = await call.read()
                    if message is grpc.aio.EOF:
                        return established
                    assert isinstance(message, pb.CpMessage)
                    if not established:
                        established = True
                        self._connected(outbox)
                        ticker = asyncio.create_task(self._tick())
                    self._handle(message)
            finally:
                for task in (writer, ticker):
                    if task is not None:
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
                call.cancel()

    async def _write(
        self,
        call: grpc.aio.StreamStreamCall[pb.NodeMessage | bytes, pb.CpMessage],
        outbox: asyncio.Queue[pb.NodeMessage | bytes],
    ) -> None:
        while True:
            await call.write(await outbox.get())

    async def _tick(self) -> None:
        """Progress reports every 100 ms and heartbeats, queued behind pending span batches."""
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time()
        while True:
            for progress in self.tracer.progress():
                self.send(pb.NodeMessage(session_progress=progress))
            if loop.time() >= next_heartbeat:
                self.send(pb.NodeMessage(heartbeat=self.counters()))
                next_heartbeat = loop.time() + self.settings.heartbeat_interval_secs
            await asyncio.sleep(PROGRESS_INTERVAL_SECS)

    def _connected(self, outbox: asyncio.Queue[pb.NodeMessage | bytes]) -> None:
        self._outbox = outbox
        self.tracer.export.sender = self.send
        self.tracer.export.resend_unacked()
        self.tracer.mark_all_dirty()
        self.connected.set()
        log.info("connected to the control plane at %s", self.settings.control_plane)

    def _disconnected(self) -> None:
        self._outbox = None
        self.tracer.export.sender = None
        self.connected.clear()

    def _handle(self, message: pb.CpMessage) -> None:
        kind = message.WhichOneof("message")
        if kind == "config":
            self._apply_config(message.config)
        elif kind == "session_start":
            session = self.tracer.sessions.start(session_definition(message.session_start))
            log.info("session %s %s", session.id, session.state)
        elif kind == "session_stop":
            self.tracer.sessions.stop(message.session_stop.session_id)
            log.info(
                "session %s stopped (%s)",
                message.session_stop.session_id,
                message.session_stop.reason,
            )
        elif kind == "batch_ack":
            self.tracer.export.ack(message.batch_ack.batch_id)

    def _apply_config(self, snapshot: pb.ConfigSnapshot) -> None:
        if snapshot.hash == self.node.config_hash and snapshot.version == self.node.config_version:
            return
        try:
            config = GatewayConfig.load(json.loads(snapshot.config_json))
        except (ValueError, ConfigError) as exc:
            log.error("rejected config version %d: %s", snapshot.version, exc)
            return
        self.node.apply_config(config, snapshot.version, snapshot.hash)
