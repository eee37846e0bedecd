"""Tracing on the node: spans as plain objects, sessions, sampling, OTLP encoding and export."""
