"""The TypeScript interfaces of the JupyterLab extension and mlnb.core.payloads declare the same payloads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlnb.core import payloads
from tests.conftest import REPO

SRC = REPO / "extension" / "src"
HEAD = re.compile(r"^export interface (\w+)(?:<[^>]*>)?(?: extends (\w+))?\s*\{", re.M)
FIELD = re.compile(r"^(\w+)(\??):")


def _body(text: str, start: int) -> str:
    """The text between the brace before ``start`` and its match."""
    depth, i = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start:i - 1]


def _fields(body: str) -> dict[str, bool]:
    """Top-level ``name?: type;`` fields -> optional (nested object types and comments skipped)."""
    body = re.sub(r"/\*.*?\*/|//[^\n]*", "", body, flags=re.S)
    out, depth = {}, 0
    for line in body.splitlines():
        line = line.strip()
        if depth == 0 and (m := FIELD.match(line)):
            out[m.group(1)] = bool(m.group(2))
        depth += line.count("{") - line.count("}")
    return out


def interfaces() -> dict[str, dict[str, bool]]:
    """``file:Interface`` -> its fields (with the fields of the interface it extends)."""
    found: dict[str, tuple[dict[str, bool], str | None]] = {}
    for path in sorted(SRC.glob("*.ts")):
        text = path.read_text(encoding="utf-8")
        for m in HEAD.finditer(text):
            found[f"{path.name}:{m.group(1)}"] = (_fields(_body(text, m.end())), m.group(2))
    out = {}
    for key, (fields, parent) in found.items():
        base = next((f for k, (f, _) in found.items() if k.endswith(f":{parent}")), {}) if parent else {}
        out[key] = {**base, **fields}
    return out


def _typed(cls: type) -> dict[str, bool]:
    return {name: name in cls.__optional_keys__ for name in cls.__annotations__}  # type: ignore[attr-defined]


def test_the_parser_reads_fields_optionality_and_extends(tmp_path: Path) -> None:
    assert _fields("a: string;\n  b?: number | null;\n  c: {\n x: string;\n };\n /** d: no */\n") == {
        "a": False, "b": True, "c": False}
    found = interfaces()
    assert found["request.ts:IRunFull"]["run_id"] is False and found["request.ts:IRun"]["run_name"] is True


def test_every_payload_interface_is_mapped() -> None:
    unmapped = set(interfaces()) - set(payloads.TS_INTERFACES) - payloads.CLIENT_ONLY
    assert not unmapped, (f"exported TypeScript interfaces neither mapped to a TypedDict in "
                          f"mlnb.core.payloads.TS_INTERFACES nor listed in CLIENT_ONLY: {sorted(unmapped)}")
    gone = (set(payloads.TS_INTERFACES) | payloads.CLIENT_ONLY) - set(interfaces())
    assert not gone, f"listed in mlnb.core.payloads but no longer exported: {sorted(gone)}"


@pytest.mark.parametrize("name", sorted(payloads.TS_INTERFACES))
def test_the_interface_and_the_typed_dict_agree(name: str) -> None:
    ts = {k: v for k, v in interfaces()[name].items() if k not in payloads.CLIENT_FIELDS.get(name, set())}
    py = _typed(payloads.TS_INTERFACES[name])
    assert sorted(ts) == sorted(py), f"{name} vs {payloads.TS_INTERFACES[name].__name__}: field names differ"
    differ = {k for k in ts if ts[k] != py[k]}
    assert not differ, f"{name}: optional in one, required in the other: {sorted(differ)}"


def test_every_json_handler_names_its_payload() -> None:
    from mlnb.jupyter import pipeline, routes, runs

    handlers = [obj for mod in (pipeline, routes, runs) for obj in vars(mod).values()
                if isinstance(obj, type) and obj.__name__.endswith("Handler") and obj.__module__ == mod.__name__]
    silent = [h.__name__ for h in handlers if h.payload is None and h is not runs.ArtifactHandler]
    assert not silent, f"handlers without a payload TypedDict (mlnb.core.payloads): {silent}"
    assert all(h.payload is None or h.payload.__module__ == payloads.__name__ for h in handlers)
