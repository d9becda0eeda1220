"""DVC for an mlnb project: sync ``dvc.yaml``, record outputs, move them to and from the remote.

DVC runs as a subprocess (``python -m dvc``) of the interpreter running mlnb, with analytics
off, so its logging and locks stay its own; its multi-line errors become one-line
:class:`VersioningError`\\ s. The remote is configured in ``.dvc/config.local`` (never
committed), so no machine's path and no credential lands in a tracked file; ``MLNB_DVC_REMOTE``
points a checkout (e.g. CI) at a remote without any config.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlnb.adapters.dvc import objects, stages
from mlnb.adapters.mlflow.tracking import TELEMETRY_OFF
from mlnb.core import settings
from mlnb.core.io import atomic_write
from mlnb.core.spec import PipelineSpec
from mlnb.core.yamlio import DVC_LIMITS, read_yaml
from mlnb.errors import OutOfSync, UserInputError, VersioningError

REMOTE_ENV = "MLNB_DVC_REMOTE"
DEFAULT_REMOTE = "mlnb"
# Config keys that hold secrets in DVC's remote sections (S3, GCS, Azure, SSH, HTTP, ...).
SECRET_KEYS = {"password", "secret_access_key", "access_key_id", "session_token", "account_key", "sas_token",
               "client_secret", "connection_string", "token", "gdrive_client_secret", "passphrase",
               "key_secret", "oss_key_secret"}
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@:]+:[^/@]+@", re.IGNORECASE)


@dataclass(frozen=True)
class Remote:
    name: str
    url: str

    @property
    def local_path(self) -> Path | None:
        """The directory of a local remote (a plain path or ``file://``), else None."""
        if self.url.startswith("file://"):
            return Path(self.url[len("file://"):])
        return None if re.match(r"^[a-z][a-z0-9+.-]*://", self.url, re.IGNORECASE) else Path(self.url)


def is_dvc_repo(root: Path) -> bool:
    return (root / ".dvc").is_dir() and (root / stages.DVC_YAML).is_file()


def dvc(root: Path, *args: str) -> str:
    """Run ``dvc ARGS`` in ``root``; return its output or raise a one-line :class:`VersioningError`."""
    env = {**os.environ, **TELEMETRY_OFF}
    try:
        proc = subprocess.run([sys.executable, "-m", "dvc", "--wait-for-lock", *args], cwd=root, env=env,
                              capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise VersioningError(f"cannot run dvc: {exc}") from None
    if proc.returncode != 0:
        raise VersioningError(f"dvc {args[0]}: {_dvc_error(proc.stderr or proc.stdout)}")
    return proc.stdout


def _dvc_error(text: str) -> str:
    """The informative part of DVC's error output, on one line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if ln.startswith("ERROR:")), None)
    if start is None:
        return lines[-1] if lines else "failed with no message"
    kept = [lines[start].removeprefix("ERROR:").strip()]
    for ln in lines[start + 1:]:
        if ln.startswith(("<https://", "Having any troubles?")) or ln.startswith(("ERROR:", "WARNING:")):
            break
        kept.append(ln)
    return " ".join(kept)[:1000]


def _read_config(path: Path) -> dict:
    if not path.exists():
        return {}
    from configobj import ConfigObj, ConfigObjError

    try:
        return dict(ConfigObj(str(path), interpolation=False))
    except ConfigObjError as exc:
        raise UserInputError(f"{path}: invalid DVC config: {exc}") from None


def config(root: Path) -> dict:
    """The project's DVC config: ``.dvc/config`` overlaid with ``.dvc/config.local``."""
    merged: dict = {}
    for name in ("config", "config.local"):
        for section, values in _read_config(root / ".dvc" / name).items():
            merged.setdefault(section, {}).update(values if isinstance(values, dict) else {})
    return merged


def tracked_secrets(root: Path) -> list[str]:
    """``section.key`` of every credential found in the committed ``.dvc/config``."""
    found = []
    for section, values in _read_config(root / ".dvc" / "config").items():
        for key, value in (values or {}).items() if isinstance(values, dict) else ():
            if key.lower() in SECRET_KEYS or (key == "url" and _URL_PASSWORD.match(str(value))):
                found.append(f"{section}.{key}")
    return found


ENV_REMOTE = "mlnb-env"


def remote(root: Path) -> Remote | None:
    """The remote push/pull use: ``MLNB_DVC_REMOTE`` when set (registered as remote ``mlnb-env`` in
    ``.dvc/config.local``, not made the default), else the default remote; None when there is none.
    Local paths are resolved as DVC does: ``~`` expanded, relative to ``.dvc/``."""
    url = settings.get(REMOTE_ENV)
    if url:
        return _env_remote(root, url)
    cfg = config(root)
    name = (cfg.get("core") or {}).get("remote")
    if not name:
        return None
    url = (cfg.get(f'remote "{name}"') or {}).get("url")
    if not url:
        raise UserInputError(f".dvc/config: core.remote is {name!r} but no remote of that name has a url")
    return _resolved(root, Remote(name, str(url)), base=root / ".dvc")


def _resolved(root: Path, rem: Remote, base: Path) -> Remote:
    path = rem.local_path
    if path is None:
        return rem
    return Remote(rem.name, str((base / path.expanduser()).resolve()))


def _env_remote(root: Path, url: str) -> Remote:
    rem = _resolved(root, Remote(ENV_REMOTE, url), base=Path.cwd())
    if _URL_PASSWORD.match(url):
        raise UserInputError(f"{REMOTE_ENV}: the url contains a password; pass credentials as the provider's "
                             f"environment variables instead")
    current = config(root).get(f'remote "{ENV_REMOTE}"') or {}
    if current.get("url") != rem.url or str(current.get("verify", "")).lower() != "true":
        dvc(root, "remote", "add", "--local", "--force", ENV_REMOTE, rem.url)
        dvc(root, "remote", "modify", "--local", ENV_REMOTE, "verify", "true")
    return rem


def set_remote(root: Path, url: str, name: str = DEFAULT_REMOTE) -> Remote:
    """Make ``url`` the default remote, in ``.dvc/config.local`` (untracked), with hash verification on."""
    if _URL_PASSWORD.match(url):
        raise UserInputError(f"remote url {url.split('@')[0].split(':')[0]}://...: contains a password; give "
                             f"credentials with `dvc remote modify --local {name} ...` instead")
    new = Remote(name, url)
    if new.local_path is not None:
        path = (Path.cwd() / new.local_path.expanduser()).resolve()
        if not path.parent.is_dir():
            raise VersioningError(f"remote {url}: parent directory {path.parent} does not exist")
        path.mkdir(exist_ok=True)
        new = Remote(name, str(path))
    cfg = config(root)
    current = cfg.get(f'remote "{name}"') or {}
    if (cfg.get("core") or {}).get("remote") == name and current.get("url") == new.url \
            and str(current.get("verify", "")).lower() == "true":
        return new
    dvc(root, "remote", "add", "--local", "--default", "--force", name, new.url)
    dvc(root, "remote", "modify", "--local", name, "verify", "true")
    return new


def _require_remote(root: Path) -> Remote:
    secrets = tracked_secrets(root)
    if secrets:
        raise UserInputError(f".dvc/config: credential {secrets[0]} is in a tracked file; move it to "
                             f".dvc/config.local (`dvc remote modify --local ...`) and rewrite that commit")
    rem = remote(root)
    if rem is None:
        raise UserInputError(f"no DVC remote configured: run `mlnb remote set PATH_OR_URL` or set {REMOTE_ENV}")
    path = rem.local_path
    if path is not None and not path.is_dir():
        raise VersioningError(f"DVC remote {rem.name!r} at {rem.url}: directory does not exist or is unreachable")
    return rem


DVCIGNORE = ("# Paths DVC never hashes\n", ".ipynb_checkpoints/\n", "__pycache__/\n", "products/_failed/\n",
             ".mlnb/\n")  # .mlnb: the nbval workspace, a copy of the project with its own data/raw.dvc


def init(spec: PipelineSpec) -> stages.SyncResult:
    """Make the project a DVC repository (analytics off) and generate ``dvc.yaml``."""
    root = spec.root
    if not (root / ".dvc").is_dir():
        dvc(root, "init", "--quiet")
    if str((config(root).get("core") or {}).get("analytics", "")).lower() != "false":
        dvc(root, "config", "core.analytics", "false")
    ignore = root / ".dvcignore"
    text = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
    missing = [line for line in DVCIGNORE[1:] if line.strip() not in text.splitlines()]
    if missing:
        header = [] if text else [DVCIGNORE[0]]
        with atomic_write(ignore, encoding="utf-8") as fh:
            fh.write(text + ("" if not text or text.endswith("\n") else "\n") + "".join(header + missing))
    return sync(spec)


def sync(spec: PipelineSpec, check: bool = False) -> stages.SyncResult:
    """Regenerate ``dvc.yaml`` (atomically); with ``check``, only report the difference."""
    if not (spec.root / ".dvc").is_dir():
        raise UserInputError(f"{spec.root}: not a DVC repository (no .dvc/): run `mlnb dvc init`")
    current, wanted = stages.compare(spec)
    path = spec.root / stages.DVC_YAML
    diff = stages.unified_diff(current, wanted) if current != wanted else ""
    link_missing = not stages.params_linked(spec.root)
    if link_missing:
        diff += f"+ {stages.ENV_FILE} -> {stages.PARAMS_FILE}: parameters move to {stages.PARAMS_FILE}, " \
                f"{stages.ENV_FILE} becomes a symlink to it\n"
    if diff and not check:
        if link_missing:
            stages.link_params(spec.root)
        if current != wanted:
            with atomic_write(path, encoding="utf-8") as fh:
                fh.write(wanted)
    return stages.SyncResult(path, bool(diff), diff)


def require_sync(spec: PipelineSpec) -> None:
    current, wanted = stages.compare(spec)
    if current != wanted or not stages.params_linked(spec.root):
        raise OutOfSync(f"{stages.DVC_YAML} is out of date with pipeline.yaml: run `mlnb dvc sync` "
                        f"(`mlnb dvc sync --check` shows the diff)")


def _lock(root: Path) -> dict[str, dict[str, dict[str, str]]]:
    """``dvc.lock`` as {stage: {"deps": {path: md5}, "outs": {path: md5}}}."""
    lock = root / "dvc.lock"
    if not lock.exists():
        return {}
    data = read_yaml(lock, UserInputError, **DVC_LIMITS) or {}
    return {name: {kind: {o["path"]: o.get("md5", "") for o in (st or {}).get(kind, []) if isinstance(o, dict)}
                   for kind in ("deps", "outs")}
            for name, st in (data.get("stages") or {}).items()}


def _changed(root: Path, recorded: dict[str, str], paths: list[Path]) -> list[str]:
    changed = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        if recorded.get(rel) != (objects.file_md5(path) if path.is_file() else None):
            changed.append(rel)
    return changed


def changed_modules(spec: PipelineSpec) -> dict[str, list[str]]:
    """Tasks whose imported project modules changed since ``dvc.lock`` recorded them. Ploomber does
    not look at imported code; DVC (and so mlnb, in a DVC project) does."""
    lock = _lock(spec.root)
    out = {}
    for name, task in spec.tasks.items():
        if name in lock:
            changed = _changed(spec.root, lock[name]["deps"], stages.module_deps(spec.root, task.source))
            if changed:
                out[name] = changed
    return out


def recordable(spec: PipelineSpec) -> list[str]:
    """Stages whose products (and Ploomber metadata) all exist, so ``dvc commit`` can record them."""
    ready: list[str] = []
    for name, task in spec.tasks.items():  # pipeline order: upstream first
        if all(up in ready for up in task.upstream) and all(
                p.exists() and stages.metadata_path(p).exists() for p in task.products.values()):
            ready.append(name)
    return ready


def lock_stale(spec: PipelineSpec) -> list[str]:
    """Recordable stages whose ``dvc.lock`` entry is out of date: a product's Ploomber metadata (it
    changes on every run) or a code dependency (notebook, imported modules, resources) differs.
    Cheap: hashes only small files."""
    lock = _lock(spec.root)
    stale = []
    for name in recordable(spec):
        task = spec.tasks[name]
        entry = lock.get(name, {"deps": {}, "outs": {}})
        metas = [stages.metadata_path(p) for p in task.products.values()]
        code = [task.source, *stages.module_deps(spec.root, task.source), *stages.resources(spec.root, task)]
        if _changed(spec.root, entry["outs"], metas) or _changed(spec.root, entry["deps"], code):
            stale.append(name)
    return stale


def commit(spec: PipelineSpec, up_to_date: list[str] | None = None) -> list[str]:
    """Record outputs in ``dvc.lock`` and the cache (``dvc commit``; nothing re-runs).

    Only stages known to be up to date are recorded: ``up_to_date`` (e.g. the tasks a build just ran
    or found current), else those whose ``dvc.lock`` entry is stale while Ploomber's record is not
    (``lock_stale``). Data tracked by ``*.dvc`` files is committed when missing from the cache, and
    never forced: data changed since ``dvc add`` is an error, not a silent new version."""
    require_sync(spec)
    if up_to_date is None:
        targets = lock_stale(spec)
    else:
        targets = [s for s in recordable(spec) if s in up_to_date]
    if targets:
        dvc(spec.root, "commit", "--force", "--quiet", *targets)
    data = _uncached_data(spec.root)
    if data:
        try:
            dvc(spec.root, "commit", "--quiet", *data)
        except VersioningError:
            target = data[0].removesuffix(".dvc")
            raise VersioningError(f"{data[0]}: the data changed since `dvc add`; record the new version with "
                                  f"`dvc add {target}` (or restore it with `mlnb pull`)") from None
    return targets + data


def _uncached_data(root: Path) -> list[str]:
    """``*.dvc`` files whose data exists but whose objects are not in the cache (e.g. data regenerated
    by ``make data`` in a fresh clone)."""
    cache = cache_dir(root)
    found = []
    for path in objects.dvc_files(root):
        rel = path.relative_to(root)
        outs = objects.needed_by(path, root)
        if not outs or not all((root / e.path).exists() for e in outs):
            continue
        if any(not objects.object_path(cache, e.md5).is_file() for e in outs):
            found.append(rel.as_posix())
    return found


def push(root: Path) -> tuple[Remote, str]:
    """Upload the cache objects the workspace's ``dvc.lock``/``.dvc`` files name."""
    rem = _require_remote(root)
    bad = objects.verify(cache_dir(root), objects.needed(root))
    if bad:  # `dvc push` only warns about these and exits 0; a later pull would fail
        first = bad[0]
        hint = "run `mlnb dvc commit` (or `mlnb build`) first" if first.kind == "missing" else "rebuild it"
        raise VersioningError(f"{first.path}: object {first.md5} {first.kind} in the local DVC cache "
                              f"({len(bad)} bad in all); nothing pushed: {hint}")
    out = dvc(root, "push", "--remote", rem.name)
    return rem, _summary(out, "pushed")


def pull(root: Path) -> tuple[Remote, str, int]:
    """Fetch, verify every object's hash, then check out; returns (remote, DVC's summary, number of
    corrupted cache objects replaced by the remote's copy). Nothing in the workspace changes on
    failure: a bad object is named, with where it is bad (cache or remote)."""
    rem = _require_remote(root)
    entries = objects.needed(root)
    cache = cache_dir(root)
    bad = objects.verify(cache, entries)  # what the cache lacks, or holds corrupted
    repaired = 0
    for p in bad:
        if p.kind == "corrupt" and p.where.is_file():  # a bad cache copy: drop it, fetch the remote's again
            p.where.chmod(0o644)
            p.where.unlink()
            repaired += 1
    remote_base = rem.local_path
    if remote_base is not None and bad:
        # check the remote's copies first, so a corrupted one is named as such (after a fetch DVC's own
        # verification leaves it indistinguishable from a missing one)
        remote_bad = objects.verify(remote_base, [objects.Entry(p.path, p.md5) for p in bad])
        if remote_bad:
            first = remote_bad[0]
            _bad_objects(rem, remote_bad, "corrupted in" if first.kind == "corrupt" else "missing from")
    out = dvc(root, "fetch", "--remote", rem.name)
    still = objects.verify(cache, entries)
    if still:
        _bad_objects(rem, still, "missing or corrupted in" if remote_base is None else "unreadable from")
    dvc(root, "checkout")
    return rem, _summary(out, "fetched"), repaired


def _bad_objects(rem: Remote, problems: list[objects.Problem], where: str) -> None:
    first = problems[0]
    raise VersioningError(f"{first.path}: object {first.md5} {where} remote {rem.name!r} ({rem.url}); "
                          f"{len(problems)} bad object(s) in all; workspace left unchanged")


def cache_dir(root: Path) -> Path:
    configured = (config(root).get("cache") or {}).get("dir")
    return (root / ".dvc" / configured).resolve() if configured else root / ".dvc" / "cache"


def _summary(output: str, verb: str) -> str:
    line = next((ln.strip() for ln in output.splitlines() if verb in ln or "up to date" in ln.lower()), "")
    return line or f"0 files {verb}"


def require_params_linked(spec: PipelineSpec) -> None:
    if not stages.params_linked(spec.root):
        raise OutOfSync(f"{stages.ENV_FILE}: this DVC project keeps parameters in {stages.PARAMS_FILE}; run "
                        f"`mlnb dvc sync` to move them there (env.yaml stays, as a symlink)")
