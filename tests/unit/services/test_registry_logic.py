"""Pure parts of promotion: run-id validation, request-body checks, the audit file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlnb.core import audit
from mlnb.errors import UserInputError
from mlnb.jupyter.base import MAX_BODY, TooLarge, parse_body
from mlnb.services.registry import check_run_id


@pytest.mark.parametrize("bad", ["", "a" * 31, "a" * 33, "A" * 32, "g" * 32, "../" + "a" * 29, None, 7, ["a" * 32]])
def test_run_ids_are_32_lowercase_hex(bad):
    with pytest.raises(UserInputError, match="run id: expected 32 lowercase hex digits"):
        check_run_id(bad)


def test_a_good_run_id_passes():
    assert check_run_id("0123456789abcdef" * 2) == "0123456789abcdef" * 2


@pytest.mark.parametrize("body, message", [
    (b"nope", "not valid JSON"), (b"[1]", "expected a JSON object"), (b"[" * 10_000 + b"]" * 10_000, "not valid JSON"),
    (b'{"run_id": "x", "extra": 1}', "unknown field"), (b'{"run_id": 5}', "field run_id: expected str"),
    (b'{"force": 1}', "field force: expected bool"), (b'{"note": true}', "field note: expected str"),
])
def test_bodies_are_checked_without_echoing(body: bytes, message: str):
    with pytest.raises(UserInputError, match=message) as err:
        parse_body(body, "promote")
    assert "extra" not in str(err.value).replace("unknown field", "") and "nope" not in str(err.value)


def test_body_size_is_checked_before_parsing():
    with pytest.raises(TooLarge) as err:
        parse_body(b"{" * (MAX_BODY + 1), "promote")
    assert err.value.http_status == 413
    assert parse_body(b'{"run_id": "a", "note": "n", "force": true}', "promote") == {"run_id": "a", "note": "n",
                                                                                     "force": True}
    with pytest.raises(UserInputError, match="unknown field"):
        parse_body(b'{"run_id": "a"}', "rollback")
    with pytest.raises(UserInputError, match="field run_id is required"):
        parse_body(b'{"note": "n"}', "promote")
    assert parse_body(b"", "rollback") == {}


def test_audit_appends_lines_and_names_a_corrupt_one(tmp_path: Path):
    rec = audit.AuditRecord(action="promote", user="u", run_id="a" * 32, model_name="m", version="2",
                            previous_version="1", git_commit="c", metrics={"f1": 0.9}, champion_metrics={"f1": 0.8},
                            deltas=audit.deltas({"f1": 0.9, "x": 1.0}, {"f1": 0.8}), note="n")
    assert rec.deltas == {"f1": 0.1}
    audit.append(tmp_path, rec)
    audit.append(tmp_path, rec)
    assert audit.read(tmp_path) == [rec.to_dict()] * 2
    with (tmp_path / audit.AUDIT_FILE).open("a") as fh:
        fh.write("{half a line\n")
    with pytest.raises(UserInputError, match=r"promotions.jsonl: line 3: not a JSON record"):
        audit.read(tmp_path)
    assert json.loads((tmp_path / audit.AUDIT_FILE).read_text().splitlines()[0])["note"] == "n"
