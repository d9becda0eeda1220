"""Ploomber's ``--env--KEY VALUE`` build options, read by mlnb as ``-p KEY=VALUE`` overrides (issue 20)."""

from __future__ import annotations

import click
import pytest

from mlnb.cli.kit import env_overrides


def test_env_options_become_overrides() -> None:
    assert env_overrides(["--env--times", "3", "--env--greeting--word=hi", "--env--greeting--lang", "fr"]) == (
        "times=3", "greeting.word=hi", "greeting.lang=fr")
    assert env_overrides([]) == ()


@pytest.mark.parametrize(("extra", "said"), [
    (["--bogus"], "No such option: --bogus"),
    (["stray"], "Got unexpected extra argument (stray)"),
    (["--env--times"], "Option '--env--times' requires an argument."),
    (["--env--"], "No such option: --env--"),
])
def test_other_leftovers_are_usage_errors(extra: list[str], said: str) -> None:
    with pytest.raises(click.UsageError) as caught:
        env_overrides(extra)
    assert caught.value.message == said
