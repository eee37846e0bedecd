"""activetrace data plane: the gateway node that proxies, runs plugins and traces."""
