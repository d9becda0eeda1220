"""Split a notebook into steps: by markdown headings, by ``step:NAME`` tags, or at cell indices.

A section without code merges into the next one (a trailing one into the previous), so
every step runs something. Step names come from headings, made into unique, readable
Python identifiers (``1. Load the data!`` -> ``load_the_data``).
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from mlnb.core.notebooks import cell_source as source_text
from mlnb.errors import ConvertError

_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_HTML = re.compile(r"<h([1-6])[^>]*>(.*?)</h\1>", re.IGNORECASE | re.DOTALL)
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")


@dataclass
class Section:
    name: str
    cells: list[int] = field(default_factory=list)
    title: str = ""


def headings(markdown: str) -> list[tuple[int, str]]:
    """(level, text) of every heading in a markdown cell, outside fenced code."""
    found: list[tuple[int, str]] = []
    fenced = False
    lines = markdown.split("\n")
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = _ATX.match(line)
        if m:
            found.append((len(m.group(1)), m.group(2)))
        elif i + 1 < len(lines) and line.strip() and _SETEXT.match(lines[i + 1]) and not _ATX.match(line):
            found.append((1 if lines[i + 1].strip()[0] == "=" else 2, line.strip()))
        for hm in _HTML.finditer(line):
            found.append((int(hm.group(1)), re.sub(r"<[^>]+>", "", hm.group(2))))
    return found


MAX_NAME = 60


def identifier(text: str, fallback: str = "step") -> str:
    """A readable snake_case identifier from heading text."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # markdown links
    text = re.sub(r"[`*_~]", " ", text)
    text = re.sub(r"^\s*(?:step|part|section)?\s*[\dIVXivx]+(?:\.\d+)*\s*[.):-]\s*", "", text)
    text = re.sub(r"^\s*\d+(?:\.\d+)*\s+", "", text)
    words = re.findall(r"[A-Za-z0-9]+", text.lower())
    name = "_".join(words[:6])[:MAX_NAME].rstrip("_") or fallback  # a file name too: keep it short
    if name[0].isdigit():
        name = f"{fallback}_{name}"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        name += "_"
    return name


def unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    taken = set(names)
    for n in names:
        if n not in seen:
            seen[n] = 1
            out.append(n)
            continue
        seen[n] += 1
        candidate = f"{n}_{seen[n]}"
        while candidate in taken or candidate in seen:
            seen[n] += 1
            candidate = f"{n}_{seen[n]}"
        seen[candidate] = 1
        out.append(candidate)
    return out


def _title(cells: list[dict[str, Any]], indices: list[int], level: int = 6) -> str:
    for i in indices:
        if cells[i].get("cell_type") == "markdown":
            for lvl, text in headings(source_text(cells[i])):
                if lvl <= level:
                    return text
    return ""


def split(cells: list[dict[str, Any]], by: str = "headings", level: int = 2,
          at: list[int] | None = None) -> list[Section]:
    """Sections of ``cells`` (all cell types), each with at least one code cell."""
    n = len(cells)
    starts: list[tuple[int, str]] = []  # (cell index, explicit name)
    if by == "headings":
        if level not in (1, 2, 3):
            raise ConvertError(f"--level: {level} is not 1, 2 or 3")
        for i, c in enumerate(cells):
            if c.get("cell_type") == "markdown" and any(lvl <= level for lvl, _ in headings(source_text(c))):
                starts.append((i, ""))
    elif by == "tags":
        for i, c in enumerate(cells):
            for tag in c.get("metadata", {}).get("tags", []) or []:
                if tag.startswith("step:"):
                    name = tag[5:].strip()
                    if not name:
                        raise ConvertError(f"cell {i}: tag {tag!r} has no step name")
                    starts.append((i, name))
    elif by == "cells":
        for i in sorted(set(at or [])):
            if not 0 <= i < n:
                raise ConvertError(f"--at: cell index {i} is outside 0..{n - 1}")
            starts.append((i, ""))
    else:
        raise ConvertError(f"--by: {by!r} is not one of headings, tags")
    if not starts or starts[0][0] != 0:
        starts.insert(0, (0, ""))
    bounds = [s for s, _ in starts] + [n]
    raw = [Section(name, list(range(bounds[k], bounds[k + 1]))) for k, (_, name) in enumerate(starts)]
    for sec in raw:
        sec.title = _title(cells, sec.cells, level if by == "headings" else 6)
    return _merge_codeless(cells, raw)


def _has_code(cells: list[dict[str, Any]], sec: Section) -> bool:
    return any(cells[i].get("cell_type") == "code" and source_text(cells[i]).strip() for i in sec.cells)


def _merge_codeless(cells: list[dict[str, Any]], sections: list[Section]) -> list[Section]:
    merged: list[Section] = []
    pending: list[int] = []
    pending_name, pending_title = "", ""
    for sec in sections:
        if not _has_code(cells, sec):
            pending += sec.cells
            pending_name = pending_name or sec.name
            pending_title = pending_title or sec.title
            continue
        if pending:
            sec.cells = pending + sec.cells
            sec.name = sec.name or pending_name
            # a section's own heading names it; a title-only preamble names it only if it has none
            sec.title = sec.title or pending_title
            pending, pending_name, pending_title = [], "", ""
        merged.append(sec)
    if pending:
        if merged:
            merged[-1].cells += pending
        else:
            merged.append(Section(pending_name, pending))
    names = [identifier(s.name or s.title, f"step_{k + 1}") if not s.name else s.name
             for k, s in enumerate(merged)]
    for s, name in zip(merged, unique(names), strict=True):
        if not name.isidentifier() or keyword.iskeyword(name):
            name = identifier(name, "step")
        s.name = name
    return merged
