"""No code runs from a model file: a pickle that runs a command on load, and a skops file whose own
MLmodel trusts a dangerous function, are refused by `mlnb serve` and `mlnb fetch-model` (their hashes
are valid: whoever registers a model writes its hash); the loud opt-in serves the pickle and says so."""

from __future__ import annotations

import json
import operator
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlnb.core.integrity import model_sha256
from mlnb.core.io import write_json
from tests.serving_fixtures import REPO, free_port, save_local_model, start_mlnb_serve, stop, wait_ready

pytestmark = pytest.mark.integration


class RunsOnLoad:
    """Unpickling this runs a shell command (what a crafted model does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


class ModelThatRunsOnLoad:
    """Unpickles to a working ``model``, having run the command first (nothing looks wrong)."""

    def __init__(self, marker: Path, model: object) -> None:
        self.marker, self.model = marker, model

    def __reduce__(self) -> tuple:
        return (operator.itemgetter(1), ((RunsOnLoad(self.marker), self.model),))


def _rewrite(model: Path, weights_name: str, weights: bytes, flavor: dict) -> None:
    """Replace the weights and the sklearn flavor of ``model/model`` and record a matching hash."""
    (model / "model" / "model.skops").unlink()
    (model / "model" / weights_name).write_bytes(weights)
    meta = yaml.safe_load((model / "model" / "MLmodel").read_text())
    meta["flavors"]["sklearn"].update(flavor)
    meta["flavors"]["python_function"]["model_path"] = weights_name
    (model / "model" / "MLmodel").write_text(yaml.safe_dump(meta))
    write_json(model / "info.json", {"model_name": "crafted", "version": "1",
                                     "artifact_sha256": model_sha256(model / "model")})


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_local_model(tmp_path_factory.mktemp("good"))


def crafted_pickle(good: Path, dest: Path, marker: Path) -> Path:
    shutil.copytree(good, dest)
    from tests.serving_fixtures import train

    _rewrite(dest, "model.pkl", pickle.dumps(ModelThatRunsOnLoad(marker, train())),
             {"serialization_format": "cloudpickle", "pickled_model": "model.pkl"})
    return dest


def crafted_skops(good: Path, dest: Path) -> Path:
    """A valid skops file holding a FunctionTransformer that calls ``os.system`` on predict; its own
    MLmodel lists that function as trusted (as MLflow's ``skops_trusted_types`` would)."""
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    shutil.copytree(good, dest)
    data = skops.io.dumps(FunctionTransformer(func=os.system))
    trusted = skops.io.get_untrusted_types(data=data)
    assert any("system" in t for t in trusted)
    _rewrite(dest, "model.skops", data, {"serialization_format": "skops", "skops_trusted_types": trusted})
    return dest


def mlnb(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlnb.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.mark.parametrize("kind", ["pickle", "skops"])
def test_a_model_that_would_run_code_is_refused(good: Path, tmp_path: Path, kind: str) -> None:
    marker = tmp_path / "pwned"
    model = crafted_pickle(good, tmp_path / "m", marker) if kind == "pickle" else crafted_skops(good, tmp_path / "m")
    expected = "runs code when loaded" if kind == "pickle" else "outside mlnb's allow-list"
    for args in (["serve", str(model), "--port", str(free_port())], ["fetch-model", str(model), str(tmp_path / "out")]):
        result = mlnb(*args, cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1 and expected in lines[0], result.stderr
        assert "--allow-unsafe-pickle" in lines[0]
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_the_opt_in_is_loud_and_reported(good: Path, tmp_path: Path) -> None:
    """The refusal above is the product's doing: the same pickle, opted in, is loaded (its command
    runs, which is what the opt-in means) and ``/version`` says the load was unsafe."""
    marker = tmp_path / "pwned"
    model = crafted_pickle(good, tmp_path / "m", marker)
    port = free_port()
    proc = start_mlnb_serve(str(model), port, tmp_path, "--allow-unsafe-pickle", "--poll-interval", "0",
                            log=tmp_path / "log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert _version(port)["unsafe_load"] is True
    finally:
        stop(proc)
    assert marker.exists()
    assert "UNSAFE" in (tmp_path / "log").read_text()


def _version(port: int) -> dict:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=10) as resp:
        return json.loads(resp.read())


def test_a_skops_model_still_serves_and_says_it_was_safe(good: Path, tmp_path: Path) -> None:
    port = free_port()
    proc = start_mlnb_serve(str(good), port, tmp_path, "--poll-interval", "0", log=tmp_path / "log")
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        assert _version(port)["unsafe_load"] is False
    finally:
        stop(proc)


@pytest.mark.parametrize("name, allowed", [
    ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", True),
    ("sklearn.linear_model._logistic.LogisticRegression", True),
    ("sklearn.utils.validation.check_array", False),  # a function: predict may call it
    ("builtins.eval", False), ("posix.system", False), ("sklearnx.Evil", False), ("sklearn.NoSuchThing", False),
    ("sklearn..", False), ("", False),
])
def test_the_allow_list(name: str, allowed: bool) -> None:
    from mlnb.adapters.mlflow.safeload import allowed_type

    assert allowed_type(name) is allowed
