"""dvc.yaml generation, object verification and DVC config handling (pure: no DVC process)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import yaml

from mlnb.adapters.dvc import objects, repo, stages
from mlnb.core.config import load_env
from mlnb.core.spec import load_spec
from mlnb.errors import SpecError, UserInputError
from tests.conftest import REPO, copy_project, write_notebook


def example_spec(root: Path = REPO):
    return load_spec(root / "pipeline.yaml", load_env(root / "env.yaml"))


def test_committed_dvc_yaml_is_generated_from_pipeline_yaml():
    """Fails when someone edits pipeline.yaml (or a notebook's imports) without `mlnb dvc sync`."""
    current, wanted = stages.compare(example_spec())
    assert current == wanted, stages.unified_diff(current, wanted)
    assert stages.params_linked(REPO)  # params.yaml holds the parameters; env.yaml links to it


def test_generation_is_stable_sorted_and_in_pipeline_order():
    spec = example_spec()
    text = stages.generate(spec)
    assert text == stages.generate(spec)
    data = yaml.safe_load(text)
    assert list(data["stages"]) == list(spec.tasks)
    for body in data["stages"].values():
        for key in ("deps", "outs", "metrics", "plots"):
            assert body.get(key, []) == sorted(body.get(key, [])), key


def test_evaluate_stage_declares_what_dvc_needs():
    spec = example_spec()
    st = stages.stage(spec, spec.tasks["evaluate"])
    assert st["cmd"] == "mlnb run evaluate"
    assert st["metrics"] == ["products/evaluate/metrics.json"]
    assert st["plots"] == ["products/evaluate/confusion_matrix.png", "products/evaluate/roc.png"]
    assert "products/evaluate/roc_curve.csv" in st["outs"]
    # Ploomber's up-to-date record travels with every product, and upstream records are deps
    assert "products/evaluate/.metrics.json.metadata" in st["outs"]
    assert "products/train/.model.joblib.metadata" in st["deps"]
    assert "products/train/model.joblib" in st["deps"] and "notebooks/evaluate.ipynb" in st["deps"]
    assert {"mlnb/core/gate.py", "mlnb/core/metrics.py", "mlnb/tasklib/evaluation.py", "mlnb/tasklib/task.py"} <= set(st["deps"])
    assert not any("site-packages" in d or d.startswith("sklearn") for d in st["deps"])
    assert st["params"] == [{"params.yaml": list(spec.tasks["evaluate"].env_keys)}]
    assert "gate" in spec.tasks["evaluate"].env_keys  # the whole gate section: any gate key re-runs evaluate
    ingest = stages.stage(spec, spec.tasks["ingest"])
    assert "data/raw/breast_cancer.csv" in ingest["deps"]  # a resources_ file


def test_module_deps_follow_project_imports_transitively(tmp_path: Path):
    pkg = tmp_path / "helpers"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import os\nfrom . import b\n\ndef f():\n    from helpers.sub import c\n")
    (pkg / "b.py").write_text("import numpy\n")
    (pkg / "sub").mkdir()
    (pkg / "sub" / "__init__.py").write_text("from .c import X\n")
    (pkg / "sub" / "c.py").write_text("X = 1\n")
    (tmp_path / "unused.py").write_text("")
    nb = write_notebook(tmp_path / "nb.ipynb", [("params", "upstream = None\nproduct = None"),
                                                 ("code", "%matplotlib inline\nfrom helpers.a import f\nimport pandas")])
    found = {p.relative_to(tmp_path).as_posix() for p in stages.module_deps(tmp_path, nb)}
    assert found == {"helpers/__init__.py", "helpers/a.py", "helpers/b.py", "helpers/sub/__init__.py",
                     "helpers/sub/c.py"}


def test_user_sections_are_kept(tmp_path: Path):
    root = copy_project(tmp_path / "p")
    spec = example_spec(root)
    extra = "artifacts:\n  model:\n    path: products/export/model\n    type: model\n"
    text = stages.generate(spec, extra)
    assert text.endswith(stages.USER_MARKER + "\n" + extra)
    assert stages.user_part(text, root / "dvc.yaml").strip() == extra.strip()
    # a hand-written dvc.yaml without the marker: its non-stage sections survive the first sync
    hand = yaml.safe_dump({"stages": {"x": {"cmd": "echo"}}, "plots": [{"roc.csv": {"x": "fpr"}}]})
    assert yaml.safe_load(stages.user_part(hand, root / "dvc.yaml")) == {"plots": [{"roc.csv": {"x": "fpr"}}]}
    (root / "dvc.yaml").write_text(hand)
    current, wanted = stages.compare(spec)
    assert current != wanted and "plots:" in wanted.split(stages.USER_MARKER)[1]
    assert "-  x:" in stages.unified_diff(current, wanted)


def test_params_layouts(tmp_path: Path):
    (tmp_path / "env.yaml").write_text("a: 1\n")
    assert stages.params_linked(tmp_path) is False
    stages.link_params(tmp_path)
    assert stages.params_linked(tmp_path) is True
    assert (tmp_path / "env.yaml").is_symlink() and (tmp_path / "params.yaml").read_text() == "a: 1\n"
    os.unlink(tmp_path / "env.yaml")
    (tmp_path / "env.yaml").write_text("a: 2\n")  # two real files: two sources of truth
    with pytest.raises(SpecError, match="params.yaml"):
        stages.params_linked(tmp_path)


def _put(base: Path, data: bytes) -> str:
    md5 = hashlib.md5(data).hexdigest()
    path = objects.object_path(base, md5)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return md5


def test_verify_names_corrupt_and_missing_objects(tmp_path: Path):
    cache = tmp_path / "cache"
    good, bad = _put(cache, b"good"), _put(cache, b"bad!")
    listing = json.dumps([{"md5": good, "relpath": "a.txt"}, {"md5": bad, "relpath": "b.txt"},
                          {"md5": "0" * 32, "relpath": "c.txt"}]).encode()
    dir_md5 = _put(cache, listing) + ".dir"
    os.rename(objects.object_path(cache, dir_md5[:-4]), objects.object_path(cache, dir_md5))
    assert objects.verify(cache, [objects.Entry("data/raw", dir_md5), objects.Entry("m.txt", good)]) == \
        [objects.Problem("data/raw/c.txt", "0" * 32, "missing", objects.object_path(cache, "0" * 32))]
    objects.object_path(cache, bad).write_bytes(b"bAd!")  # one flipped byte
    problems = objects.verify(cache, [objects.Entry("data/raw", dir_md5)])
    assert [(p.path, p.kind) for p in problems] == [("data/raw/b.txt", "corrupt"), ("data/raw/c.txt", "missing")]


def test_needed_reads_lock_and_dvc_files(tmp_path: Path):
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": {"s": {"outs": [
        {"path": "products/s/x.txt", "md5": "a" * 32, "hash": "md5"}]}}}))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "raw.dvc").write_text(yaml.safe_dump({"outs": [{"md5": "b" * 32 + ".dir", "path": "raw"}]}))
    assert objects.needed(tmp_path) == [objects.Entry("products/s/x.txt", "a" * 32),
                                        objects.Entry("data/raw", "b" * 32 + ".dir")]
    # the nbval workspace (.mlnb/, in .dvcignore) holds a copy of the project: never the project's data
    (tmp_path / ".mlnb/nbval/workspace/data").mkdir(parents=True)
    (tmp_path / ".mlnb/nbval/workspace/data/raw.dvc").write_text((tmp_path / "data/raw.dvc").read_text())
    (tmp_path / "old/data").mkdir(parents=True)
    (tmp_path / "old/data/raw.dvc").write_text((tmp_path / "data/raw.dvc").read_text())
    assert len(objects.dvc_files(tmp_path)) == 3  # nothing ignored yet: DVC would see them all
    (tmp_path / ".dvcignore").write_text("# comment\n.mlnb/\n/old/data/\n*.tmp/\n")
    assert objects.dvc_files(tmp_path) == [tmp_path / "data" / "raw.dvc"]


