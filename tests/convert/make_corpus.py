"""Write the ``mlnb convert`` test corpus: ``python tests/convert/make_corpus.py``.

Each notebook is a small, deterministic, exploratory notebook exercising one hard case of
the conversion (mutation, redefinition, generators, RNG state, magics, ...). The files in
``corpus/`` are committed; ``test_corpus.py`` checks they are what this script writes.

A cell is ``(kind, source)`` or ``(kind, source, tags)``; kind is ``md``, ``code`` or
``params`` (a code cell tagged ``parameters``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).parent / "corpus"

Cell = tuple[str, str] | tuple[str, str, list[str]]

NOTEBOOKS: dict[str, list[Cell]] = {}


def notebook(name: str, *cells: Cell) -> None:
    NOTEBOOKS[name] = list(cells)


notebook(
    "mutation_in_place",
    ("md", "# In-place mutation\n\nObjects built in one section are changed in place in the next."),
    ("md", "## Build"),
    ("code", """\
from types import SimpleNamespace

import pandas as pd

df = pd.DataFrame({"a": [3, 1, 2], "b": [10, 20, 30], "c": ["x", "y", "z"]})
items = [1, 2]
meta = {"rows": 3}
cfg = SimpleNamespace(alpha=0.1, name="base")


class Counter:
    def __init__(self):
        self.seen = 0

    def fit(self, values):
        self.seen = len(values)
        return self


def add_flag(frame):
    frame["flag"] = frame["a"] > 1


model = Counter()
print(df.shape, items, meta, cfg.alpha, model.seen)"""),
    ("md", "## Mutate\n\nNothing here is rebound: every change is in place."),
    ("code", """\
df["total"] = df["a"] + df["b"]
df.drop(columns=["c"], inplace=True)
df.sort_values("a", inplace=True)
df.loc[df.index[0], "b"] = -1
add_flag(df)
items.append(3)
items.extend([4, 5])
meta.update(cols=len(df.columns))
meta["source"] = "notebook"
cfg.alpha = 0.5
model.fit(items)
print("mutated")"""),
    ("md", "## Report"),
    ("code", """\
print(df)
print(items)
print(sorted(meta.items()))
print(cfg.alpha, cfg.name)
print(model.seen, isinstance(model, Counter))"""),
)

notebook(
    "redefinition_three_sections",
    ("md", "## First definition"),
    ("code", 'x = 1\nprint("first", x)'),
    ("md", "## Reader between definitions\n\nMust see the first `x`, not a later one."),
    ("code", 'y = x * 10\nprint("reader sees", x, y)'),
    ("md", "## Second definition"),
    ("code", 'x = "second"\nz = x.upper()\nprint("now", x, z)'),
    ("md", "## Third definition"),
    ("code", 'x = [3, 3, 3]\nprint("third", x)'),
    ("md", "## Final reader\n\nThe last definer wins."),
    ("code", 'print("final", x, y, z)\nprint(type(x).__name__, len(x))'),
)

notebook(
    "augmented_assignment",
    ("md", "## Start"),
    ("code", 'total = 0\ncounts = {"a": 1}\nseq = [1]\ntext = "ab"\nprint(total, counts, seq, text)'),
    ("md", "## Accumulate"),
    ("code", 'total += 5\ncounts["a"] += 1\nseq += [2, 3]\ntext *= 2\nprint(total, counts, seq, text)'),
    ("md", "## Accumulate again"),
    ("code", 'total *= 3\ncounts["b"] = counts.get("b", 0) + 4\nseq[0] -= 10\nprint(total, counts, seq, text)'),
)

notebook(
    "helper_function_reuse",
    ("md", "## Helpers\n\n`scaled` reads the global `FACTOR`, defined in a later section."),
    ("code", """\
def fmt(v):
    return f"<{v}>"


def scaled(v, offset=0):
    return fmt(v * FACTOR + offset)"""),
    ("md", "## Use one"),
    ("code", 'FACTOR = 3\nprint("use one", scaled(2))'),
    ("md", "## Use two"),
    ("code", 'print("use two", scaled(5, offset=1))\nFACTOR = 10\nprint("use two again", scaled(5), fmt("done"))'),
)

notebook(
    "class_instance_later",
    ("md", "## Define and instantiate"),
    ("code", """\
import dataclasses


class Point:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def norm2(self):
        return self.x ** 2 + self.y ** 2

    def __repr__(self):
        return f"Point({self.x}, {self.y})"


@dataclasses.dataclass
class Box:
    width: int
    height: int = 2


