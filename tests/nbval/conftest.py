"""nbval regression checks of the task notebooks (`mlnb nbval bless` / `make nbval`; see README)."""

from mlnb.adapters.nbval.plugin import *  # noqa: F403 (its pytest hooks)
