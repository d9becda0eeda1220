"""``mlnb deploy k8s`` (CLI glue over :mod:`mlnb.services.deploy`): Kubernetes manifests for the serving
image, written offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mlnb.cli.kit import handle_errors


@click.group("deploy")
def deploy_group() -> None:
    """Write the manifests that run the serving image (`mlnb serve`, the Dockerfile's `serve` target)."""


@deploy_group.command("k8s")
@click.option("--image", required=True, metavar="IMAGE",
              help="The serving image, pinned: REGISTRY/NAME:TAG or NAME@sha256:DIGEST (not latest).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Directory to write serving.yaml to (made if missing).")
@click.option("--strategy", default="rolling", show_default=True, metavar="rolling|canary|blue-green",
              help="rolling: a Deployment; canary or blue-green: an Argo Rollouts Rollout with Prometheus analysis.")
@click.option("--name", default=None, help="Name of the objects (DNS-1035). [default: the registered model's name]")
@click.option("--namespace", default=None,
              help="Namespace of the objects ('' or not given: kubectl's current).")
@click.option("--model-uri", default=None, metavar="URI",
              help="What the pods serve. [default: models:/<the project's mlflow.model_name>@champion]")
@click.option("--tracking-uri", default=None, metavar="URI",
              help="MLFLOW_TRACKING_URI of the pods, no credentials: they go in --tracking-secret ('' for none).")
@click.option("--tracking-secret", default="mlflow-credentials", show_default=True, metavar="NAME",
              help="Kubernetes Secret with the tracking server's credentials, every key an environment "
                   "variable ('' for none).")
@click.option("--config-map", default=None, metavar="NAME",
              help="Name of the ConfigMap holding the model and tracking URIs. [default: NAME-config]")
@click.option("--replicas", type=int, default=2, show_default=True, help="Pods to start with.")
@click.option("--min-replicas", type=int, default=None, help="Autoscaler's minimum. [default: --replicas]")
@click.option("--max-replicas", type=int, default=None,
              help="Autoscaler's maximum. [default: the larger of 5 and --min-replicas]")
@click.option("--target-cpu", type=int, default=70, show_default=True,
              help="Autoscaler's target: average CPU use, % of the request.")
@click.option("--cpu", default="250m", show_default=True, help="CPU request of a pod.")
@click.option("--cpu-limit", default="1", show_default=True, help="CPU limit of a pod.")
@click.option("--memory", default="512Mi", show_default=True, help="Memory request of a pod.")
@click.option("--memory-limit", default="1Gi", show_default=True, help="Memory limit of a pod.")
@click.option("--canary-steps", default=None, metavar="W1,W2,...",
              help="Canary weights in %, rising, each followed by a pause and an analysis. [default: 10,30,60]")
@click.option("--prometheus-url", default=None, metavar="URL",
              help="Prometheus the analysis queries. [default: http://prometheus-server.monitoring.svc]")
@click.option("--max-error-rate", type=float, default=0.01, show_default=True,
              help="Analysis: highest share of /invocations answered 5xx by the new pods.")
@click.option("--max-p99", "max_p99_seconds", type=float, default=0.5, show_default=True, metavar="SECONDS",
              help="Analysis: highest p99 latency of /invocations on the new pods.")
@click.option("--challenger-traffic", type=float, default=None, metavar="PERCENT",
              help="Each pod also serves models:/NAME@challenger and gives it this share of requests (set the alias "
                   "with `mlnb canary start RUN_ID`; the pods follow it).")
@click.option("--shadow", is_flag=True,
              help="Each pod scores a shadow copy of every request with models:/NAME@challenger (never returned).")
@click.option("--auto-promote", is_flag=True,
              help="blue-green: promote once the analysis passes (default: wait for kubectl argo rollouts promote).")
@handle_errors
def k8s(**options: Any) -> None:
    """Write DIR/serving.yaml: the serving image's ConfigMap, Services, workload (Deployment or Argo Rollout),
    HorizontalPodAutoscaler and PodDisruptionBudget (and, for canary and blue-green, the AnalysisTemplate),
    one multi-document file, written whole or not at all."""
    from mlnb.services import deploy
    from mlnb.services.deploy_k8s import DeployRequest

    out = options.pop("out").resolve()
    for key in ("namespace", "tracking_uri"):  # '' as not given: what an unset CI variable expands to
        options[key] = options[key] or None
    options["model_uri"] = deploy.resolve_model_uri(options["model_uri"])
    result = deploy.deploy_k8s(DeployRequest(**options), out)
    for warning in result.plan.warnings:
        click.echo(f"mlnb: warning: {warning}", err=True)
    click.echo(f"wrote {result.path} ({result.plan.request.strategy}): {', '.join(result.objects)}")
    for step in result.next_steps:
        click.echo(f"next: {step}")


COMMANDS = [deploy_group]
