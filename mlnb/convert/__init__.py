"""``mlnb convert``: one exploratory notebook -> a pipeline of parameterised task notebooks.

    read -> split (split.py) -> analyse + resolve (scope.py, symbols.py, plan.py) -> write (render.py)

Nothing is executed to convert; ``--check`` (compare.py) runs both and compares outputs.
Generated task notebooks import :mod:`mlnb.convert.handoff` at run time, so this package
imports nothing heavy itself: the API lives in :mod:`mlnb.convert.api`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ConvertResult", "convert", "load_notebook", "plan_notebook"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mlnb.convert import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlnb.convert' has no attribute {name!r}")