p = Point(3, 4)
box = Box(5)
print(p, p.norm2(), box)"""),
    ("md", "## Use the instances"),
    ("code", """\
print(isinstance(p, Point), isinstance(box, Box), type(p).__name__)
print(p.norm2(), box.width * box.height, dataclasses.asdict(box))
q = Point(1, 1)
print(q, q.norm2())"""),
)

notebook(
    "lambda_in_dict",
    ("md", "## Build the operations"),
    ("code", """\
BASE = 100
ops = {
    "add": lambda a, b: a + b,
    "scale": lambda a, k=2: a * k,
    "shout": lambda s: s.upper() + "!",
    "offset": lambda a: a + BASE,
}
print(sorted(ops))"""),
    ("md", "## Call them"),
    ("code", 'print(ops["add"](2, 3), ops["scale"](4), ops["scale"](4, k=3), ops["shout"]("hi"), ops["offset"](1))'),
    ("md", "## Rebind the global\n\nThe lambda reads `BASE` when called, so it sees the new value."),
    ("code", 'BASE = 0\nprint(ops["offset"](1), ops["add"]("a", "b"))'),
)

notebook(
    "generator_merge",
    ("md", "## Intro"),
    ("code", "data = [1, 2, 3, 4, 5]\nprint(data)"),
    ("md", "## Make generators\n\nA generator cannot be saved: this step and the next must be one."),
    ("code", """\
squares = (v * v for v in data)


def countdown(n):
    while n > 0:
        yield n
        n -= 1


ticks = countdown(3)"""),
    ("md", "## Consume"),
    ("code", "print(next(squares), next(squares))\nprint(list(squares))\nprint(list(ticks))"),
    ("md", "## Summary"),
    ("code", 'print("sum", sum(data))'),
)

notebook(
    "unserialisable_file_and_lock",
    ("md", "## Open a file"),
    ("code", """\
import os
import shutil
import tempfile
import threading

folder = tempfile.mkdtemp()
fh = open(os.path.join(folder, "notes.txt"), "w+")
written = fh.write("hello\\nworld\\n")
print("wrote", written)"""),
    ("md", "## Read it back\n\nThe open handle crosses sections: merged."),
    ("code", 'fh.seek(0)\nprint(fh.read().split())\nfh.close()\nshutil.rmtree(folder)\nprint("closed", fh.closed)'),
    ("md", "## Make a lock"),
    ("code", "lock = threading.Lock()\nshared = []"),
    ("md", "## Use the lock"),
    ("code", 'with lock:\n    shared.append("inside")\n    print("locked", lock.locked())\nprint(shared, lock.locked())'),
)

notebook(
    "no_headings",
    ("md", "Exploratory notes with no headings at all.\n\n#not-a-heading (no space after the hash)"),
    ("code", "# a comment, not a heading\nvalues = [5, 3, 8]\nprint(sorted(values))"),
    ("code", "total = sum(values)\nprint(total)"),
    ("md", "More prose, still **no** heading."),
    ("code", "print(total / len(values))"),
)

notebook(
    "single_section",
    ("md", "# A notebook with one section\n\nThe title has no code of its own."),
    ("md", "## The only section"),
    ("code", 'words = ["alpha", "beta", "gamma"]\nlengths = {w: len(w) for w in words}'),
    ("code", "print(lengths)\nmax(lengths, key=lengths.get)"),
)

notebook(
    "empty_sections",
    ("md", "## Load"),
    ("code", "numbers = list(range(6))\nprint(numbers)"),
    ("md", "## Nothing here yet\n\nJust prose."),
    ("md", "## Also empty"),
    ("code", ""),
    ("md", "## Use"),
    ("code", "evens = [n for n in numbers if n % 2 == 0]\nprint(evens)"),
    ("md", "## Trailing heading with no code"),
)

notebook(
    "magics",
    ("md", "## Setup"),
    ("code", "%matplotlib inline\nimport numpy as np\n\nvalues = np.arange(5)\nprint(values)"),
    ("md", "## Timed"),
    ("code", '%%time\nacc = int(values.sum())\nprint("acc", acc)'),
    ("code", '%time doubled = acc * 2\nprint("doubled", doubled)  # noqa: F821 (ruff cannot see %time bind it)'),
    ("md", "## Shell"),
    ("code", '!echo hi\nprint("after shell", doubled + 1)  # noqa: F821'),
)

notebook(
    "parameters_cell",
    ("md", "# Parameterised notebook"),
    ("params", 'n_rows = 4\nlabel = "demo"\nweights = [0.5, 1.5]\noptions = {"verbose": True, "sep": "-"}'),
    ("md", "## Build"),
    ("code", """\
