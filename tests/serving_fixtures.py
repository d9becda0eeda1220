"""Real models for the serving tests and ``benchmarks/serve.py``: scikit-learn's bundled breast-cancer
data (no network), the example pipeline's scaler + logistic regression, saved or registered through
mlnb's own export code (so versions carry the real ``mlnb.artifact_sha256`` tag)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MODEL_NAME = "serve-classifier"


def breast_cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    X = data.data.rename(columns=lambda c: c.strip().replace(" ", "_").lower())
    return X, data.target


def train(C: float = 1.0) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = breast_cancer()
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(X, y)


def save_local_model(dest: Path, C: float = 1.0) -> Path:
    """``dest/model`` (an MLflow model directory, skops) + ``dest/info.json`` with its hash."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from mlnb.core.integrity import model_sha256
    from mlnb.core.io import write_json

    X, _ = breast_cancer()
    model = train(C)
    mlflow.sklearn.save_model(model, str(dest / "model"), signature=infer_signature(X, model.predict(X)),
                              input_example=X.head(5))
    write_json(dest / "info.json", {"model_name": "local-demo", "version": "local",
                                    "artifact_sha256": model_sha256(dest / "model")})
    return dest


def register_versions(root: Path, Cs: list[float], name: str = MODEL_NAME, tracking_uri: str | None = None) -> Any:
    """Register one version per C in ``sqlite:///<root>/mlflow.db`` (or ``tracking_uri``, e.g. a real
    ``mlflow server``) with ``evaluation.export_model`` (the export task's own code); return an
    ``MlflowClient`` on that store."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from mlnb.adapters.mlflow import tracking
    from mlnb.tasklib.evaluation import export_model

    before = os.environ.pop("MLFLOW_TRACKING_URI", None)
    if tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    try:
        tracking.configure(root, "serve-test")
        X, _ = breast_cancer()
        for n, C in enumerate(Cs):
            with mlflow.start_run(run_name=f"train C={C}"):
                export_model(train(C), X.head(5), root / "exports" / f"v{n}", name, tags={"C": str(C)})
        uri = tracking.tracking_uri(root)
    finally:  # mlflow.set_tracking_uri exports it: never leak this store into the next test
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = before
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 90, path: str = "/ready") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + path, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url}{path} not ready after {timeout} s")


def start_mlnb_serve(uri: str | None, port: int, cwd: Path, *extra: str, env: dict[str, str] | None = None,
                     log: Path | None = None) -> subprocess.Popen:
    """A real ``mlnb serve`` process on 127.0.0.1:port (stderr to ``log``); no ``uri``: the project's champion."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "mlnb.cli", "serve", *([uri] if uri else []), "--port", str(port),
                             *extra],
                            cwd=cwd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _mlflow_command() -> tuple[Path, dict[str, str]]:
    """The venv's ``mlflow`` and an environment for it: telemetry off, the venv's bin on PATH (``mlflow
    models serve`` execs ``uvicorn`` from PATH)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    return mlflow, {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1",
                    "PATH": f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def start_mlflow_server(root: Path, port: int) -> subprocess.Popen:
    """A real tracking + registry server (``mlflow server``, artifacts proxied) on 127.0.0.1:port."""
    mlflow, env = _mlflow_command()
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([str(mlflow), "server", "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                             "--artifacts-destination", str(root / "server-artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def start_mlflow_serve(model_dir: Path, port: int, cwd: Path) -> subprocess.Popen:
    """The baseline: ``mlflow models serve --env-manager local`` on the same model."""
    mlflow, env = _mlflow_command()
    return subprocess.Popen([str(mlflow), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
                             "-h", "127.0.0.1", "-p", str(port)], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 20) -> int:
    """SIGTERM the process (and its process group: ``mlflow models serve`` runs uvicorn as a child)."""
    import signal

    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    return proc.returncode


def save_misbehaving_model(dest: Path, mode: str) -> Path:
    """A custom pyfunc model (loads only with ``--allow-unsafe-pickle``) over the breast-cancer columns that,
    on any request but its 5-row warm-up, sleeps 1 s (``mode="sleep"``) or raises (``mode="raise"``)."""
    import mlflow.pyfunc
    import numpy as np
    from mlflow.models import infer_signature

    from mlnb.core.integrity import model_sha256
    from mlnb.core.io import write_json

    class Misbehaving(mlflow.pyfunc.PythonModel):  # pickled by value: the server needs no import path
        def __init__(self, how: str) -> None:
            self.how = how

        def predict(self, context, model_input, params=None):  # no hints: MLflow would check them
            import time

            if len(model_input) != 5:
                if self.how == "raise":
                    raise ValueError("this challenger always fails")
                time.sleep(1.0)
            return np.zeros(len(model_input), dtype="int64")

    X, _ = breast_cancer()
    mlflow.pyfunc.save_model(str(dest / "model"), python_model=Misbehaving(mode),
                             signature=infer_signature(X, np.zeros(len(X), dtype="int64")), input_example=X.head(5))
    write_json(dest / "info.json", {"model_name": f"misbehaving-{mode}", "version": mode,
                                    "artifact_sha256": model_sha256(dest / "model")})
    return dest
