"""What git says about the project: the committed version of a file, whether a tree is clean
(small read-only helpers; ``mlnb.adapters.mlflow.tracking.git_commit`` records ``<sha>[-dirty]`` on every run)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

DIRTY = "-dirty"
IGNORED_CHANGES = ("dvc.lock", "dvc.yaml")  # written by mlnb build itself (outputs, generated stages)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None


def tree_state(root: Path) -> tuple[str | None, list[str]]:
    """(HEAD commit or None, tracked files changed in the work tree, ``dvc.lock``/``dvc.yaml`` aside)."""
    sha = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    if sha is None or status is None or sha.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40}", sha.stdout.strip()):
        return None, []
    changed = [line[3:].strip() for line in status.stdout.splitlines() if line.strip()]
    return sha.stdout.strip(), [c for c in changed if c not in IGNORED_CHANGES]


def committed_text(root: Path, path: Path) -> str | None:
    """``path`` (a file in ``root``; a symlink is followed) as committed at ``HEAD``, or None when the
    project is not a git repository or the file is not committed."""
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    proc = _git(root, "show", f"HEAD:{rel}")
    return proc.stdout if proc is not None and proc.returncode == 0 else None


def committed_env(root: Path) -> dict[str, Any] | None:
    """The committed parameters (``env.yaml``, i.e. ``params.yaml`` in a DVC project) at ``HEAD``;
    the file on disk when git has no committed copy; None when there is neither."""
    path = root / "env.yaml"
    if not path.exists():
        return None
    text = committed_text(root, path)
    if text is None:
        text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def is_clean_commit(commit: str) -> bool:
    """A recorded ``mlnb.git_commit`` names a clean tree (a full sha without ``-dirty``)."""
    return len(commit) == 40 and all(c in "0123456789abcdef" for c in commit)


def section_changes(committed: Any, used: Any, prefix: str) -> list[str]:
    """``prefix.key: old -> new`` for every key that differs between two mappings (nested keys dotted)."""
    committed = committed if isinstance(committed, dict) else {}
    used = used if isinstance(used, dict) else {}
    out: list[str] = []
    for key in sorted(set(committed) | set(used), key=str):
        old, new = committed.get(key, "(unset)"), used.get(key, "(unset)")
        if isinstance(old, dict) and isinstance(new, dict):
            out += section_changes(old, new, f"{prefix}.{key}")
        elif old != new:
            out.append(f"{prefix}.{key}: {old!r} -> {new!r}")
    return out


def listed_files(root: Path) -> list[str] | None:
    """The files git would commit in ``root`` (tracked, and untracked ones not ignored), relative to ``root``;
    None when ``root`` is not in a git work tree."""
    proc = _git(root, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", ".")
    if proc is None or proc.returncode != 0:
        return None
    return sorted({p for p in proc.stdout.split("\0") if p})