rows = [f"{label}{options['sep']}{i}" for i in range(n_rows)]
print(rows)
n_rows = n_rows + 1  # rebinds a parameter: later readers get this value"""),
    ("md", "## Report"),
    ("code", """\
print(n_rows, len(rows))
print(sum(w * i for i, w in enumerate(weights)))
if options["verbose"]:
    print("verbose", label)"""),
)

notebook(
    "scoping_comprehensions_walrus",
    ("md", "## Setup"),
    ("code", """\
import contextlib

i = 100
data = [3, 1, 4, 1, 5, 9, 2, 6]
BASE = 7


def add_base(v, base=BASE):  # the default is evaluated now: 7
    return v + base


BASE = 1000
print(add_base(1))"""),
    ("md", "## Comprehensions, lambdas, walrus"),
    ("code", """\
squares = [i * i for i in data]  # this i is local to the comprehension
evens = {v for v in data if v % 2 == 0}
lookup = {k: v for k, v in enumerate(data[:3])}
big = [y for v in data if (y := v * 10) > 40]  # the walrus binds y outside the comprehension
key = lambda v: -v  # noqa: E731
print(squares, sorted(evens), lookup, big, y)
print(f"i is still {i}; {len(data)=}; {BASE:>6}")
print(sorted(data, key=key)[:3], add_base(1))"""),
    ("md", "## Loops, with, try"),
    ("code", """\
for idx, val in enumerate(data):
    last_pair = (idx, val)
with contextlib.nullcontext("ctx") as ctx_value:
    inside = ctx_value.upper()
try:
    int("not a number")
except ValueError as err:
    message = type(err).__name__
print(idx, val, last_pair, i, y, ctx_value, inside, message, "err" in globals())"""),
    ("md", "## Later reader"),
    ("code", "print(idx + val, y, len(squares), key(5), add_base(2))"),
)

notebook(
    "scoping_global_del",
    ("md", "## Setup"),
    ("code", """\
counter = 0


def bump(step=1):
    global counter
    counter += step


registry = {"a": 1, "b": 2, "c": 3}
scratch = "temporary"
print(counter, registry, scratch)"""),
    ("md", "## Change"),
    ("code", 'bump()\nbump(5)\ndel registry["b"]\ndel scratch\nprint(counter, registry)'),
    ("md", "## Check"),
    ("code", 'print(counter, registry, "scratch" in globals())\nbump()\nprint(counter)'),
)

notebook(
    "pandas_parquet_handoff",
    ("md", "## Build frames"),
    ("code", """\
import pandas as pd

df = pd.DataFrame({"city": ["a", "b", "c"], "temp": [1.5, 2.5, 3.5], "n": [1, 2, 3]})
df["when"] = pd.date_range("2024-01-01", periods=3, freq="D")
df["kind"] = pd.Categorical(["x", "y", "x"])
s = pd.Series([1.0, 2.0, None], name="score", index=pd.Index(["p", "q", "r"], name="key"))
print(len(df), len(s))"""),
    ("md", "## Use frames"),
    ("code", "print(df)\nprint(df.dtypes)\nprint(s)\nprint(s.index.name, s.name, s.isna().sum())"),
)

notebook(
    "pandas_pickle_fallback",
    ("md", "## Awkward frames\n\nNon-string column names and mixed object columns do not round-trip through parquet."),
    ("code", """\
import pandas as pd

wide = pd.DataFrame([[1, 2, 3], [4, 5, 6]], columns=[0, 1, 2])
mixed = pd.DataFrame({"obj": [1, "a", None, 2.5], "tup": [(1, 2), (3,), (), (4, 5, 6)]})
multi = pd.DataFrame({("a", "x"): [1, 2], ("a", "y"): [3, 4]})
print(wide.shape, mixed.shape, multi.shape)"""),
    ("md", "## Use them"),
    ("code", """\
print(wide)
print(wide.columns.tolist())
print(mixed)
print([type(v).__name__ for v in mixed["obj"]])
print(multi)"""),
)

notebook(
    "figures_and_display",
    ("md", "## Data"),
    ("code", """\
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

df = pd.DataFrame({"x": [1, 2, 3, 4], "y": [1, 4, 9, 16]})
display(df.head(2))
display("a displayed string")"""),
    ("md", "## Plot"),
    ("code", """\
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot(df["x"], df["y"])
ax.set_title("squares")
plt.show()
print("plotted", len(ax.lines))"""),
    ("code", 'df.plot(x="x", y="y", figsize=(3, 2))\nplt.show()\ndf.describe().loc[["mean", "max"]]'),
)

