"""`mlnb lineage --verify`: an output is the build's, a later build's (kept in the DVC cache), or tampered."""

from __future__ import annotations

import shutil
from pathlib import Path

from mlnb.adapters.dvc.objects import file_md5, object_path
from mlnb.services.lineage import _output_link

PATH = "products/evaluate/metrics.json"


def stash(cache: Path, file: Path) -> str:
    md5 = file_md5(file)
    obj = object_path(cache, md5)
    obj.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(file, obj)
    return md5


def test_the_builds_copy_a_later_builds_copy_and_a_tampered_one(tmp_path: Path) -> None:
    cache, out = tmp_path / "cache", tmp_path / PATH
    out.parent.mkdir(parents=True)
    out.write_text('{"f1": 0.9889}')
    built = stash(cache, out)
    link = _output_link(tmp_path, cache, PATH, built, {PATH: built})
    assert (link.held, link.detail) == (True, "matches dvc.lock")

    out.write_text('{"f1": 0.9945}')  # a later build, recorded in the workspace's dvc.lock
    later = stash(cache, out)
    link = _output_link(tmp_path, cache, PATH, built, {PATH: later})
    assert link.held is True and link.detail.startswith("rebuilt since")

    out.write_text('{"f1": 1.0}')  # edited by hand: neither lock's copy
    link = _output_link(tmp_path, cache, PATH, built, {PATH: later})
    assert link.held is False and link.detail.endswith("(changed since the build)")
    assert f"!= dvc.lock's {built[:12]}" in link.detail

    object_path(cache, built).unlink()  # the build's copy is gone from the cache too: nothing to vouch for it
    out.write_text('{"f1": 0.9945}')
    assert _output_link(tmp_path, cache, PATH, built, {PATH: later}).held is None
