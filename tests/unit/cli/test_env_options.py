"""Ploomber's ``--env--KEY VALUE`` build options, read by mlnb as ``-p KEY=VALUE`` overrides (issue 20)."""

from __future__ import annotations

import click
import pytest

from mlnb.cli.kit import env_overrides
from mlnb.core.config import apply_overrides
from mlnb.errors import EnvError

ENV = {"times": 1, "greeting": {"word": "hello", "lang": "en"}}


def test_env_options_become_overrides() -> None:
    said = env_overrides(["--env--times", "3", "--env--greeting--word=hi", "--env--greeting--lang", "fr"])
    assert said == ("--env--times=3", "--env--greeting--word=hi", "--env--greeting--lang=fr")
    assert apply_overrides(ENV, list(said)) == {"times": 3, "greeting": {"word": "hi", "lang": "fr"}}
    assert env_overrides([]) == ()


@pytest.mark.parametrize(("override", "said"), [
    ("--env--nope=1", "--env--nope: no key 'nope' in env.yaml"),
    ("--env--greeting=1", "--env--greeting: 'greeting' is a section in env.yaml; set one of its keys"),
    ("--env--times=x", "--env--times='x': expected int like 1, got str"),
    ("nope=1", "-p nope: no key 'nope' in env.yaml"),
])
def test_a_bad_override_is_named_as_the_user_typed_it(override: str, said: str) -> None:
    with pytest.raises(EnvError) as caught:
        apply_overrides(ENV, [override])
    assert str(caught.value) == said


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