notebook(
    "seeded_global_rng",
    ("md", "## Seed"),
    ("code", 'import random\n\nimport numpy as np\n\nnp.random.seed(0)\nrandom.seed(1)\nprint("seeded")'),
    ("md", "## Draw one"),
    ("code", 'a = np.random.rand()\nb = random.random()\nprint(f"{a:.8f} {b:.8f}")'),
    ("md", "## Draw two\n\nMust continue both streams where the previous section left them."),
    ("code", "c = np.random.rand(3)\nd = random.randint(0, 10**6)\nprint(np.round(c, 8), d)\nprint(np.random.randint(0, 100, size=4))"),
)

notebook(
    "tags_split",
    ("md", "# Split by tags\n\nThe `##` headings below do not match the tagged steps."),
    ("code", 'raw = ["3", "1", "x", "2"]\nprint(raw)', ["step:load"]),
    ("md", "## A heading inside the load step"),
    ("code", "parsed = [int(v) for v in raw if v.isdigit()]"),
    ("code", "parsed.sort()\nprint(parsed)", ["step:clean"]),
    ("md", "## Another heading"),
    ("code", 'print("report", parsed, sum(parsed), len(raw))', ["step:report"]),
)

notebook(
    "at_split",
    ("md", "## Heading ignored by --at"),
    ("code", "a = [1, 2, 3]"),
    ("code", "b = [v * 2 for v in a]\nprint(b)"),
    ("code", "a.append(4)\nprint(a)"),
    ("md", "## Another ignored heading"),
    ("code", "print(a, b, sum(a) + sum(b))"),
)

notebook(
    "display_options_wide_frame",
    ("md", "## Options"),
    ("code", """\
import pandas as pd

pd.set_option("display.max_columns", 3)
early = pd.DataFrame({f"e{i}": [i, i + 1] for i in range(8)})
print(early.shape)"""),
    ("md", "## Wide frames\n\nPrinted with the option set in the first section: columns elided."),
    ("code", 'wide = pd.DataFrame({f"col{i}": range(i, i + 3) for i in range(10)})\nprint(wide)\nprint(early)\nwide'),
)

notebook(
    "sklearn_model_fit",
    ("md", "## Data and model"),
    ("code", """\
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

X, y = load_iris(return_X_y=True)
model = LogisticRegression(max_iter=1000)
print(X.shape, hasattr(model, "coef_"))"""),
    ("md", "## Fit\n\n`model.fit` changes `model` in place: it is not rebound."),
    ("code", 'model.fit(X, y)\nprint("fitted", hasattr(model, "coef_"))'),
    ("md", "## Evaluate"),
    ("code", "print(round(model.score(X, y), 4))\nprint(model.predict(X[::25]))"),
)

notebook(
    "sklearn_global_rng",
    ("md", "## Seed and data"),
    ("code", """\
import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

np.random.seed(0)
X, y = load_iris(return_X_y=True)
print(X.shape)"""),
    ("md", "## Forest\n\nNo `random_state`: the forest draws from numpy's global RNG."),
    ("code", """\
forest = RandomForestClassifier(n_estimators=5, max_depth=2)
forest.fit(X, y)
print(forest.predict(X[::30]))
print(forest.feature_importances_.round(4))"""),
    ("md", "## After the forest"),
    ("code", "print(np.random.randint(0, 1000, size=3))\nprint(round(forest.score(X, y), 4))"),
)


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def build(name: str, cells: list[Cell]) -> dict[str, Any]:
    out = []
    for i, spec in enumerate(cells):
        kind, source = spec[0], spec[1]
        tags = list(spec[2]) if len(spec) > 2 else []  # type: ignore[misc]
        if kind == "params":
            tags.append("parameters")
        cell: dict[str, Any] = {"cell_type": "markdown" if kind == "md" else "code", "id": f"{name[:50]}-{i}",
                                "metadata": {"tags": tags} if tags else {}, "source": _lines(source)}
        if kind != "md":
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    return {"cells": out, "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}}, "nbformat": 4, "nbformat_minor": 5}


def render(name: str) -> str:
    return json.dumps(build(name, NOTEBOOKS[name]), indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for name in NOTEBOOKS:
        (CORPUS / f"{name}.ipynb").write_text(render(name), encoding="utf-8")
    print(f"wrote {len(NOTEBOOKS)} notebooks to {CORPUS}", file=sys.stderr)


if __name__ == "__main__":
    main()
