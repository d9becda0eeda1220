"""``python -m mlnb``: the same as the ``mlnb`` command."""

from mlnb.cli.main import main

main()
