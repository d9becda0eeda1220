"""nbval results per git commit: ``.mlnb/nbval/results/<commit>.json`` (written atomically).

``make nbval`` (the pytest plugin) and ``mlnb nbval check`` (all references) record whether every
blessed reference passed, at which commit, and whether the tree had local edits (``dvc.lock`` and
``dvc.yaml``, which builds write, do not count). The promotion policy's ``nbval`` requirement reads the
record of the build's commit.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlnb.adapters.git import tree_state
from mlnb.core import settings
from mlnb.core.io import read_json, write_json


def results_dir(root: Path) -> Path:
    """Where ``mlnb nbval`` records its result per commit (the promotion policy reads them)."""
    return settings.state_dir(root) / "nbval" / "results"


def write(root: Path, passed: bool, references: list[str], summary: str, tool: str) -> Path | None:
    """Record one complete nbval run at the current commit; None when the project is not a git repo."""
    commit, changed = tree_state(root)
    if commit is None:
        return None
    path = results_dir(root) / f"{commit}.json"
    write_json(path, {"commit": commit, "clean": not changed, "changed": changed[:20], "passed": passed,
                      "references": sorted(references), "summary": summary[:500], "tool": tool,
                      "time": datetime.now(UTC).isoformat(timespec="seconds")})
    return path


def read(root: Path, commit: str) -> dict[str, Any] | None:
    if not re.fullmatch(r"[0-9a-f]{40}", commit):
        return None
    path = results_dir(root) / f"{commit}.json"
    if not path.is_file():
        return None
    data = read_json(path)
    return data if isinstance(data, dict) else None
