"""The node's side of the cluster protocol: the gRPC stream client and the config cache."""
