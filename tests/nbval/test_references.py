"""Each blessed reference holds its task notebook's current code (cells matched by id)."""

from mlnb.adapters.nbval.plugin import test_reference_is_current  # noqa: F401
