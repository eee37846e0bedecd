"""``python -m dataplane``."""

from dataplane.cli import main

main()
