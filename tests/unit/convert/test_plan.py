"""Static analysis of the converter: which step reads what from where (no kernels)."""

from __future__ import annotations

import pytest

from mlnb.convert.plan import make_plan
from mlnb.convert.split import headings, identifier, split
from mlnb.errors import ConvertError


def cells(*parts: str) -> list[dict]:
    """Markdown if it starts with '#', else code; 'P:' prefix makes a parameters cell."""
    out = []
    for i, src in enumerate(parts):
        if src.startswith("#"):
            out.append({"cell_type": "markdown", "id": f"m{i}", "metadata": {}, "source": src})
        else:
            tags = ["parameters"] if src.startswith("P:") else []
            out.append({"cell_type": "code", "id": f"c{i}", "metadata": {"tags": tags}, "outputs": [],
                        "execution_count": None, "source": src.removeprefix("P:")})
    return out


def plan_of(*parts: str, **kw):
    cs = cells(*parts)
    return make_plan(cs, split(cs, **kw))


def steps(plan) -> dict:
    return {s.name: s for s in plan.steps}


def test_last_definer_wins_and_reader_between_sees_the_earlier_one():
    p = steps(plan_of("## A", "x = 1", "## B", "print(x)", "## C", "x = 2", "## D", "print(x)"))
    assert p["b"].loads == {"x": "a"}
    assert p["d"].loads == {"x": "c"}
    assert p["a"].exports == ["x"] and p["c"].exports == ["x"]


@pytest.mark.parametrize(("mutation", "root"), [
    ('df["y"] = 2', "df"), ("df.drop(columns=['a'], inplace=True)", "df"), ("df.loc[0, 'a'] = 5", "df"),
    ("lst.append(3)", "lst"), ("obj.attr = 1", "obj"), ("model.fit(X)", "model"), ("df += 1", "df"),
    ("del df['a']", "df"), ("random.shuffle(lst)", "lst"), ("df['a'].fillna(0, inplace=True)", "df"),
])
def test_in_place_mutation_re_exports_the_object(mutation, root):
    p = steps(plan_of("import random", "## A", f"{root} = make()\nX = 1", "## B", mutation, "## C", f"print({root})"))
    assert p["c"].loads == {root: "b"}, mutation
    assert p["b"].loads.get(root) == "a"
    assert root in p["b"].exports


def test_pure_method_is_not_a_mutation():
    p = steps(plan_of("## A", "df = make()", "## B", "print(df.head())", "## C", "print(df)"))
    assert p["c"].loads == {"df": "a"}
    assert p["b"].exports == []


def test_notebook_function_that_mutates_its_argument():
    p = steps(plan_of("## A", "def add_col(frame):\n    frame['z'] = 1\n", "d = make()",
                      "## B", "add_col(d)", "## C", "print(d)"))
    assert p["c"].loads == {"d": "b"}


def test_function_carried_with_the_globals_it_reads():
    p = steps(plan_of("## A", "import numpy as np\nSCALE = 3\ndef f(x):\n    return np.sqrt(x) * SCALE",
                      "## B", "print(f(4))"))
    b = p["b"]
    assert [f.name for f in b.carried] == ["f"]
    assert b.loads == {"SCALE": "a"}
    assert "import numpy as np" in b.imports


def test_class_carried_for_instances_handed_off():
    p = steps(plan_of("## A", "class Box:\n    def __init__(self, v):\n        self.v = v", "b = Box(1)",
                      "## B", "print(b.v)"))
    assert [f.name for f in p["b"].carried] == ["Box"]
    assert p["b"].loads == {"b": "a"}


def test_imports_replicated_only_where_used():
    p = steps(plan_of("## A", "import os\nimport json\nx = json.dumps({})", "## B", "print(os.sep)", "## C", "print(x)"))
    assert p["b"].imports == ["import os"]
    assert p["c"].imports == []


@pytest.mark.parametrize(("code", "reason"), [
    ("g = (i for i in range(3))", "a generator"),
    ("fh = open('f.txt')", "an open file"),
    ("import threading\nlock = threading.Lock()", "a lock"),
    ("import json\nm = json", "a module"),
    ("def gen():\n    yield 1\ng = gen()", "a generator"),
])
def test_unserialisable_value_merges_producer_and_consumer(code, reason):
    var = code.split("\n")[-1].split(" =")[0]
    plan = plan_of("## A", code, "## B", "print(1)", "## C", f"print({var})")
    assert [s.name for s in plan.steps] == ["a"]
    assert len(plan.merges) == 1
    assert f"`{var}` ({reason})" in plan.merges[0] and "`a`" in plan.merges[0] and "`c`" in plan.merges[0]


