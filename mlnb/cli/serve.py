"""``mlnb serve`` and ``mlnb fetch-model`` (CLI glue over :mod:`mlnb.serving`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import click

from mlnb.cli.kit import handle_errors
from mlnb.core import settings
from mlnb.errors import MlnbError, ServingError, UserInputError


def _context(model_uri: str | None, allow_unsafe_pickle: bool) -> tuple[str, Path]:
    """The model URI (default: the project's ``models:/<model_name>@champion``) and the download cache;
    MLflow pointed at the project's store when run inside a project."""
    from mlnb.adapters.mlflow.safeload import UNSAFE_ENV
    from mlnb.adapters.mlflow.tracking import telemetry_off, use_store
    from mlnb.core.io import find_project_root

    telemetry_off()
    # the opt-in is process-wide (workers fork from here); MLflow's own unpickling switch stays off
    os.environ[UNSAFE_ENV] = "1" if allow_unsafe_pickle else "0"
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # logs, not progress bars
    try:
        root: Path | None = find_project_root()
    except UserInputError:
        root = None
    if root is not None:
        use_store(root)
    if not model_uri:
        if root is None:
            raise UserInputError("MODEL_URI: not given (nor MLNB_MODEL_URI), and no pipeline.yaml here to find "
                                 "the project's model name")
        from mlnb.core.project import load_project

        project = load_project(root)
        name = project.mlflow.get("model_name")
        if not isinstance(name, str) or not name:
            raise UserInputError(f"{project.env_path}: mlflow.model_name: not set, so pass MODEL_URI")
        model_uri = f"models:/{name}@champion"
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mlnb" / "serve"
    cache = settings.state_dir(root) / "serve-cache" if root else user_cache
    return model_uri, cache


@click.command()
@click.argument("model_uri", required=False, envvar="MLNB_MODEL_URI")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="MLNB_SERVE_HOST")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), envvar="MLNB_SERVE_PORT")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), envvar="MLNB_SERVE_WORKERS",
              help="Processes sharing the port (forked; each scores on its own core).")
@click.option("--max-body-mb", default=10.0, show_default=True, type=click.FloatRange(0.001, 1024),
              help="Requests over this size get 413 before they are read.")
@click.option("--poll-interval", default=30.0, show_default=True, type=click.FloatRange(0),
              help="Seconds between registry checks of the alias (0: never swap).")
@click.option("--prediction-log", type=click.Path(dir_okay=False, path_type=Path),
              help="Append sampled inputs and predictions here (JSONL).")
@click.option("--log-sample-rate", default=1.0, show_default=True, type=click.FloatRange(0, 1),
              help="Fraction of requests written to the prediction log.")
@click.option("--log-max-rows", default=100, show_default=True, type=click.IntRange(1),
              help="Rows of a request kept in its prediction log record.")
@click.option("--no-verify", is_flag=True, help="Serve even if the model's files cannot be checked against "
              "the recorded mlnb.artifact_sha256 (not recommended).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where registry downloads go (default .mlnb/serve-cache in a project).")
