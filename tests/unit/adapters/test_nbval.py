"""nbval references: sanitising, staleness by cell id, output comparison (pure: no kernel)."""

from __future__ import annotations

import copy
from pathlib import Path

from mlnb.adapters.nbval import reference, sanitize
from mlnb.adapters.nbval.api import REF_DIR, SANITIZE_FILE
from mlnb.core.config import load_env
from mlnb.core.notebooks import read_notebook
from mlnb.core.spec import load_spec
from tests.conftest import REPO

RULES = [(r.regex, r.replace) for r in sanitize.RULES]


def clean(text: str) -> str:
    return sanitize.apply(text, RULES)


def test_committed_sanitize_file_is_generated_from_the_rules():
    text = (REPO / REF_DIR / SANITIZE_FILE).read_text()
    assert text == sanitize.render(sanitize.user_part(text)), "run `mlnb nbval bless` to regenerate it"
    assert sanitize.load(REPO / REF_DIR / SANITIZE_FILE)[: len(RULES)] == RULES  # nbval reads what we read


def test_volatile_values_are_normalised_and_real_changes_are_not():
    assert clean("run 3f2a9c0e1b4d4e5f8a7b6c5d4e3f2a1b logged") == "run <run-id> logged"
    assert clean("at 2026-11-28T11:51:27.123+00:00 and 2026/11/28 11:51:27 INFO x") == \
        "at <timestamp> and <timestamp> INFO x"
    assert clean("took 1.234 s, then 450ms, total 0:00:03") == "took <duration>, then <duration>, total <duration>"
    assert clean("<object at 0x7f3a2b1c9d80>") == "<object at 0x<address>>"
    assert clean("saved /tmp/pytest-1/ws/products/x.parquet and products/train/model.joblib") == \
        "saved <path> and products/train/model.joblib"
    assert clean("model at runs:/0123456789abcdef0123456789abcdef/model") == "model at <uri>"
    assert clean("id 1b4e28ba-2fa1-11d2-883f-0016d3cca427") == "id <uuid>"
    assert clean("Fitting: 40%|████      | 2/5 [00:01<00:02, 1.2it/s]") == "<progress>"
    # floats: BLAS-level noise disappears, a change a person could see does not
    assert clean("f1 0.98888888888901") == clean("f1 0.98888888888723") == "f1 0.988888"
    assert clean("f1 0.9889") != clean("f1 0.9890")
    assert clean("5-fold CV F1 on the train split: 0.9759 +/- 0.0073") == \
        "5-fold CV F1 on the train split: 0.9759 +/- 0.0073"


