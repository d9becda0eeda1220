"""``mlnb convert`` on a corpus of small exploratory notebooks (tests/convert/corpus/).

* every notebook converts, and the pipeline reproduces the original: same stdout, same
  displayed values, same number of figures per cell (real kernels: the slow part);
* the plans of the hard cases say the right thing (who loads what from where, merges,
  params, one-step notebooks) without running anything;
* the CLI: ``--dry-run``, a non-empty ``--out``, a malformed notebook.

Regenerate the corpus with ``python tests/convert/make_corpus.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlnb.convert import convert
from mlnb.convert.compare import check_conversion
from tests.conftest import run_mlnb
from tests.convert import make_corpus

CORPUS = Path(__file__).parent / "corpus"
NOTEBOOKS = sorted(p.stem for p in CORPUS.glob("*.ipynb"))
# How each notebook is split (default: at level <= 2 markdown headings).
OPTIONS: dict[str, dict[str, Any]] = {
    "tags_split": {"by": "tags"},
    "at_split": {"by": "cells", "at": [2, 3]},
}


def source(name: str) -> Path:
    return CORPUS / f"{name}.ipynb"


def plan_of(name: str, tmp_path: Path):
    return convert(source(name), tmp_path / "out", dry_run=True, **OPTIONS.get(name, {})).plan


def steps_of(name: str, tmp_path: Path) -> dict[str, Any]:
    return {s.name: s for s in plan_of(name, tmp_path).steps}


def manifest(out: Path, step: str) -> dict[str, Any]:
    return json.loads((out / "products" / step / "data" / "manifest.json").read_text())


# -- the corpus itself --------------------------------------------------------------------------------------------

def test_corpus_is_what_make_corpus_writes():
    assert NOTEBOOKS == sorted(make_corpus.NOTEBOOKS), "run python tests/convert/make_corpus.py"
    assert len(NOTEBOOKS) >= 18
    for name in NOTEBOOKS:
        assert source(name).read_text(encoding="utf-8") == make_corpus.render(name), \
            f"{name}.ipynb is stale: run python tests/convert/make_corpus.py"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_corpus_notebook_is_valid_nbformat_45(name):
    import nbformat

    nb = nbformat.read(source(name), as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert nb.metadata.kernelspec.name == "python3"
    assert all(c.get("id") for c in nb.cells)


# -- end to end: original vs pipeline -----------------------------------------------------------------------------

def _after_parquet(out: Path) -> None:
    m = manifest(out, "build_frames")
    assert {k: v["format"] for k, v in m.items()} == {"df": "parquet", "s": "parquet"}


def _after_pickle(out: Path) -> None:
    m = manifest(out, "awkward_frames")
    assert {k: v["format"] for k, v in m.items()} == {"mixed": "pickle", "multi": "pickle", "wide": "pickle"}


AFTER_BUILD = {"pandas_parquet_handoff": _after_parquet, "pandas_pickle_fallback": _after_pickle}
# Figures the original must draw, so the figure comparison is not vacuous.
FIGURES = {"figures_and_display": 2}


@pytest.mark.integration
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_pipeline_reproduces_original(name, tmp_path, monkeypatch):
    out = tmp_path / "out"
    result = convert(source(name), out, **OPTIONS.get(name, {}))
    assert (out / "pipeline.yaml").is_file()
    assert sorted(p.stem for p in (out / "notebooks").glob("*.ipynb")) == sorted(s.name for s in result.plan.steps)
    monkeypatch.chdir(out)
    report = check_conversion(source(name), out)
    errors = {i: c.error for i, c in report.original.items() if c.error}
    assert not errors, f"the original notebook itself fails: {errors}"
    assert report.same, f"{name}:\n{report.describe()}"
    assert report.figures()[0] == FIGURES.get(name, 0)
    if name in AFTER_BUILD:
        AFTER_BUILD[name](out)


# -- plans of the hard cases (static: no kernels) -----------------------------------------------------------------

@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_step_runs_code(name, tmp_path):
    """A step with no code of its own (only the parameters cell, only markdown) is a wasted task."""
    plan = plan_of(name, tmp_path)
    idle = [s.name for s in plan.steps if not any(i in plan.code and plan.code[i].python.strip() for i in s.cells)]
    assert not idle, f"{name}: steps with no code to run: {idle}"


def test_mutation_is_loaded_from_the_mutating_step(tmp_path):
    steps = steps_of("mutation_in_place", tmp_path)
    assert list(steps) == ["build", "mutate", "report"]
    mutated = {"df", "items", "meta", "cfg", "model"}
    assert steps["report"].loads == dict.fromkeys(mutated, "mutate")
    assert mutated <= set(steps["mutate"].exports)
    assert {f.name for f in steps["report"].carried} >= {"Counter"}  # to unpickle the instance


def test_redefinition_loads_from_the_right_step(tmp_path):
    steps = steps_of("redefinition_three_sections", tmp_path)
    assert list(steps) == ["first_definition", "reader_between_definitions", "second_definition",
                           "third_definition", "final_reader"]
    assert steps["reader_between_definitions"].loads == {"x": "first_definition"}
    assert steps["final_reader"].loads == {"x": "third_definition", "y": "reader_between_definitions",
                                           "z": "second_definition"}
    assert steps["second_definition"].loads == {} and steps["third_definition"].loads == {}


def test_augmented_assignment_reads_then_rebinds(tmp_path):
    steps = steps_of("augmented_assignment", tmp_path)
    names = {"total", "counts", "seq", "text"}
    assert steps["accumulate"].loads == dict.fromkeys(names, "start")
    assert steps["accumulate_again"].loads == dict.fromkeys(names, "accumulate")


def test_helper_functions_are_carried_with_the_global_they_read(tmp_path):
    steps = steps_of("helper_function_reuse", tmp_path)
    for step in ("use_one", "use_two"):
        assert {f.name for f in steps[step].carried} == {"fmt", "scaled"}
    assert steps["use_one"].loads == {}
    assert steps["use_two"].loads == {"FACTOR": "use_one"}  # read by scaled() before use_two rebinds it


def test_class_is_carried_to_the_step_using_its_instances(tmp_path):
    steps = steps_of("class_instance_later", tmp_path)
    use = steps["use_the_instances"]
    assert use.loads == {"p": "define_and_instantiate", "box": "define_and_instantiate"}
    assert {f.name for f in use.carried} == {"Point", "Box"}
    assert "import dataclasses" in use.imports


def test_generator_merges_producer_and_consumer(tmp_path):
    plan = plan_of("generator_merge", tmp_path)
    assert [s.name for s in plan.steps] == ["intro", "make_generators", "summary"]
    assert len(plan.merges) == 1
    merge = plan.merges[0]
    for word in ("`squares`", "`make_generators`", "`consume`", "generator"):
        assert word in merge, merge
    assert plan.steps[2].loads == {"data": "intro"}


def test_open_file_and_lock_merge_their_steps(tmp_path):
    plan = plan_of("unserialisable_file_and_lock", tmp_path)
    assert [s.name for s in plan.steps] == ["open_a_file", "make_a_lock"]
    assert len(plan.merges) == 2
    file_merge, lock_merge = plan.merges
    for word in ("`fh`", "`open_a_file`", "`read_it_back`", "open file"):
        assert word in file_merge, file_merge
    for word in ("`lock`", "`make_a_lock`", "`use_the_lock`", "lock"):
        assert word in lock_merge, lock_merge


@pytest.mark.parametrize("name", ["no_headings", "single_section"])
def test_one_section_gives_one_step(name, tmp_path):
    plan = plan_of(name, tmp_path)
    assert len(plan.steps) == 1
    assert plan.steps[0].loads == {} and plan.steps[0].exports == []
    assert plan.merges == []


def test_empty_sections_join_the_next_step(tmp_path):
    plan = plan_of("empty_sections", tmp_path)
    assert [s.name for s in plan.steps] == ["load", "use"]
    assert plan.steps[1].cells == [2, 3, 4, 5, 6, 7]  # the empty sections, the code, the trailing heading
    assert plan.steps[1].loads == {"numbers": "load"}


def test_magics_are_kept_and_analysed(tmp_path):
    steps = steps_of("magics", tmp_path)
    assert steps["timed"].loads == {"values": "setup"}  # read inside a %%time cell
    assert steps["shell"].loads == {"doubled": "timed"}  # bound by %time x = ...
    assert "%matplotlib inline" in steps["timed"].config


PARAMS = {"n_rows": 4, "label": "demo", "weights": [0.5, 1.5], "options": {"verbose": True, "sep": "-"}}


def test_parameters_cell_becomes_env_params(tmp_path):
    out = tmp_path / "out"
    plan = convert(source("parameters_cell"), out).plan
    assert plan.params == PARAMS
    assert yaml.safe_load((out / "env.yaml").read_text()) == {"params": PARAMS}
    steps = {s.name: s for s in plan.steps}
    assert steps["build"].params == {k: PARAMS[k] for k in ("n_rows", "label", "options")}
    assert steps["report"].params == {k: PARAMS[k] for k in ("weights", "options", "label")}
    assert steps["report"].loads == {"n_rows": "build", "rows": "build"}  # the rebound parameter comes from build
    tasks = {t["source"]: t for t in yaml.safe_load((out / "pipeline.yaml").read_text())["tasks"]}
    assert tasks["notebooks/report.ipynb"]["params"] == {k: f"{{{{params.{k}}}}}" for k in steps["report"].params}


def test_scoping_comprehensions_walrus_loops(tmp_path):
    steps = steps_of("scoping_comprehensions_walrus", tmp_path)
    comp, loops, later = (steps["comprehensions_lambdas_walrus"], steps["loops_with_try"],
                          steps["later_reader"])
    assert comp.loads["i"] == "setup"  # the comprehension's own i does not hide the f-string's read
    assert {"y", "squares", "key"} <= set(comp.exports)  # y bound by the walrus
    assert loops.loads["y"] == "comprehensions_lambdas_walrus"
    assert "err" not in loops.exports and "message" not in loops.exports
    assert later.loads["idx"] == later.loads["val"] == "loops_with_try"
    assert later.loads["y"] == later.loads["key"] == later.loads["squares"] == "comprehensions_lambdas_walrus"


def test_global_statement_and_del(tmp_path):
    steps = steps_of("scoping_global_del", tmp_path)
    assert set(steps["change"].exports) == {"counter", "registry"}  # bump() rebinds counter; del d[k] mutates
    assert steps["check"].loads == {"counter": "change", "registry": "change"}
    assert steps["change"].loads["scratch"] == "setup"  # `del scratch` needs it there first
    assert "scratch" not in steps["check"].loads


def test_seeded_rng_state_is_handed_on(tmp_path):
    steps = steps_of("seeded_global_rng", tmp_path)
    assert steps["draw_one"].loads == {"__np_random__": "seed", "__py_random__": "seed"}
    assert steps["draw_two"].loads == {"__np_random__": "draw_one", "__py_random__": "draw_one"}


def test_sklearn_fit_and_global_rng(tmp_path):
    fit = steps_of("sklearn_model_fit", tmp_path)
    assert fit["evaluate"].loads["model"] == "fit"
    rng = steps_of("sklearn_global_rng", tmp_path)
    assert rng["forest"].loads["__np_random__"] == "seed_and_data"
    assert rng["after_the_forest"].loads["__np_random__"] == "forest"


def test_split_by_tags(tmp_path):
    steps = steps_of("tags_split", tmp_path)
    assert list(steps) == ["load", "clean", "report"]
    assert steps["clean"].loads == {"parsed": "load"}
    assert steps["report"].loads == {"parsed": "clean", "raw": "load"}


def test_split_at_cells(tmp_path):
    plan = plan_of("at_split", tmp_path)
    assert [s.cells for s in plan.steps] == [[0, 1], [2], [3, 4, 5]]
    first, second, _ = (s.name for s in plan.steps)
    assert plan.steps[2].loads == {"a": first, "b": second}


def test_display_option_is_replicated(tmp_path):
    steps = steps_of("display_options_wide_frame", tmp_path)
    assert any("display.max_columns" in c for c in steps["wide_frames"].config)
    assert steps["wide_frames"].loads == {"early": "options"}


def test_pandas_objects_are_handed_off(tmp_path):
    assert steps_of("pandas_parquet_handoff", tmp_path)["use_frames"].loads == {"df": "build_frames",
                                                                                 "s": "build_frames"}
    loads = steps_of("pandas_pickle_fallback", tmp_path)["use_them"].loads
    assert loads == dict.fromkeys(["wide", "mixed", "multi"], "awkward_frames")


# -- the CLI ----------------------------------------------------------------------------------------------------

@pytest.mark.integration
def test_cli_dry_run_writes_nothing_and_prints_the_steps(tmp_path):
    out = tmp_path / "out"
    proc = run_mlnb(tmp_path, "convert", str(source("redefinition_three_sections")), "--out", str(out), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert not out.exists()
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["step", "cells", "inputs", "(var<step)", "outputs", "params"]
    for name in ("first_definition", "reader_between_definitions", "second_definition", "third_definition",
                 "final_reader"):
        assert any(line.startswith(name + " ") for line in lines), proc.stdout
    assert "x<third_definition" in proc.stdout
    assert "dry run: 5 steps; nothing written" in proc.stdout


@pytest.mark.integration
def test_cli_refuses_a_non_empty_out_without_force(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_mlnb(tmp_path, "convert", str(source("no_headings")), "--out", str(out))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mlnb: error:"), proc.stderr
    assert "not empty" in err[0] and "--force" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    proc = run_mlnb(tmp_path, "convert", str(source("no_headings")), "--out", str(out), "--force")
    assert proc.returncode == 0, proc.stderr
    assert (out / "pipeline.yaml").is_file() and (out / "keep.txt").read_text() == "mine"


@pytest.mark.integration
def test_cli_malformed_notebook_is_a_one_line_error(tmp_path):
    bad = tmp_path / "broken_notebook.ipynb"
    bad.write_text('{"cells": [ {"cell_type": "code", ')
    proc = run_mlnb(tmp_path, "convert", str(bad), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mlnb: error:"), proc.stderr
    assert "broken_notebook.ipynb" in err[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_kernel_not_installed_here_falls_back_to_python3(tmp_path):
    nb = json.loads(source("single_section").read_text())
    nb["metadata"]["kernelspec"] = {"name": "conda-env-ml-py", "display_name": "Python [conda env:ml]",
                                    "language": "python"}
    foreign = tmp_path / "foreign.ipynb"
    foreign.write_text(json.dumps(nb))
    result = convert(foreign, tmp_path / "out")
    assert "kernel 'conda-env-ml-py' is not installed here: the pipeline uses 'python3'" in result.plan.warnings
    for generated in (tmp_path / "out/notebooks").glob("*.ipynb"):
        assert json.loads(generated.read_text())["metadata"]["kernelspec"]["name"] == "python3"
