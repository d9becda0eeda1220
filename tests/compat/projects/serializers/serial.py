"""Serializers by extension: .json sorted, .txt as text, anything else pickled (fallback)."""
import json
from pathlib import Path

from ploomber.io import serializer, unserializer


def _write_json(obj, product):
    Path(product).write_text(json.dumps(obj, sort_keys=True, indent=1))


def _read_json(product):
    return json.loads(Path(product).read_text())


def _write_txt(obj, product):
    Path(product).write_text(f"{obj}\n")


def _read_txt(product):
    return Path(product).read_text().rstrip("\n")


@serializer({".json": _write_json, ".txt": _write_txt}, fallback=True)
def write(obj, product):
    raise RuntimeError("unreachable: every other extension is pickled")


@unserializer({".json": _read_json, ".txt": _read_txt}, fallback=True)
def read(product):
    raise RuntimeError("unreachable: every other extension is unpickled")


@serializer(defaults=[".json"])
def write_upper(obj, product):
    Path(product).write_text(str(obj).upper() + "\n")


@unserializer(defaults=[".json"])
def read_upper(product):
    return Path(product).read_text().strip().lower()
