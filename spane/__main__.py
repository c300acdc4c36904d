"""``python -m spane`` is the ``spane`` command."""

from spane.cli.main import main

main()
