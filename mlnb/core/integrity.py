"""Content hashes of MLflow model directories, recorded at export and checked before serving.

The hash covers every file's relative path and bytes, except ``registered_model_meta``: MLflow
writes that file on download with the name and version it was fetched under, so the same model
fetched as ``models:/m-<id>`` and as ``models:/<name>/3`` would otherwise hash differently.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mlnb.errors import IntegrityError

HASH_TAG = "mlnb.artifact_sha256"  # the model version tag that records the hash
DOWNLOAD_METADATA = frozenset({"registered_model_meta"})


def model_sha256(path: str | Path) -> str:
    """A content hash of a model directory (relative paths + bytes, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel in DOWNLOAD_METADATA:
            continue
        h.update(rel.encode() + b"\0")
        with open(f, "rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def verify(path: str | Path, expected: str, label: str) -> str:
    """Raise ``IntegrityError`` unless the directory at ``path`` hashes to ``expected``."""
    actual = model_sha256(path)
    if actual != expected:
        raise IntegrityError(f"{label}: model files hash to sha256 {actual[:16]}..., but {HASH_TAG} recorded "
                             f"{expected[:16]}...; refusing to serve a model that changed after export")
    return actual
