"""``python -m controlplane``: run the control plane."""

from controlplane.cli import main

main()
