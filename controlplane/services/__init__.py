"""Use cases of the control plane; API routes and the cluster servicer call these."""
