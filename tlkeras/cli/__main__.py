"""`python -m tlkeras.cli`: the `tlkeras` command."""

from tlkeras.cli import main

main()
