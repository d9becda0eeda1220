"""``--entry-point`` (and Ploomber's ``ENTRY_POINT``) on every command that reads the pipeline, run as
the user runs them: the CLI in a subprocess, in a copy of a project whose only spec is
``pipeline.serve.yaml`` (no ``pipeline.yaml``)."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import git_init, run_mlnb

pytestmark = pytest.mark.integration

SOURCE = Path(__file__).resolve().parents[1] / "compat" / "projects" / "entry_point"
ENTRY = ["--entry-point", "pipeline.serve.yaml"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("entry") / "serve"
    shutil.copytree(SOURCE, root)
    git_init(root)
    built = run_mlnb(root, "build", "--no-dvc", *ENTRY)
    assert built.returncode == 0, built.stdout + built.stderr
    assert json.loads((root / "out/serve-total.json").read_text()) is not None
    return root


def test_without_the_entry_point_a_command_says_which_spec_it_looked_for(project: Path) -> None:
    said = run_mlnb(project, "run", "total")
    assert said.returncode == 2 and len(said.stderr.strip().splitlines()) == 1, said.stderr
    assert "pipeline.yaml" in said.stderr and "Traceback" not in said.stderr


@pytest.mark.parametrize("how", ["option", "variable"])
def test_run_status_and_report_read_the_entry_points_pipeline(project: Path, how: str) -> None:
    args, env = (ENTRY, None) if how == "option" else ([], {"ENTRY_POINT": "pipeline.serve.yaml"})
    before = (project / "out/serve-total.json").stat().st_mtime_ns
    ran = run_mlnb(project, "run", "total", *args, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (project / "out/serve-total.json").stat().st_mtime_ns > before  # run is forced: it ran again
    status = run_mlnb(project, "status", *args, env=env)
    assert status.returncode == 0 and "total" in status.stdout and "outdated" not in status.stdout, status.stdout
    report = run_mlnb(project, "report", "-o", f"reports/{how}.html", *args, env=env)
    assert report.returncode == 0, report.stderr
    assert "total" in (project / f"reports/{how}.html").read_text()


def test_dvc_stages_run_the_task_of_the_entry_points_pipeline(project: Path) -> None:
    """``mlnb dvc init -e`` writes stages whose command names the entry point, so ``dvc repro`` (which runs
    each stage's ``cmd``) builds the same pipeline; the stage command works as written."""
    subprocess.run(["git", "checkout", "-q", "--", "."], cwd=project, check=True)
    made = run_mlnb(project, "dvc", "init", *ENTRY)
    assert made.returncode == 0, made.stderr
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert stages["total"]["cmd"] == "mlnb run total --entry-point pipeline.serve.yaml"
    assert "out/serve-data.json" in stages["total"]["deps"]
    assert run_mlnb(project, "dvc", "sync", "--check", *ENTRY).returncode == 0
    assert run_mlnb(project, "dvc", "sync", "--check").returncode == 2  # no pipeline.yaml: not the same pipeline
    cmd = shlex.split(stages["total"]["cmd"])
    ran = run_mlnb(project, *cmd[1:])  # as `dvc repro` runs it, with this interpreter's mlnb
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_spec_in_a_subfolder_builds_and_reports_from_the_project_root(tmp_path: Path) -> None:
    """Ploomber resolves a spec's products against the spec's folder (``specs/out/``); mlnb's own records
    (``products/last_build.json``, read by `mlnb report` and `mlnb verdict`) stay at the project root."""
    root = tmp_path / "sub"
    (root / "specs").mkdir(parents=True)
    (root / "specs/pipeline.train.yaml").write_text("tasks:\n  - source: load.py\n    product:\n"
                                                    "      nb: out/load.html\n      data: out/data.txt\n")
    (root / "specs/load.py").write_text('# %% tags=["parameters"]\nupstream = None\nproduct = None\n\n# %%\n'
                                        "open(product['data'], 'w').write('3')\nprint('wrote 3')\n")
    git_init(root)
    args = ["--entry-point", "specs/pipeline.train.yaml"]
    built = run_mlnb(root, "build", "--no-dvc", *args)
    assert built.returncode == 0, built.stdout + built.stderr
    assert (root / "specs/out/data.txt").read_text() == "3"
    again = run_mlnb(root, "build", "--no-dvc", *args)
    assert "Nothing to do" in again.stdout, again.stdout + again.stderr
    report = run_mlnb(root, "report", *args)
    assert report.returncode == 0, report.stderr
    assert "wrote 3" in (root / "reports/report.html").read_text()  # the HTML render, embedded
    assert not (root / "specs/products/last_build.json").exists()
    refused = run_mlnb(root, "dvc", "init", *args)  # stages at the root would name products of specs/: refused
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "products resolve against specs/" in refused.stderr and not (root / ".dvc").exists()
