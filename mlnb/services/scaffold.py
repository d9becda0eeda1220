"""``mlnb init``: a new project from the templates in ``mlnb/templates/project/`` (load -> validate ->
train -> evaluate -> export on a sample CSV, the gate, DVC, CI templates, Dockerfile, Makefile).

Templates are plain files; the only substitutions are ``{{project_name}}``, ``{{mlnb_version}}`` and
``{{mlnb_install}}`` (other ``{{...}}``, such as Ploomber's ``{{data.target}}`` placeholders, are left as they are).
A template named ``dot-x`` is written as ``.x`` (the package holds no dotfiles git or setuptools would
treat specially).

Everything is written to a temporary directory beside the target first, ``dvc.yaml`` generated there,
then moved into place: a failure leaves no half project. Returns what it wrote; never prints.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from mlnb.errors import UserInputError

TEMPLATE_PACKAGE = "mlnb"
TEMPLATE_DIR = ("templates", "project")
DOT_PREFIX = "dot-"
PARAMS_FILE = "params.yaml"
ENV_LINK = "env.yaml"
_NAME_CHARS = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class ScaffoldResult:
    """What a scaffold did, as paths relative to ``root`` (sorted)."""

    root: Path
    written: tuple[str, ...] = ()  # created
    overwritten: tuple[str, ...] = ()  # replaced (``--force``)
    appended: tuple[str, ...] = ()  # existing files extended (``--from-ploomber``)
    kept: tuple[str, ...] = ()  # existing files left as they were (``--from-ploomber``)
    notes: tuple[str, ...] = field(default=())


def project_name(root: Path) -> str:
    """A name for the MLflow experiment and model: the directory's name, lower case, ``-`` separated."""
    name = _NAME_CHARS.sub("-", root.resolve().name.lower()).strip("-")
    return name or "mlnb-project"


def _target_name(template_rel: str) -> str:
    parts = [p[len(DOT_PREFIX) - 1:] if p.startswith(DOT_PREFIX) else p for p in template_rel.split("/")]
    return "/".join("." + p[1:] if p.startswith("-") else p for p in parts)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlnb")
    except PackageNotFoundError:  # run from a source checkout that was never installed
        return "0.1.0"


def _install_source() -> str:
    """What ``make setup`` installs: the local checkout mlnb was installed from (pip's ``direct_url.json``
    says a ``file://`` URL), so a new project works before mlnb is on an index; else ``mlnb==VERSION``."""
    import json
    from importlib.metadata import distributions

    url = None
    for found in distributions(name="mlnb"):  # a source checkout's mlnb.egg-info may come first: no record
        try:
            said = json.loads(found.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        url = said.get("url") if isinstance(said, dict) else None
        if url:
            break
    return f"mlnb @ {url}" if isinstance(url, str) and url.startswith("file://") else f"mlnb=={_version()}"


def template_files(name: str) -> dict[str, str]:
    """{path in the new project: text}, ``{{project_name}}``, ``{{mlnb_version}}`` and ``{{mlnb_install}}``
    substituted."""
    base = resources.files(TEMPLATE_PACKAGE).joinpath(*TEMPLATE_DIR)
    out: dict[str, str] = {}

    def walk(node: resources.abc.Traversable, prefix: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            rel = f"{prefix}{child.name}"
            if child.is_dir():
                if child.name != "__pycache__":
                    walk(child, rel + "/")
            else:
                text = child.read_text(encoding="utf-8")
                for key, value in {"project_name": name, "mlnb_version": _version(),
                                   "mlnb_install": _install_source()}.items():
                    text = text.replace("{{" + key + "}}", value)
                out[_target_name(rel)] = text

    walk(base, "")
    if not out:
        raise UserInputError(f"mlnb's project templates are missing ({base}): reinstall mlnb")
    return out


def conflicts(target: Path, name: str | None = None) -> list[str]:
    """The files ``init`` would overwrite in ``target`` (its existing entries when none collide)."""
    if not target.exists():
        return []
    if not target.is_dir():
        raise UserInputError(f"{target}: exists and is not a directory")
    planned = set(template_files(name or project_name(target))) | {ENV_LINK, "dvc.yaml"}
    return sorted(p for p in planned if (target / p).exists() or (target / p).is_symlink())


def _write_tree(tmp: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    os.symlink(PARAMS_FILE, tmp / ENV_LINK)  # mlnb's layout: params.yaml for DVC, env.yaml for Ploomber


def _generate_dvc_yaml(tmp: Path) -> None:
    from mlnb.adapters.dvc import repo
    from mlnb.core.project import load_project

    repo.sync(load_project(tmp).spec)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _relative_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() or p.is_symlink())


def init_project(target: Path, *, force: bool = False) -> ScaffoldResult:
    """Scaffold a new project in ``target`` (created when missing). A non-empty ``target`` is refused
    unless ``force``: then the scaffold's files replace same-named ones and other files stay."""
    target = Path(target).absolute()
    existing = sorted(p.name for p in target.iterdir()) if target.is_dir() else []
    if target.exists() and not target.is_dir():
        raise UserInputError(f"{target}: exists and is not a directory")
    name = project_name(target)
    overwrite = conflicts(target, name)
    if existing and not force:
        shown = ", ".join(overwrite[:6]) + (", ..." if len(overwrite) > 6 else "") if overwrite else "nothing"
        raise UserInputError(f"{target}: not empty ({len(existing)} entries); `mlnb init --force` would overwrite "
                             f"{shown} and keep the rest")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.mlnb-init-", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would become the project's mode
    try:
        _write_tree(tmp, template_files(name))
        _generate_dvc_yaml(tmp)
        written = _relative_files(tmp)
        if not existing:
            if target.exists():
                target.rmdir()
            os.replace(tmp, target)
        else:
            for rel in written:
                dest = target / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if dest.is_dir() and not dest.is_symlink():
                    raise UserInputError(f"{dest}: is a directory where mlnb init writes a file")
                os.replace(tmp / rel, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    created = tuple(p for p in written if p not in overwrite)
    return ScaffoldResult(target, written=created, overwritten=tuple(overwrite))