@pytest.mark.parametrize("code", [
    "ys = [x * k for x in range(3)]",  # comprehension target x is local
    "f = lambda x: x * k\nys = f(2)",
    "def g(x, y=k):\n    return x + y\nys = g(1)",
    "ys = f'{k}'",
    "if (n := k) > 0:\n    ys = n",
    "for x in range(k):\n    ys = x",
    "with open(__file__) as fh:\n    ys = k",
    "try:\n    ys = 1 / k\nexcept ZeroDivisionError as e:\n    ys = str(e)",
])
def test_scoping_reads_only_the_free_name(code):
    p = steps(plan_of("## A", "k = 2\nx = 'global x'", "## B", code, "## C", "print(ys)"))
    assert p["b"].loads == {"k": "a"}, code
    assert p["c"].loads == {"ys": "b"}


def test_walrus_in_comprehension_binds_outside():
    p = steps(plan_of("## A", "data = [1, 2]", "## B", "ys = [last := v for v in data]", "## C", "print(last)"))
    assert p["c"].loads == {"last": "b"}


def test_global_statement_in_function_binds_at_call_site():
    p = steps(plan_of("## A", "count = 0\ndef bump():\n    global count\n    count += 1",
                      "## B", "bump()", "## C", "print(count)"))
    assert p["c"].loads == {"count": "b"}


def test_del_removes_the_export():
    p = steps(plan_of("## A", "x = 1\ny = 2", "## B", "del x", "## C", "print(y)"))
    assert p["c"].loads == {"y": "a"}


def test_conditional_rebinding_brings_the_old_value_in():
    p = steps(plan_of("## A", "x = 1\nflag = False", "## B", "if flag:\n    x = 2", "## C", "print(x)"))
    assert p["c"].loads == {"x": "b"}
    assert p["b"].loads == {"flag": "a", "x": "a"}


def test_parameters_cell_becomes_params():
    plan = plan_of("P:alpha = 0.5\nname = 'run'\nfeatures = ['a', 'b']\nderived = alpha * 2",
                   "## A", "print(alpha, features)", "## B", "print(derived, name)")
    assert plan.params == {"alpha": 0.5, "name": "run", "features": ["a", "b"]}
    p = steps(plan)
    assert p["a"].params == {"alpha": 0.5, "features": ["a", "b"]}
    assert p["b"].params == {"name": "run"}
    assert p["b"].loads == {"derived": "step_1"}  # a non-literal stays code, in the first step


def test_config_replicated_into_later_steps():
    p = steps(plan_of("import pandas as pd\nimport warnings\npd.set_option('display.max_columns', 3)\n"
                      "warnings.simplefilter('ignore', category=FutureWarning)", "## A", "x = 1", "## B", "print(x)"))
    assert "pd.set_option('display.max_columns', 3)" in p["b"].config
    assert "warnings.simplefilter('ignore', category=FutureWarning)" in p["b"].config
    assert "import pandas as pd" in p["b"].imports


def test_seeded_global_rng_state_is_handed_on():
    p = steps(plan_of("import numpy as np\nnp.random.seed(0)", "## A", "a = np.random.rand()",
                      "## B", "b = np.random.rand()", "## C", "print(a, b)"))
    assert p["a"].loads["__np_random__"] == "step_1"  # state right after the seed
    assert p["b"].loads["__np_random__"] == "a"


def test_magics_and_shell_lines():
    plan = plan_of("%matplotlib inline\n!pip install foo\nx = 1", "## A", "%time y = x + 1", "## B", "print(y)")
    p = steps(plan)
    assert p["b"].loads == {"y": "a"}
    assert "%matplotlib inline" in p["a"].config
    assert any("dropped package install" in w for w in plan.warnings)
    assert "pip install" not in plan.code[0].source


def test_split_modes_and_names():
    cs = cells("# Title", "## 1. Load the Data!", "x = 1", "## Empty", "## Load the data", "y = 2")
    assert [s.name for s in split(cs)] == ["load_the_data", "load_the_data_2"]
    assert [s.cells for s in split(cs)] == [[0, 1, 2], [3, 4, 5]]
    tagged = cells("x = 1", "y = 2")
    tagged[1]["metadata"]["tags"] = ["step:Train Model"]
    assert [s.name for s in split(tagged, by="tags")] == ["step_1", "train_model"]
    assert [s.cells for s in split(cells("a = 1", "b = 2", "c = 3"), by="cells", at=[1])] == [[0], [1, 2]]
    assert len(split(cells("a = 1", "b = 2"))) == 1  # no headings: one step
    with pytest.raises(ConvertError, match="--at: cell index 9"):
        split(cells("a = 1"), by="cells", at=[9])


