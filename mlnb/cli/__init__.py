"""Command-line layer: click commands only, one module per command group. Each command parses its
options, calls a service (``mlnb.services``), prints the result and picks the exit code."""
