"""``env.yaml``: load, apply ``-p key=value`` overrides, type-check (pure)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from mlnb.core.yamlio import parse_yaml, read_yaml
from mlnb.errors import EnvError, UserInputError


def load_env(path: str | Path) -> dict[str, Any]:
    data = read_yaml(path, EnvError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EnvError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    check_templates(data, str(path))
    return data


# A placeholder is a plain look-up: ``{{section.key}}`` (or one of Ploomber's built-ins such as
# ``{{root}}``); segments start with a letter, so no ``__globals__``-style attribute walk.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z][A-Za-z0-9_-]*)*)\s*\}\}")
_TEMPLATE_SYNTAX = re.compile(r"\{\{|\{%|\{#")


def check_templates(value: Any, where: str, error: type[UserInputError] = EnvError) -> None:
    """Refuse any template syntax other than plain placeholders, in keys and values at any depth,
    before anything renders (Ploomber renders with full Jinja: expressions there run code)."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, at = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                stack += [(k, f"{at} (key)"), (v, f"{at}.{k}")]
        elif isinstance(node, list):
            stack += [(v, f"{at}[{i}]") for i, v in enumerate(node)]
        elif isinstance(node, str) and _TEMPLATE_SYNTAX.search(PLACEHOLDER.sub("", node)):
            shown = node if len(node) <= 80 else node[:77] + "..."
            raise error(f"{at}: {shown!r}: only plain {{{{section.key}}}} placeholders are allowed, "
                        "not Jinja expressions or statements")


def type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def compatible(expected: Any, value: Any) -> bool:
    """Is ``value`` acceptable where ``expected``'s type is declared? (int widens to float)."""
    if expected is None or value is None:
        return True
    if isinstance(expected, bool) or isinstance(value, bool):
        return isinstance(expected, bool) and isinstance(value, bool)
    if isinstance(expected, float):
        return isinstance(value, int | float)
    return isinstance(value, type(expected))


ENV_PREFIX = "--env--"  # Ploomber's command-line spelling of an override: --env--a--b VALUE sets a.b


def parse_override(text: str) -> tuple[str, Any]:
    """``train.C=0.5`` -> (``"train.C"``, 0.5); values are YAML scalars. ``--env--train--C=0.5`` (Ploomber's
    spelling, as :func:`mlnb.cli.kit.env_overrides` passes it on) is the same override."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if key.startswith(ENV_PREFIX):
        key = key[len(ENV_PREFIX):].replace("--", ".")
    if not sep or not key:
        raise EnvError(f"-p {text!r}: expected KEY=VALUE, e.g. -p train.C=0.5")
    try:
        value = parse_yaml(raw, f"{_label(text, key)}", EnvError) if raw.strip() else ""
    except EnvError:  # not YAML (or a bounded-YAML refusal): the text itself
        value = raw
    return key, value


def _label(text: str, key: str) -> str:
    """How the user spelled the override, for messages: ``-p train.C`` or ``--env--train--C``."""
    return text.partition("=")[0].strip() if text.startswith(ENV_PREFIX) else f"-p {key}"


def apply_overrides(env: dict[str, Any], overrides: list[str], source: str = "env.yaml") -> dict[str, Any]:
    """Return a copy of ``env`` with dotted-key overrides applied; keys must exist and types match."""
    out = copy.deepcopy(env)
    for text in overrides:
        key, value = parse_override(text)
        said = _label(text, key)
        node: Any = out
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                raise EnvError(f"{said}: no key {'.'.join(parts[: i + 1])!r} in {source}")
            if i < len(parts) - 1:
                node = node[part]
        old = node[parts[-1]]
        if isinstance(old, dict):
            raise EnvError(f"{said}: {key!r} is a section in {source}; set one of its keys")
        if not compatible(old, value):
            raise EnvError(f"{said}={value!r}: expected {type_name(old)} like {old!r}, got {type_name(value)}")
        check_templates(value, said)
        node[parts[-1]] = float(value) if isinstance(old, float) and isinstance(value, int) else value
    return out


def lookup(env: dict[str, Any], dotted: str) -> Any:
    node: Any = env
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node
