"""``python -m shoplake``: the same command line as ``shoplake``."""

from shoplake.cli import main

main()
