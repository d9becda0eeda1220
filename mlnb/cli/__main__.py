"""``python -m mlnb.cli.main``: the same as the ``mlnb`` command."""

from mlnb.cli.main import main

main()
