"""Run the CLI as python -m multiplan.cli."""

from multiplan.cli import main

main()