def test_heading_parsing():
    assert headings("## A\n```\n## not a heading\n```\nB\n---") == [(2, "A"), (2, "B")]
    assert headings("<h2>Html</h2>") == [(2, "Html")]
    assert identifier("3. Feature engineering (v2)") == "feature_engineering_v2"
    assert identifier("class") == "class_"
    assert identifier("2024 results") == "results"  # leading numbering is dropped
    assert identifier("2024") == "step_2024"


def test_unparsable_cell_names_the_cell():
    with pytest.raises(ConvertError, match="cell 1: line 1: cannot parse"):
        plan_of("## A", "x = (")


def test_changing_an_object_changes_the_names_that_share_it():
    p = steps(plan_of("## A", "clf = make()\nscaler = make()\npipe = make_pipeline(scaler, clf)\nalias = clf",
                      "## B", "pipe.fit(X)", "## C", "print(clf, alias)"))
    assert p["c"].loads == {"clf": "b", "alias": "b"}
    assert p["b"].exports == ["alias", "clf"]


def test_rebinding_breaks_the_sharing():
    p = steps(plan_of("## A", "clf = make()\npipe = wrap(clf)", "## B", "clf = make()", "## C", "pipe.fit(X)",
                      "## D", "print(clf)"))
    assert p["d"].loads == {"clf": "b"}


def test_lambda_in_a_dict_reads_globals_when_called():
    p = steps(plan_of("## A", "BASE = 100\nops = {'inc': lambda a: a + 1}\nops['offset'] = lambda a: a + BASE",
                      "## B", "BASE = 0", "## C", "print(ops['offset'](1))"))
    assert p["c"].loads == {"ops": "a", "BASE": "b"}


def test_function_with_value_defaults_is_handed_on_not_re_run():
    p = steps(plan_of("## A", "BASE = 7\ndef add(v, base=BASE):\n    return v + base\nBASE = 1000",
                      "## B", "print(add(1), BASE)"))
    assert p["b"].loads == {"add": "a", "BASE": "a"}
    assert p["b"].carried == []


def test_del_of_an_earlier_name_brings_it_in():
    p = steps(plan_of("## A", "scratch = [1]", "## B", "del scratch\nx = 1", "## C", "print(x)"))
    assert p["b"].loads == {"scratch": "a"}


def test_section_with_only_the_parameters_cell_joins_the_next():
    plan = plan_of("# Title", "P:n = 3", "## Build", "print(n)")
    assert [s.name for s in plan.steps] == ["build"]
    assert plan.steps[0].params == {"n": 3}


def test_fitting_loop_targets_changes_the_container():
    p = steps(plan_of("## A", "models = {'rf': make(), 'lr': make()}",
                      "## B", "for name, model in models.items():\n    model.fit(X)",
                      "## C", "best = models['rf']\nprint(best.predict(X))"))
    assert p["c"].loads == {"models": "b"}


def test_function_changing_a_global_in_place_changes_it_at_the_call():
    p = steps(plan_of("## A", "results = []\ndef evaluate(name):\n    results.append(name)",
                      "## B", "evaluate('lr')", "## C", "evaluate('rf')", "## D", "print(results)"))
    assert p["b"].loads == {"results": "a"}
    assert p["c"].loads == {"results": "b"}
    assert p["d"].loads == {"results": "c"}


def test_function_drawing_from_the_seeded_rng_chains_the_state():
    p = steps(plan_of("import numpy as np\nnp.random.seed(0)",
                      "## A", "def boot(x):\n    return np.random.randint(0, 9, size=x)",
                      "## B", "print(boot(3))", "## C", "print(np.random.rand())"))
    assert p["b"].loads["__np_random__"] == "step_1"
    assert p["c"].loads["__np_random__"] == "b"


def test_scalars_are_not_shared():
    p = steps(plan_of("## A", "n = 3\nlabel = f'run {n}'\nitems = []", "## B", "pair = make(items, n)\npair.fit()",
                      "## C", "print(n, items)"))
    assert p["c"].loads == {"n": "a", "items": "b"}