def nb(*cells: tuple[str, str, str]) -> dict:
    out = []
    for kind, cid, src in cells:
        cell = {"cell_type": kind, "id": cid, "metadata": {}, "source": src}
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        out.append(cell)
    return {"cells": out, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def test_staleness_matches_cells_by_id():
    task = nb(("code", "p", "x = 1"), ("code", "a", "print(x)"), ("code", "b", "y = x * 2"))
    ref = reference.make_reference(task, "x = 3")
    assert reference.staleness(ref, task) is None
    with_md = copy.deepcopy(task)
    with_md["cells"].insert(1, {"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# note"})
    assert reference.staleness(ref, with_md) is None  # a markdown cell shifts nothing
    edited = copy.deepcopy(task)
    edited["cells"][1]["source"] = "print(x + 1)"
    assert reference.staleness(ref, edited) == "code cell 1 (id a) changed"
    added = copy.deepcopy(task)
    added["cells"].append({"cell_type": "code", "id": "c", "metadata": {}, "source": "z = 0", "outputs": []})
    assert reference.staleness(ref, added) == "code cell 3 (id c) was added"
    removed = copy.deepcopy(task)
    del removed["cells"][2]
    assert reference.staleness(ref, removed) == "code cell id b was removed"
    swapped = copy.deepcopy(task)
    swapped["cells"][1], swapped["cells"][2] = swapped["cells"][2], swapped["cells"][1]
    assert reference.staleness(ref, swapped) == "code cells were reordered"


def test_injected_cell_uses_workspace_relative_paths_and_ci_params():
    spec = load_spec(REPO / "pipeline.yaml", load_env(REPO / "env.ci.yaml"))
    src = reference.injected_source(spec, spec.tasks["train"], "env.ci.yaml")
    assert "'features': {" in src and "'train': 'products/features/train.parquet'" in src
    assert "product = {'nb': 'nbval-out/train/train.ipynb', 'model': 'nbval-out/train/model.joblib'" in src
    assert "max_iter = 500" in src and str(REPO) not in src
    ref = reference.make_reference(read_notebook(REPO / "notebooks/train.ipynb"), src)
    at = next(i for i, c in enumerate(ref["cells"]) if "parameters" in c["metadata"].get("tags", []))
    assert ref["cells"][at + 1]["id"] == reference.INJECTED_ID
    assert all(not c.get("outputs") for c in ref["cells"] if c["cell_type"] == "code")
    rerun = reference.with_injected(ref, "C = 9.0")  # executed with the current CI params
    assert [c["source"] for c in rerun["cells"] if c["id"] == reference.INJECTED_ID] == ["C = 9.0"]
    assert [c["source"] for c in rerun["cells"] if c["id"] != reference.INJECTED_ID] == \
        [c["source"] for c in ref["cells"] if c["id"] != reference.INJECTED_ID]


def out_cell(cid: str, *outputs: dict, tags: tuple[str, ...] = ()) -> dict:
    return {"cell_type": "code", "id": cid, "metadata": {"tags": list(tags)}, "source": "x", "outputs": list(outputs)}


def stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stdout", "text": text}


def plot(png: str) -> dict:
    return {"output_type": "display_data", "data": {"image/png": png, "text/plain": "<Figure size 640x480>"},
            "metadata": {}}


def test_compare_by_id_with_plots_by_presence():
    ref = {"cells": [out_cell("a", stream("F1 0.9889\n")), out_cell("b", plot("AAAA")),
                     out_cell("c", stream("took 3.2 s\n")), out_cell("d", stream("t\n"), tags=("nbval-ignore-output",))]}
    now = {"cells": [{"cell_type": "markdown", "id": "new", "metadata": {}, "source": "inserted"},
                     out_cell("a", stream("F1 0.9889\n")), out_cell("b", plot("BBBB")),
                     out_cell("c", stream("took 9.9 s\n")), out_cell("d", stream("other\n"))]}
    assert reference.compare("x.ipynb", ref, now, RULES) == []  # other pixels, other duration, ignored cell
    now["cells"][2]["outputs"] = []  # the plot is gone
    now["cells"][1]["outputs"] = [stream("F1 0.9901\n")]
    diffs = reference.compare("x.ipynb", ref, now, RULES)
    assert [(d.cell_id, d.index) for d in diffs] == [("a", 0), ("b", 1)]
    assert "-  F1 0.9889" in diffs[0].diff and "+  F1 0.9901" in diffs[0].diff
    assert "[image]" in diffs[1].diff


def test_streams_coalesce_with_carriage_returns_and_errors_compare_by_name_and_value():
    ref = {"cells": [out_cell("a", stream("0%\r50%\r100%\n"), stream("done\n"))]}
    now = {"cells": [out_cell("a", stream("100%\ndone\n"))]}
    assert reference.compare("x.ipynb", ref, now, RULES) == []
    boom = {"output_type": "error", "ename": "ValueError", "evalue": "bad value 3", "traceback": ["..."]}
    raised = {"cells": [out_cell("a", stream("100%\ndone\n"), boom)]}
    (diff,) = reference.compare("x.ipynb", ref, raised, RULES)
    assert "ValueError" in diff.diff and "bad value 3" in diff.diff


def test_committed_references_hold_the_current_notebook_code():
    spec = load_spec(REPO / "pipeline.yaml", load_env(REPO / "env.ci.yaml"))
    for name, task in spec.tasks.items():
        ref = read_notebook(REPO / REF_DIR / f"{name}.ipynb")
        assert reference.staleness(ref, read_notebook(task.source)) is None, name
        assert any(c.get("outputs") for c in ref["cells"]), f"{name}: reference holds no outputs"


def test_sanitize_file_keeps_user_rules(tmp_path: Path):
    text = sanitize.render("# mine\nregex: secret-\\d+\nreplace: <secret>\n")
    assert sanitize.user_part(text) == "# mine\nregex: secret-\\d+\nreplace: <secret>\n"
    path = tmp_path / "s.cfg"
    path.write_text(text)
    assert sanitize.load(path)[-1] == ("secret-\\d+", "<secret>")
