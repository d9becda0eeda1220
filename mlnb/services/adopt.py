"""``mlnb init --from-ploomber``: add mlnb's files to an existing Ploomber project without touching its
tasks. Adds the ``gate``, ``promotion`` and ``mlflow`` sections the parameters lack (appended as text,
so comments and order stay), the ``.gitignore`` lines for what mlnb writes, and the CI templates,
Dockerfile and Makefile when the project has none. Never writes a task's source or product, never
rewrites a line that is there. Returns what it did; never prints."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mlnb.core.io import atomic_write
from mlnb.core.project import SPEC_FILE
from mlnb.core.yamlio import read_yaml
from mlnb.errors import UserInputError
from mlnb.services.scaffold import ENV_LINK, PARAMS_FILE, ScaffoldResult, project_name, template_files

ADDED_WHEN_ABSENT = (".github/workflows/mlnb.yml", ".github/workflows/monitor.yml", ".gitlab-ci.yml",
                     "scripts/monitor-ci.sh", "Dockerfile", "Makefile")
PARAM_SECTIONS = ("gate", "promotion", "mlflow")
_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*):")


def sections(text: str) -> dict[str, str]:
    """The top-level blocks of a YAML text, each with the comment lines right above it."""
    blocks: dict[str, list[str]] = {}
    pending: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        match = _TOP_KEY.match(line)
        if match:
            current = blocks.setdefault(match.group(1), [])
            current.extend(pending)
            pending = []
            current.append(line)
        elif line.startswith("#") or not line.strip():
            pending.append(line)
        elif current is not None:
            current.extend(pending)
            pending = []
            current.append(line)
    return {key: "".join(lines) for key, lines in blocks.items()}


def _params_path(root: Path) -> Path | None:
    for name in (PARAMS_FILE, ENV_LINK):
        path = root / name
        if path.is_file():
            return path.resolve()
    return None


def _append(path: Path, text: str) -> None:
    current = path.read_text(encoding="utf-8")
    sep = "" if not current or current.endswith("\n") else "\n"
    with atomic_write(path, encoding="utf-8") as fh:
        fh.write(current + sep + text)


def _missing_sections(params: dict[str, Any], template: str) -> str:
    wanted = sections(template)
    return "".join(wanted[key] for key in PARAM_SECTIONS if key not in params)


def adopt_project(root: Path) -> ScaffoldResult:
    """Add mlnb's files to the Ploomber project at ``root`` (its ``pipeline.yaml`` must exist)."""
    root = Path(root).absolute()
    if not (root / SPEC_FILE).is_file():
        raise UserInputError(f"{root}: no {SPEC_FILE} here: `mlnb init --from-ploomber` adds mlnb to a Ploomber "
                             f"project; `mlnb init DIR` starts a new one")
    files = template_files(project_name(root))
    written: list[str] = []
    appended: list[str] = []
    kept: list[str] = []

    params_path = _params_path(root)
    if params_path is None:
        with atomic_write(root / PARAMS_FILE, encoding="utf-8") as fh:
            fh.write("# mlnb's settings (mlnb init --from-ploomber); add your pipeline's parameters here too.\n"
                     + _missing_sections({}, files[PARAMS_FILE]))
        written.append(PARAMS_FILE)
        if not (root / ENV_LINK).exists() and not (root / ENV_LINK).is_symlink():
            os.symlink(PARAMS_FILE, root / ENV_LINK)
            written.append(ENV_LINK)
    else:
        loaded = read_yaml(params_path) or {}
        if not isinstance(loaded, dict):
            raise UserInputError(f"{params_path}: expected a mapping of parameters")
        extra = _missing_sections(loaded, files[PARAMS_FILE])
        rel = str(params_path.relative_to(root)) if params_path.is_relative_to(root) else str(params_path)
        if extra:
            _append(params_path, "# added by mlnb init --from-ploomber\n" + extra)
            appended.append(rel)
        else:
            kept.append(rel)

    ignore = root / ".gitignore"
    have = ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else []
    lines = [line for line in files[".gitignore"].splitlines() if line and not line.startswith("#")]
    missing = [line for line in lines if line not in have]
    if missing and have:
        _append(ignore, "# written by mlnb builds (mlnb init --from-ploomber)\n" + "\n".join(missing) + "\n")
        appended.append(".gitignore")
    elif missing:
        with atomic_write(ignore, encoding="utf-8") as fh:
            fh.write(files[".gitignore"])
        written.append(".gitignore")
    else:
        kept.append(".gitignore")

    for rel in ADDED_WHEN_ABSENT:
        path = root / rel
        if path.exists() or path.is_symlink():
            kept.append(rel)
            continue
        with atomic_write(path, encoding="utf-8") as fh:
            fh.write(files[rel])
        written.append(rel)
    notes = ("the gate judges builds once a task writes its verdict with mlnb.tasklib.evaluation.run_gate "
             "(see the evaluate notebook `mlnb init` writes)",
             "DVC: `mlnb dvc init` makes the project a DVC repository and generates dvc.yaml")
    return ScaffoldResult(root, written=tuple(sorted(written)), appended=tuple(appended), kept=tuple(sorted(kept)),
                          notes=notes)
