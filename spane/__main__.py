"""``python -m spane`` is the ``spane`` command."""

from spane.cli import main

main()
