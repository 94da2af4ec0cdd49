"""`python -m inferedge` runs the CLI."""

from inferedge.cli import main

main()
