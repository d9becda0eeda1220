"""``mlnb export argo|kubeflow``: the pipeline as a workflow a Kubernetes engine runs, one step per task.

What the two engines share lives here: the checked request, the plan (a DNS-1123 name per task, the DAG's
edges, the workflow parameters, the warnings) and the step command; :mod:`mlnb.services.export_argo` and
:mod:`mlnb.services.export_kubeflow` lay the plan out in their engine's format. Nothing is imported from
Ploomber, MLflow or DVC and nothing is contacted: the files are written offline, from ``project.spec``.

Every step runs the project image (its working directory is the project, mlnb installed)::

    mlnb run TASK --exchange [--entry-point EP] [-p KEY=VALUE ...] [--upstream MANIFEST_JSON ...]
                  --products-out PATH

``--exchange`` fetches the upstream products from the DVC remote by content hash (one ``--upstream`` per
upstream task: the manifest JSON that step wrote), runs the task, pushes its products and writes their
manifest to ``--products-out``, which the engine reads as the step's output parameter ``products``.
The DVC remote (``MLNB_DVC_REMOTE``) and MLflow (``MLFLOW_TRACKING_URI``) are plain environment variables of
every step; credentials come from Kubernetes Secrets named at export time, never from the files written.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlnb.core import sources
from mlnb.core.config import parse_override
from mlnb.core.io import atomic_write
from mlnb.core.project import Project
from mlnb.errors import UserInputError, redact

MLFLOW_SECRET = "mlflow-credentials"
DVC_SECRET = "dvc-credentials"
# The keys a Kubeflow step reads from each secret (KFP maps secret keys one by one; Argo takes them all)
MLFLOW_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")
DVC_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
PRODUCTS = "products"  # every step's output parameter: the manifest of its products
DAG_TEMPLATE = "pipeline"  # Argo's entry template (a step never takes this name)

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Docker's image reference grammar (distribution/reference): [domain[:port]/]path[:tag][@digest]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*|\[[0-9a-fA-F:]+\])"
_IMAGE = re.compile(rf"^(?:{_DOMAIN}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
                    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*"
                    r":[0-9a-fA-F]{32,}))?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class ExportRequest:
    """What ``mlnb export`` was asked for (the CLI's options)."""

    image: str
    name: str | None = None  # default: the project folder's name, DNS-1123 sanitised
    params: tuple[str, ...] = ()  # -p KEY=VALUE, as typed (the project is loaded with them)
    entry_point: str | None = None  # passed on to every step's `mlnb run`
    tracking_uri: str | None = None  # MLFLOW_TRACKING_URI of every step
    dvc_remote: str | None = None  # MLNB_DVC_REMOTE of every step
    mlflow_secret: str = MLFLOW_SECRET  # "": none
    dvc_secret: str = DVC_SECRET  # "": none
    cpu: str = "1"
    memory: str = "2Gi"
    retries: int = 2
    timeout: int | None = None  # seconds a step may run (activeDeadlineSeconds)
    namespace: str | None = None  # Argo only (Kubeflow: the run's namespace, chosen when it is started)
    service_account: str | None = None  # Argo only (Kubeflow: chosen when the run is started)
    mlflow_secret_keys: tuple[str, ...] = MLFLOW_SECRET_KEYS  # Kubeflow only
    dvc_secret_keys: tuple[str, ...] = DVC_SECRET_KEYS  # Kubeflow only


@dataclass(frozen=True)
class Step:
    task: str  # the task's name in the spec: what `mlnb run` takes
    name: str  # the step's name in the workflow (DNS-1123 label, unique)
    upstream: tuple[str, ...]  # names of the steps it reads from


@dataclass(frozen=True)
class Param:
    key: str  # the dotted env key (train.C)
    name: str  # the workflow parameter (train__C)
    value: str  # the value as typed at export time (its default)


@dataclass(frozen=True)
class ExportPlan:
    name: str
    request: ExportRequest
    steps: tuple[Step, ...]  # in topological order
    params: tuple[Param, ...]
    env: dict[str, str]  # non-secret environment of every step
    spec_file: str
    warnings: tuple[str, ...] = field(default=())

    @property
    def edges(self) -> list[tuple[str, str]]:
        """(upstream step, step) for every dependency."""
        return [(up, s.name) for s in self.steps for up in s.upstream]

    def step_args(self, step: Step, upstream: dict[str, str], param: dict[str, str], products_out: str) -> list[str]:
        """The arguments of ``mlnb`` in ``step``'s container; ``upstream`` maps each upstream step to the
        engine's reference to its manifest, ``param`` each workflow parameter to the engine's reference."""
        args = ["run", step.task, "--exchange"]
        if self.request.entry_point:
            args += ["--entry-point", self.request.entry_point]
        for p in self.params:
            args += ["-p", f"{p.key}={param[p.name]}"]
        for up in step.upstream:
            args += ["--upstream", upstream[up]]
        return [*args, "--products-out", products_out]


@dataclass(frozen=True)
class ExportResult:
    path: Path
    plan: ExportPlan


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` as a DNS-1123 label (lower case, ``a-z0-9-``, at most ``limit`` characters); may be empty."""
    label = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", text.lower())).strip("-")
    return label[:limit].rstrip("-")


def plan(project: Project, request: ExportRequest) -> ExportPlan:
    """Check ``request`` against ``project`` (loaded with ``request.params``) and name everything."""
    _check_request(request)
    spec = project.spec  # the spec's one-line errors first, -p ones included (the project applies them)
    warnings: list[str] = []
    for task in spec.tasks.values():
        if task.kind == sources.OTHER and task.source.suffix.lower() == ".sql":
            raise UserInputError(f"{spec.path.name}: tasks[{task.name}] is a SQL task: it needs the spec's database "
                                 "client, which a step cannot reach as it reaches the DVC remote; export a pipeline "
                                 "of notebook, script and function tasks")
        if not task.products:
            raise UserInputError(f"{spec.path.name}: tasks[{task.name}] has no file products (a SQL relation?): "
                                 "nothing a step could hand on through the DVC remote")
        if task.kind == sources.OTHER:
            warnings.append(f"task {task.name} is {task.what} ({task.source.suffix}): the image needs its kernel")
    if spec.hooks:
        warnings.append(f"{spec.path.name} has on_render/on_finish hooks: they run in every step")
    names = _step_names(list(spec.tasks))
    steps = tuple(Step(t.name, names[t.name], tuple(names[u] for u in t.upstream)) for t in spec.tasks.values())
    env = {k: v for k, v in (("MLFLOW_TRACKING_URI", request.tracking_uri),
                             ("MLNB_DVC_REMOTE", request.dvc_remote)) if v}
    warnings += _setting_warnings(request)
    name = request.name if request.name is not None else dns_label(project.root.resolve().name, 57)
    if not name:
        raise UserInputError(f"project folder {project.root.resolve().name!r} gives no DNS-1123 name: pass --name")
    return ExportPlan(name, request, steps, _params(request.params), env, spec.path.name, tuple(warnings))


def _check_request(r: ExportRequest) -> None:
    match = _IMAGE.fullmatch(r.image)
    if not match or len(r.image) > 512:
        raise UserInputError(f"--image {r.image!r}: not an image reference (REGISTRY/NAME:TAG or NAME@sha256:DIGEST, "
                             "lower-case name)")
    if r.name is not None and (not _LABEL.fullmatch(r.name) or len(r.name) > 57):
        raise UserInputError(f"--name {r.name!r}: expected a DNS-1123 label of at most 57 characters (lower-case "
                             "letters, digits and '-', starting and ending with a letter or digit)")
    for option, value, pattern, limit in (("--namespace", r.namespace, _LABEL, 63),
                                          ("--service-account", r.service_account, _SUBDOMAIN, 253),
                                          ("--mlflow-secret", r.mlflow_secret or None, _SUBDOMAIN, 253),
                                          ("--dvc-secret", r.dvc_secret or None, _SUBDOMAIN, 253)):
        if value is not None and (not pattern.fullmatch(value) or len(value) > limit):
            raise UserInputError(f"{option} {value!r}: not a Kubernetes name (lower-case letters, digits, '-')")
    for option, value in (("--cpu", r.cpu), ("--memory", r.memory)):
        if not _QUANTITY.fullmatch(value) or not float(re.sub(r"[a-zA-Z]+$", "", value)):
            raise UserInputError(f"{option} {value!r}: expected a Kubernetes quantity such as 500m, 2, 512Mi, 2Gi")
    if r.retries < 0 or (r.timeout is not None and r.timeout < 1):
        raise UserInputError("--retries must be 0 or more and --timeout 1 second or more")
    for option, keys in (("--mlflow-secret-key", r.mlflow_secret_keys), ("--dvc-secret-key", r.dvc_secret_keys)):
        bad = [k for k in keys if not _ENV_NAME.fullmatch(k)]
        if bad:
            raise UserInputError(f"{option} {bad[0]!r}: expected an environment variable name")
    for option, url in (("--tracking-uri", r.tracking_uri), ("--dvc-remote", r.dvc_remote)):
        if url is None:
            continue
        if not url.strip() or any(c.isspace() for c in url) or "{{" in url:
            raise UserInputError(f"{option} {url!r}: expected a URI without spaces or {{{{ }}}} placeholders")
        if redact(url) != url:
            raise UserInputError(f"{option} {redact(url)}: holds credentials, which would be written into the "
                                 "exported file: put them in the secret (--mlflow-secret, --dvc-secret)")


def _setting_warnings(r: ExportRequest) -> list[str]:
    out = []
    tag = _IMAGE.fullmatch(r.image)
    if tag and not tag.group("digest") and tag.group("tag") in (None, "latest"):
        out.append(f"--image {r.image}: no tag or digest (latest): steps may run different builds of the image; "
                   "pin a tag or a digest")
    if not r.tracking_uri:
        out.append("no --tracking-uri: the steps log to MLFLOW_TRACKING_URI from the secret, else to a store "
                   "inside each pod that is lost with it")
    if not r.dvc_remote:
        out.append("no --dvc-remote: the steps exchange products through MLNB_DVC_REMOTE from the secret, else the "
                   "remote the image's .dvc/config names")
    elif "://" not in r.dvc_remote:
        out.append(f"--dvc-remote {r.dvc_remote}: a local path, which each pod sees on its own filesystem; use a "
                   "remote every pod reaches (s3://, gs://, azure://, ssh://, http(s)://)")
    return out


def _step_names(tasks: list[str]) -> dict[str, str]:
    """A unique DNS-1123 label per task, not starting with a digit (Argo refuses such DAG task names)."""
    out: dict[str, str] = {}
    taken = {DAG_TEMPLATE}
    for task in tasks:
        name = dns_label(task, 50) or "task"
        if name[0].isdigit():
            name = f"task-{name}"
        if name in taken:
            name = f"{name}-{hashlib.sha1(task.encode()).hexdigest()[:6]}"
        taken.add(name)
        out[task] = name
    return out


def _params(overrides: tuple[str, ...]) -> tuple[Param, ...]:
    """A workflow parameter per ``-p KEY=VALUE`` (its default: VALUE as typed); the last of a key wins."""
    found: dict[str, Param] = {}
    for text in overrides:
        key, _ = parse_override(text)  # checked against env.yaml by the project already
        name = re.sub(r"[^A-Za-z0-9_]", "_", key.replace(".", "__"))
        clash = next((p for p in found.values() if p.name == name and p.key != key), None)
        if clash:
            raise UserInputError(f"-p {key} and -p {clash.key} would both be the workflow parameter {name!r}")
        found[key] = Param(key, name, text.partition("=")[2])
    return tuple(found.values())


def to_yaml(docs: list[dict[str, Any]], header: list[str]) -> str:
    """``docs`` as one YAML file (several documents separated by ``---``) under a ``#`` comment header."""
    head = "".join(f"# {line}\n" if line else "#\n" for line in header)
    return head + yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=120,
                                allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """Safe YAML without anchors: a mapping shared by two steps is written out twice, as engines expect."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def write(out: Path, filename: str, text: str) -> Path:
    """Write ``text`` to ``out/filename`` atomically (``out`` made when missing); the path written."""
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: is a file, not a directory")
    target = out / filename
    if target.is_dir():
        raise UserInputError(f"--out {out}: {filename} there is a directory")
    try:
        with atomic_write(target) as fh:
            fh.write(text)
    except OSError as exc:
        raise UserInputError(f"--out {out}: cannot write {filename}: {exc.strerror or exc}") from None
    return target


def summary(plan: ExportPlan) -> str:
    """``6 steps, 7 dependencies, 1 parameter`` for the CLI's line."""
    edges, params = len(plan.edges), len(plan.params)
    parts = [f"{len(plan.steps)} step{'' if len(plan.steps) == 1 else 's'}",
             f"{edges} {'dependency' if edges == 1 else 'dependencies'}"]
    if params:
        parts.append(f"{params} parameter{'' if params == 1 else 's'}")
    return ", ".join(parts)