@click.option("--allow-unsafe-pickle", is_flag=True, envvar="MLNB_ALLOW_UNSAFE_PICKLE",
              help="DANGEROUS: also load pickle, cloudpickle and custom-pyfunc models, and skops types outside "
                   "mlnb's allow-list. Loading such a file runs its author's code.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="debug also logs every request.")
@click.option("--challenger", "challenger_uri", metavar="URI", envvar="MLNB_CHALLENGER_URI",
              help="A second model served beside MODEL_URI (e.g. models:/NAME@challenger; hot-swapped, and "
                   "retired when its alias is removed). With --traffic or --shadow.")
@click.option("--traffic", type=click.FloatRange(0, 100), default=None, envvar="MLNB_CHALLENGER_TRAFFIC",
              help="Percent of requests the challenger answers (sticky per routing key).")
@click.option("--shadow", is_flag=True, envvar="MLNB_SHADOW",
              help="Every request is scored by both; the champion answers, the challenger's answer is only "
                   "compared and logged.")
@click.option("--routing-header", default="X-Routing-Key", show_default=True,
              help="Requests carrying this header go to the same variant for the same value.")
@click.option("--drift-reference", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              envvar="MLNB_DRIFT_REFERENCE", help="Live drift gauges on /metrics: PSI of each feature over the last "
              "--drift-window rows against this table (the train split, .parquet or .csv).")
@click.option("--drift-window", type=click.IntRange(100, 1_000_000), default=1000, show_default=True,
              help="Rows the drift gauges cover.")
@click.option("--drift-target", default=None, help="The reference's label column (predictions are compared with "
              "it). [default: the project's data.target]")
@handle_errors
def serve(model_uri: str | None, host: str, port: int, workers: int, max_body_mb: float, poll_interval: float,
          prediction_log: Path | None, log_sample_rate: float, log_max_rows: int, no_verify: bool,
          cache_dir: Path | None, allow_unsafe_pickle: bool, log_level: str, challenger_uri: str | None,
          traffic: float | None, shadow: bool, routing_header: str, drift_reference: Path | None,
          drift_window: int, drift_target: str | None) -> None:
    """Serve MODEL_URI over HTTP in MLflow's scoring protocol (default models:/<model_name>@champion).

    MODEL_URI: models:/NAME@ALIAS (hot-swapped when the alias moves), models:/NAME/VERSION, runs:/ID/PATH,
    or a local model directory (products/export/model, or one written by mlnb fetch-model).
    Endpoints: POST /invocations, GET /health /ping /ready /version /metrics /openapi.json.
    Every answer says which version answered (X-Model-Version) and which variant (X-Model-Variant).
    """
    from importlib.metadata import version

    from mlnb.serving import server, source
    from mlnb.serving.variants import Split

    if challenger_uri and (traffic is None) == (not shadow):
        raise UserInputError("--challenger: give either --traffic PERCENT or --shadow (one of them)")
    if not challenger_uri and (traffic is not None or shadow):
        raise UserInputError("--traffic/--shadow: need --challenger URI (the model that shares the requests)")
    uri, cache = _context(model_uri, allow_unsafe_pickle)
    challenger = source.parse_uri(challenger_uri) if challenger_uri else None
    if challenger is not None and challenger.uri == uri:
        raise UserInputError(f"--challenger {challenger_uri}: the same model as MODEL_URI")
    split = Split(traffic=traffic or 0.0, shadow=shadow, header=routing_header)
    server.setup_logging(getattr(logging, log_level.upper()))
    options = server.Options(host=host, port=port, workers=workers, max_body=int(max_body_mb * 2 ** 20),
                             poll_interval=poll_interval, verify=not no_verify, cache_dir=cache_dir or cache,
                             prediction_log=prediction_log, log_sample_rate=log_sample_rate,
                             log_max_rows=log_max_rows, challenger=challenger, split=split,
                             drift_reference=drift_reference, drift_window=drift_window,
                             drift_target=drift_target if drift_target is not None or not drift_reference
                             else _target())
    versions = {"mlnb": version("mlnb"), "mlflow": version("mlflow")}

    def ready(ident: Any, sockets: list[Any]) -> None:
        bound = sockets[0].getsockname()
        what = f"{ident.model_name} version {ident.model_version}" if ident.model_version else ident.model_uri
        check = "sha256 verified" if ident.verified else "NOT verified (--no-verify)"
        if allow_unsafe_pickle:
            check += "; UNSAFE: --allow-unsafe-pickle lets a model file run code"
        click.echo(f"serving {what} ({check}) on http://{host}:{bound[1]} "
                   f"with {workers} worker{'s' if workers > 1 else ''}", err=True)
        if challenger is not None:
            share = "a shadow copy of every request" if shadow else f"{traffic:g} % of requests"
            click.echo(f"challenger {challenger.uri}: {share} (routing header {routing_header})", err=True)

    server.serve(source.parse_uri(uri), options, versions, ready)


def _target() -> str | None:
    """The project's ``data.target`` (the label column of its training data), when run in a project."""
    from mlnb.core.io import find_project_root

    try:
        from mlnb.core.project import load_project

        target = (load_project(find_project_root()).env.get("data") or {}).get("target")
    except (MlnbError, OSError):
        return None
    return str(target) if target else None


@click.command("fetch-model")
@click.argument("model_uri")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-verify", is_flag=True, help="Do not check the files against mlnb.artifact_sha256.")
@click.option("--allow-unsafe-pickle", is_flag=True, envvar="MLNB_ALLOW_UNSAFE_PICKLE",
              help="DANGEROUS: also load pickle, cloudpickle and custom-pyfunc models, and skops types outside "
                   "mlnb's allow-list. Loading such a file runs its author's code.")
@handle_errors
def fetch_model(model_uri: str, dest: Path, no_verify: bool, allow_unsafe_pickle: bool) -> None:
    """Download MODEL_URI, check its hash, and write DEST/model + DEST/info.json (what `mlnb serve DEST`
    serves offline; the Dockerfile bakes a model into the serving image with it)."""
    from mlnb.adapters.mlflow.safeload import check_model
    from mlnb.serving import source

    uri, cache = _context(model_uri, allow_unsafe_pickle)
    ref = source.parse_uri(uri)
    path, identity = source.fetch(ref, cache, verify=not no_verify)
    try:
        try:
            check_model(path)  # a model `mlnb serve` would refuse is not written either
        except MlnbError:
            raise
        except Exception as exc:
            raise ServingError(f"{uri}: the model failed to load: {type(exc).__name__}") from None
        source.write_fetched(path, identity, dest)
    finally:
        if ref.downloaded:
            source.discard(path, cache)
    click.echo(f"{dest}: {identity.model_name or uri} version {identity.model_version or '?'} "
               f"(sha256 {identity.artifact_sha256[:16]}...)")


COMMANDS = [serve, fetch_model]
