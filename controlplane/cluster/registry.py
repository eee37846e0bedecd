"""Connected nodes and their outbound message queues (in this control plane process)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable

from protos.activetrace.cluster.v1 import cluster_pb2 as pb

__all__ = ["NodeConnection", "NodeRegistry"]

log = logging.getLogger(__name__)

# A node that cannot keep up with this many pending messages is disconnected; it gets the
# full state again when it reconnects.
OUTBOX_LIMIT = 10_000


class NodeConnection:
    """One node's live stream: messages put here are written to it in order."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.outbox: asyncio.Queue[pb.CpMessage | None] = asyncio.Queue(OUTBOX_LIMIT)
        self.closed = asyncio.Event()

    def send(self, message: pb.CpMessage) -> bool:
        """Queue ``message``; False (and the stream is closed) when the node is too far behind."""
        if self.closed.is_set():
            return False
        try:
            self.outbox.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("node %s is not reading its stream; disconnecting it", self.node_id)
            self.close()
            return False
        return True

    def close(self) -> None:
        """Ask the stream writer to end the stream."""
        if not self.closed.is_set():
            self.closed.set()
            with contextlib.suppress(asyncio.QueueFull):
                self.outbox.put_nowait(None)


class NodeRegistry:
    """The streams of the nodes connected to this control plane."""

    def __init__(self) -> None:
        self._connections: dict[str, NodeConnection] = {}

    def attach(self, node_id: str) -> NodeConnection:
        """Register a new stream for ``node_id``, closing an older one (the node reconnected)."""
        old = self._connections.get(node_id)
        if old is not None:
            old.close()
        connection = NodeConnection(node_id)
        self._connections[node_id] = connection
        return connection

    def detach(self, connection: NodeConnection) -> bool:
        """Forget ``connection``; True when it was the node's current stream."""
        connection.close()
        if self._connections.get(connection.node_id) is connection:
            del self._connections[connection.node_id]
            return True
        return False

    def is_connected(self, node_id: str) -> bool:
        """Whether ``node_id`` has a live stream to this process."""
        return node_id in self._connections

    def connected(self) -> list[str]:
        """IDs of the connected nodes."""
        return list(self._connections)

    def send(self, node_id: str, message: pb.CpMessage) -> bool:
        """Send to one node; False when it is not connected here."""
        connection = self._connections.get(node_id)
        return connection.send(message) if connection is not None else False

    def send_many(self, node_ids: Iterable[str], message: pb.CpMessage) -> list[str]:
        """Send to several nodes; returns those that got it."""
        return [node_id for node_id in node_ids if self.send(node_id, message)]

    def broadcast(self, message: pb.CpMessage) -> None:
        """Send to every connected node."""
        for connection in list(self._connections.values()):
            connection.send(message)

    def close_all(self) -> None:
        """End every stream (shutdown)."""
        for connection in list(self._connections.values()):
            connection.close()
        self._connections.clear()
