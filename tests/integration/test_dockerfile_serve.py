"""The serving image's commands, run outside Docker (no engine here): the build-time bake step, the
ENTRYPOINT with the image's ENV, and the HEALTHCHECK, against a real `mlflow server`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.serving_fixtures import (
    MODEL_NAME,
    REPO,
    free_port,
    register_versions,
    start_mlflow_server,
    stop,
    wait_ready,
)

pytestmark = pytest.mark.integration
IMAGE_HOME = "/home/mlnb"


def serve_stage() -> dict:
    """The ``serve`` stage of the Dockerfile: ARGs, RUNs, ENV, EXPOSE, USER, HEALTHCHECK, ENTRYPOINT."""
    text = (REPO / "Dockerfile").read_text()
    lines, joined = [], ""
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        joined += raw.rstrip("\\").rstrip() + " " if raw.rstrip().endswith("\\") else raw
        if not raw.rstrip().endswith("\\"):
            lines.append(" ".join(joined.split()))
            joined = ""
    start = next(i for i, line in enumerate(lines) if re.fullmatch(r"FROM \S+ AS serve", line))
    stage = {"ARG": [], "RUN": [], "ENV": {}, "EXPOSE": [], "USER": [], "HEALTHCHECK": [], "ENTRYPOINT": [],
             "CMD": []}
    for line in lines[start + 1:]:
        if line.startswith("FROM "):
            break
        if not line:
            continue
        word, _, rest = line.partition(" ")
        if word == "ENV":
            stage["ENV"].update(dict(pair.split("=", 1) for pair in shlex.split(rest)))
        elif word in stage:
            stage[word].append(rest.strip())
    return stage


def local(value: str, home: Path) -> str:
    return value.replace(IMAGE_HOME, str(home))


def test_the_serving_stage_is_locked_down() -> None:
    stage = serve_stage()
    assert stage["USER"] == ["10001"]
    assert stage["EXPOSE"] == [stage["ENV"]["MLNB_SERVE_PORT"]]
    assert json.loads(stage["ENTRYPOINT"][0]) == ["mlnb", "serve"]
    assert re.match(r"--interval=\S+ --timeout=\S+ --start-period=\S+ --retries=\d+ CMD \[", stage["HEALTHCHECK"][0])
    assert {a.split("=")[0] for a in stage["ARG"]} == {"MODEL_URI", "MLFLOW_TRACKING_URI"}


def test_bake_run_and_healthcheck_outside_docker(tmp_path: Path) -> None:
    stage = serve_stage()
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    tracking = f"http://127.0.0.1:{port}"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # `mlnb` and `python` as in the image
    base_env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": path}
    procs = []
    try:
        wait_ready(tracking, server, path="/health", timeout=120)
        client = register_versions(tmp_path / "proj", [1.0], tracking_uri=tracking)
        client.set_registered_model_alias(MODEL_NAME, "champion", "1")
        champion = f"models:/{MODEL_NAME}@champion"

        # docker build --build-arg MODEL_URI=... --build-arg MLFLOW_TRACKING_URI=...: the RUN steps
        for run in stage["RUN"]:
            done = subprocess.run(["sh", "-c", local(run, home)], cwd=home, capture_output=True, text=True,
                                  env={**base_env, "MODEL_URI": champion, "MLFLOW_TRACKING_URI": tracking},
                                  timeout=300)
            assert done.returncode == 0, done.stderr
        baked = Path(local(stage["ENV"]["MLNB_MODEL_URI"], home))
        assert (baked / "model" / "MLmodel").is_file() and (baked / "info.json").is_file()

        # docker run: the ENTRYPOINT with the image's ENV, and no MLflow reachable (the model is baked in)
        serve_port = free_port()
        env = {**base_env, **{k: local(v, home) for k, v in stage["ENV"].items()},
               "MLNB_SERVE_PORT": str(serve_port), "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
        command = json.loads(stage["ENTRYPOINT"][0]) + (json.loads(stage["CMD"][0]) if stage["CMD"] else [])
        log = open(tmp_path / "serve.log", "wb")
        proc = subprocess.Popen(command, cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.append(proc)
        wait_ready(f"http://127.0.0.1:{serve_port}", proc)
        assert f"on http://0.0.0.0:{serve_port}" in (tmp_path / "serve.log").read_text()  # MLNB_SERVE_HOST

        health = json.loads(stage["HEALTHCHECK"][0].split(" CMD ", 1)[1])
        assert subprocess.run(health, env=env, timeout=30).returncode == 0
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{serve_port}/version", timeout=10) as resp:
            info = json.loads(resp.read())
        assert info["model_name"] == MODEL_NAME and info["model_version"] == "1" and info["verified"] is True
        assert stop(proc) == 0
        failed = subprocess.run(health, env=env, timeout=30, capture_output=True, text=True)
        assert failed.returncode == 1 and "not ready" in failed.stderr

        # docker run -e MLNB_MODEL_URI=models:/...@champion -e MLFLOW_TRACKING_URI=...: pulled at start
        pull_port = free_port()
        pulled = subprocess.Popen(command, cwd=home, start_new_session=True, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL,
                                  env={**env, "MLNB_SERVE_PORT": str(pull_port), "MLNB_MODEL_URI": champion,
                                       "MLFLOW_TRACKING_URI": tracking})
        procs.append(pulled)
        wait_ready(f"http://127.0.0.1:{pull_port}", pulled)
        with urllib.request.urlopen(f"http://127.0.0.1:{pull_port}/version", timeout=10) as resp:
            assert json.loads(resp.read())["alias"] == "champion"
    finally:
        for proc in procs:
            stop(proc)
        stop(server)
