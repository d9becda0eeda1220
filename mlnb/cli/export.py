"""``mlnb export argo`` / ``mlnb export kubeflow`` (CLI glue over :mod:`mlnb.services.export_argo` and
:mod:`mlnb.services.export_kubeflow`): the pipeline as a workflow for a Kubernetes engine, written offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from mlnb.cli.kit import entry_point_option, handle_errors
from mlnb.cli.kit import project as _project


@click.group("export")
def export_group() -> None:
    """Write the pipeline as a workflow for a Kubernetes engine: one step per task, each running
    `mlnb run TASK --exchange` in the project image, products handed on through the DVC remote."""


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--image", required=True, metavar="IMAGE",
                     help="The project image every step runs (mlnb installed, working directory the project)."),
        click.option("--out", "out", required=True, type=click.Path(path_type=Path), metavar="DIR",
                     help="Directory to write to (made if missing)."),
        click.option("--name", default=None, help="Workflow name (DNS-1123). [default: the project folder's name]"),
        click.option("-p", "--param", "params", multiple=True, metavar="KEY=VALUE",
                     help="Override an env key, as `mlnb build -p`; each becomes a workflow parameter (repeatable)."),
        click.option("--tracking-uri", default=None, metavar="URI",
                     help="MLFLOW_TRACKING_URI of every step (no credentials: they go in --mlflow-secret)."),
        click.option("--dvc-remote", default=None, metavar="URL",
                     help="MLNB_DVC_REMOTE of every step: the remote products are exchanged through."),
        click.option("--mlflow-secret", default="mlflow-credentials", show_default=True, metavar="NAME",
                     help="Kubernetes Secret with MLflow's credentials ('' for none)."),
        click.option("--dvc-secret", default="dvc-credentials", show_default=True, metavar="NAME",
                     help="Kubernetes Secret with the DVC remote's credentials ('' for none)."),
        click.option("--cpu", default="1", show_default=True, help="CPU request of each step."),
        click.option("--memory", default="2Gi", show_default=True, help="Memory request of each step."),
        click.option("--retries", type=click.IntRange(min=0, max=20), default=2, show_default=True,
                     help="Times a failed step is run again."),
        click.option("--timeout", type=click.IntRange(min=1), default=None, metavar="SECONDS",
                     help="Time a step may run (activeDeadlineSeconds). [default: none]"),
        entry_point_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _request(options: dict[str, Any]) -> Any:
    from mlnb.services.export import ExportRequest

    fields = ("image", "name", "params", "entry_point", "tracking_uri", "dvc_remote", "mlflow_secret", "dvc_secret",
              "cpu", "memory", "retries", "timeout", "namespace", "service_account", "mlflow_secret_keys",
              "dvc_secret_keys")
    return ExportRequest(**{k: options[k] for k in fields if k in options})


def _report(result: Any) -> None:
    from mlnb.services.export import summary

    for warning in result.plan.warnings:
        click.echo(f"mlnb: warning: {warning}", err=True)
    click.echo(f"wrote {result.path} ({summary(result.plan)})")


@export_group.command("argo")
@_common
@click.option("--namespace", default=None, help="The Workflow's namespace. [default: argo submit's]")
@click.option("--service-account", default=None, metavar="NAME",
              help="The service account the steps' pods run as. [default: the namespace's]")
@handle_errors
def argo(**options: Any) -> None:
    """Write DIR/workflow.yaml, an Argo Workflows Workflow: one DAG task per pipeline task, the manifests of
    upstream products passed as parameters, credentials from the Secrets by name (envFrom)."""
    from mlnb.services import export_argo

    out = options["out"].resolve()  # before the project's root becomes the working directory
    project = _project(overrides=tuple(options["params"]), entry_point=options["entry_point"])
    _report(export_argo.export(project, _request(options), out))


@export_group.command("kubeflow")
@_common
@click.option("--mlflow-secret-key", "mlflow_secret_keys", multiple=True, metavar="KEY",
              help="A key of --mlflow-secret to pass on as the variable of that name (repeatable). "
                   "[default: MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD]")
@click.option("--dvc-secret-key", "dvc_secret_keys", multiple=True, metavar="KEY",
              help="A key of --dvc-secret to pass on as the variable of that name (repeatable). "
                   "[default: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY]")
@handle_errors
def kubeflow(**options: Any) -> None:
    """Write DIR/kubeflow-pipeline.yaml, a Kubeflow Pipelines v2 pipeline: one task per pipeline task, the
    manifests of upstream products passed as parameters, credentials from the Secrets' keys (kfp-kubernetes'
    platform spec)."""
    from mlnb.services import export_kubeflow

    for key in ("mlflow_secret_keys", "dvc_secret_keys"):
        if not options[key]:
            del options[key]  # the request's defaults
    out = options["out"].resolve()  # before the project's root becomes the working directory
    project = _project(overrides=tuple(options["params"]), entry_point=options["entry_point"])
    _report(export_kubeflow.export(project, _request(options), out))
