"""Pure parts of the fast build path: static import discovery, the kernel command check, the
Ploomber seam."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from mlnb.engine.imports import notebook_imports
from mlnb.engine.kernel import kernel_args
from tests.conftest import REPO, write_notebook


def test_imports_are_found_statically_and_unsafe_ones_left_out(tmp_path: Path) -> None:
    (tmp_path / "helpers.py").write_text("def load():\n    import json\n    from csv import reader\n")
    nb = write_notebook(tmp_path / "nb.ipynb", [
        ("params", "upstream = None\nproduct = None"),
        ("code", "%matplotlib inline\n!pip list\nimport pandas as pd\nfrom sklearn.linear_model import LogisticRegression"),
        ("code", "import matplotlib.pyplot as plt\nimport seaborn\nfrom . import sibling\nimport torch"),
        ("code", "def f(:\n    import broken_syntax_is_skipped"),
        ("code", "import helpers\nfrom mlnb import task"),
    ])
    found = notebook_imports([nb], tmp_path)
    assert found[:2] == ["pandas", "sklearn.linear_model"]
    assert {"json", "csv", "mlnb", "mlnb.task"} <= set(found)  # helpers' own imports are followed...
    assert "helpers" not in found  # ...but the project's module is imported by each task itself
    assert not {"matplotlib.pyplot", "seaborn", "torch", "broken_syntax_is_skipped", "sibling"} & set(found)
    assert "pyarrow" in found  # pandas' lazy parquet engine, installed here


def test_finding_imports_imports_nothing(tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nb.ipynb", [("code", "from sklearn.linear_model import LogisticRegression")])
    code = ("import sys\nfrom pathlib import Path\nfrom mlnb.engine.imports import notebook_imports\n"
            f"notebook_imports([Path({str(nb)!r})], Path({str(tmp_path)!r}))\nprint('sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_only_this_interpreters_ipykernel_goes_to_the_fork_server() -> None:
    py = sys.executable
    assert kernel_args([py, "-m", "ipykernel_launcher", "-f", "c.json"]) == []
    assert kernel_args([py, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "c.json", "--x=1"]) == ["--x=1"]
    assert kernel_args(["/usr/bin/other-python", "-m", "ipykernel_launcher", "-f", "c.json"]) is None
    assert kernel_args([py, "-m", "ipykernel_launcher"]) is None
    assert kernel_args([py, "-X", "dev", "-m", "ipykernel_launcher", "-f", "c.json"]) is None
    assert kernel_args([py, "-m", "ir_kernel", "-f", "c.json"]) is None


def test_only_the_pipeline_seam_imports_ploomber() -> None:
    seam = "mlnb/adapters/ploomber/"
    offenders = []
    for path in sorted((REPO / "mlnb").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.split(".")[0] == "ploomber" for n in names) and not str(path.relative_to(REPO)).startswith(seam):
                offenders.append(str(path.relative_to(REPO)))
    assert offenders == []
