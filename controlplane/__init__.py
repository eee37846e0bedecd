"""activetrace control plane: HTTP API, viewer, cluster gRPC endpoint, OTLP receiver."""
