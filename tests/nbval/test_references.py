"""Each blessed reference holds its task notebook's current code (cells matched by id)."""

from mlnb.refcheck.plugin import test_reference_is_current  # noqa: F401
