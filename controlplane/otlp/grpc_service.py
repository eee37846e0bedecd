"""``opentelemetry.proto.collector.trace.v1.TraceService/Export`` over gRPC."""

from __future__ import annotations

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from controlplane.otlp.receiver import Overloaded, TraceReceiver

__all__ = ["OtlpTraceService"]


class OtlpTraceService(trace_service_pb2_grpc.TraceServiceServicer):
    """The OTLP/gRPC trace endpoint."""

    def __init__(self, receiver: TraceReceiver) -> None:
        self.receiver = receiver

    async def Export(
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext[
            trace_service_pb2.ExportTraceServiceRequest,
            trace_service_pb2.ExportTraceServiceResponse,
        ],
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        """Store what belongs to traced requests; UNAVAILABLE (retryable) when overloaded."""
        try:
            result = await self.receiver.export(request)
        except Overloaded:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "receiver overloaded; retry later")
        return result.response()
