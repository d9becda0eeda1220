"""The promotion audit trail: one JSON line per promotion, rollback, refusal or approval.

Records are appended (never rewritten) to ``promotions.jsonl`` in the project root under the
registry lock, and the same record is stored as model-version tags in MLflow (see
:mod:`mlnb.services.promotion`). A promotion's or rollback's record is written *before* any alias moves
(it is the transaction's intent, with a ``txn`` id). Pure data and file handling; no MLflow here.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlnb.core.io import append_line
from mlnb.errors import UserInputError

AUDIT_FILE = "promotions.jsonl"


@dataclass(frozen=True)
class AuditRecord:
    action: str  # "promote" | "rollback" | "refused" | "approve"
    user: str
    run_id: str | None
    model_name: str
    version: str | None
    previous_version: str | None
    git_commit: str
    metrics: dict[str, float]
    champion_metrics: dict[str, float]
    deltas: dict[str, float]
    note: str
    forced: bool = False
    reason: str = ""
    time: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))
    txn: str = ""  # promote/rollback: written before any alias moves; the version's tags carry it when done
    requirements: list[dict[str, Any]] = field(default_factory=list)  # the policy's, held or not
    bypassed: list[str] = field(default_factory=list)  # required, not held, promoted with --force

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def current_user(explicit: str | None = None) -> str:
    """Who acts: the person Jupyter's identity provider names (``explicit``), else the OS user (of
    the CLI, or of the Jupyter server: never Jupyter's random anonymous id)."""
    if explicit:
        return explicit
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid:{os.getuid()}"


def deltas(metrics: dict[str, float], champion: dict[str, float]) -> dict[str, float]:
    """Candidate minus champion for every metric both have."""
    return {k: round(metrics[k] - champion[k], 6) for k in sorted(metrics) if k in champion}


def append(root: Path, record: AuditRecord) -> None:
    append_line(root / AUDIT_FILE, json.dumps(record.to_dict(), sort_keys=True))


def read(root: Path) -> list[dict[str, Any]]:
    """Every record, oldest first; a line that is not JSON is an error naming the file and line."""
    path = root / AUDIT_FILE
    if not path.exists():
        return []
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise UserInputError(f"{path}: line {number}: not a JSON record ({exc.msg})") from None
    return out
