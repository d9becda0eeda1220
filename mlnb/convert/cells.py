"""Notebook cells as the converter sees them: IPython syntax made analysable.

A code cell may hold IPython syntax (``%matplotlib inline``, ``%%time``, ``!pip install``,
``x?``). For static analysis every cell is turned into plain Python with the *same line
structure*: magic and shell lines become ``pass``, ``%time stmt`` becomes ``stmt``, a
``%%time`` cell is analysed as its body. What is kept in the generated notebook is the
original text minus the lines we drop (package installs, help lookups), each drop warned.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from typing import Any

from mlnb.core.notebooks import cell_source
from mlnb.errors import ConvertError

# Cell magics whose body is Python run in the user namespace.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug"})
# Line magics that set up the session: replicated into every later step.
CONFIG_MAGICS = frozenset({"matplotlib", "config", "load_ext", "reload_ext", "autoreload", "env", "cd"})
# Line magics harmless to keep where they are.
KEEP_MAGICS = frozenset({"time", "timeit", "precision", "pprint", "xmode", "alias_magic", "autocall"})
_INSTALL = re.compile(r"^\s*(?:[!%]\s*(?:pip3?|conda|mamba|micromamba)\b|!\s*(?:sudo\s+)?apt(?:-get)?\b)")
_LINE_MAGIC = re.compile(r"^(\s*)%(\w+)\s*(.*)$")
_ASSIGNED_SHELL = re.compile(r"^(\s*)([A-Za-z_][\w, ]*)=\s*[!%]")


@dataclass
class CodeCell:
    index: int  # position in the original notebook
    source: str  # text kept in the generated notebook
    python: str  # same line structure, plain Python, for ``ast``
    config: list[str] = field(default_factory=list)  # magic lines later steps replicate
    warnings: list[str] = field(default_factory=list)
    tags: tuple[str, ...] = ()

    @property
    def is_parameters(self) -> bool:
        return "parameters" in self.tags

    def tree(self) -> ast.Module:
        try:
            return ast.parse(self.python)
        except SyntaxError as exc:
            raise ConvertError(f"cell {self.index}: line {exc.lineno}: cannot parse Python: {exc.msg}") from None


def _line(line: str, where: str, out: CodeCell) -> tuple[str | None, str]:
    """(kept text or None to drop, analysable Python) for one line."""
    stripped = line.strip()
    indent = line[: len(line) - len(line.lstrip())]
    if _INSTALL.match(line):
        out.warnings.append(f"{where}: dropped package install `{stripped}` (install it in the environment)")
        return (f"{indent}pass  # mlnb: dropped package install" if indent else None), ""
    if stripped.endswith("?") and not stripped.startswith("#") and re.fullmatch(r"[\w.]+\?\??", stripped):
        out.warnings.append(f"{where}: dropped help lookup `{stripped}`")
        return None, ""
    assigned = _ASSIGNED_SHELL.match(line)
    if assigned and not stripped.startswith(("%", "!")):
        out.warnings.append(f"{where}: kept `{stripped}`: captured shell/magic output may differ between runs")
        return line, f"{indent}{assigned.group(2).strip()} = None"
    if stripped.startswith("!"):
        out.warnings.append(f"{where}: kept shell command `{stripped}`")
        return line, f"{indent}pass"
    magic = _LINE_MAGIC.match(line)
    if magic and not stripped.startswith("%%"):
        name, rest = magic.group(2), magic.group(3)
        if name in ("time", "timeit"):
            stmt = re.sub(r"^(?:-\w+(?:\s+\d+)?\s+)*", "", rest) if name == "timeit" else rest
            return line, f"{indent}{stmt}" if stmt else f"{indent}pass"
        if name in CONFIG_MAGICS and not indent:
            out.config.append(stripped)
        elif name not in KEEP_MAGICS and name not in CONFIG_MAGICS:
            out.warnings.append(f"{where}: kept magic `%{name}`; its effect is not analysed")
        return line, f"{indent}pass"
    return line, line


def code_cell(index: int, cell: dict[str, Any]) -> CodeCell:
    """Split one notebook code cell into kept text and analysable Python."""
    text = cell_source(cell)
    tags = tuple(cell.get("metadata", {}).get("tags", []) or ())
    out = CodeCell(index=index, source="", python="", tags=tags)
    where = f"cell {index}"
    lines = text.split("\n")
    kept: list[str] = []
    python: list[str] = []
    if lines and lines[0].lstrip().startswith("%%"):
        head = lines[0].strip()[2:].split()
        name = head[0] if head else ""
        kept.append(lines[0])
        body = lines[1:]
        if name in PYTHON_CELL_MAGICS:
            capture = head[1:] and name == "capture" and not head[-1].startswith("-")
            python.append(f"{head[-1]} = None" if capture else "pass")
        else:
            if name not in ("html", "markdown", "latex", "svg", "javascript", "js", "writefile", "bash", "sh"):
                out.warnings.append(f"{where}: kept cell magic `%%{name}`; its body is not analysed")
            out.source = text
            out.python = "\n".join("" for _ in lines)
            return out
    else:
        body = lines
    for line in body:
        keep, py = _line(line, where, out)
        if keep is not None:
            kept.append(keep)
        python.append(py)
    out.source = "\n".join(kept)
    out.python = "\n".join(python)
    return out
