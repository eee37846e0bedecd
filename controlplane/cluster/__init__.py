"""The cluster endpoint: gRPC servicer for data plane nodes and the registry of their streams."""
