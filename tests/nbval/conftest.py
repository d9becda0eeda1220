"""nbval regression checks of the task notebooks (`mlnb nbval bless` / `make nbval`; see README)."""

from mlnb.refcheck.plugin import pytest_generate_tests, pytest_runtest_setup  # noqa: F401