def test_dvc_errors_become_one_line():
    text = ("Collecting  |0.00 [00:00, ?entry/s]\n"
            "ERROR: failed to push data to the cloud - Cannot connect to host 127.0.0.1:9\n"
            "  [Errno 111] Connect call failed\n"
            "<https://error.dvc.org/missing-files>\n")
    assert repo._dvc_error(text) == ("failed to push data to the cloud - Cannot connect to host 127.0.0.1:9 "
                                     "[Errno 111] Connect call failed")
    assert repo._dvc_error("") == "failed with no message"


def test_credentials_in_the_tracked_config_are_found(tmp_path: Path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text(
        "[core]\n    remote = s3\n['remote \"s3\"']\n    url = s3://bucket/path\n    region = eu-west-1\n"
        "['remote \"web\"']\n    url = https://bob:pw@example.com/x\n")
    assert repo.tracked_secrets(tmp_path) == ['remote "web".url']
    (tmp_path / ".dvc" / "config.local").write_text("['remote \"s3\"']\n    secret_access_key = x\n")
    assert repo.tracked_secrets(tmp_path) == ['remote "web".url']  # config.local is untracked: fine there
    assert repo.remote(tmp_path) == repo.Remote("s3", "s3://bucket/path")
    with pytest.raises(UserInputError, match="contains a password"):
        repo.set_remote(tmp_path, "https://bob:pw@example.com/x")


def test_module_deps_see_through_ipython_syntax_and_namespace_packages(tmp_path: Path):
    (tmp_path / "ns" / "inner").mkdir(parents=True)  # `ns` has no __init__.py: a namespace package
    (tmp_path / "ns" / "inner" / "tool.py").write_text("Y = 2\n")
    (tmp_path / "util.py").write_text("Z = 3\n")
    (tmp_path / "bashonly.py").write_text("")  # named only inside a %%bash cell: not a dependency
    nb = write_notebook(tmp_path / "nb.ipynb", [
        ("params", "upstream = None\nproduct = None"),
        ("code", "files = !ls\n%time import util\nimport ns.inner.tool\nutil?\nprint(files)"),
        ("code", "%%bash\nimport bashonly")])
    found = {p.relative_to(tmp_path).as_posix() for p in stages.module_deps(tmp_path, nb)}
    assert found == {"ns/inner/tool.py", "util.py"}  # the cell parses although it holds IPython syntax


def test_local_remote_paths_resolve_as_dvc_resolves_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(repo.REMOTE_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / ".dvc").mkdir()
    config = tmp_path / ".dvc" / "config.local"
    config.write_text("[core]\n    remote = mlnb\n['remote \"mlnb\"']\n    url = ../../store\n")
    assert repo.remote(tmp_path) == repo.Remote("mlnb", str((tmp_path.parent / "store").resolve()))  # from .dvc/
    config.write_text("[core]\n    remote = mlnb\n['remote \"mlnb\"']\n    url = ~/dvc-store\n")
    assert repo.remote(tmp_path) == repo.Remote("mlnb", str(tmp_path / "home" / "dvc-store"))
    config.write_text("[core]\n    remote = mlnb\n")
    with pytest.raises(UserInputError, match="no remote of that name has a url"):
        repo.remote(tmp_path)
