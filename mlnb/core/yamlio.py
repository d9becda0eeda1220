"""Bounded YAML: what mlnb reads from ``pipeline.yaml``, ``env.yaml``/``params.yaml``, schemas and
DVC files (pure).

``yaml.safe_load`` builds no objects from tags, but it does expand aliases: a 182-byte file of nested
aliases ("billion laughs") is a tree of 9^9 leaves to anything that walks it, and a file nested 10,000
levels deep ends in ``RecursionError``. :func:`read_yaml` refuses, in one line, before anything walks
the result:

* files over ``max_bytes`` (1 MiB for what people write, more for DVC's generated files);
* documents nested deeper than :data:`MAX_DEPTH` levels;
* documents whose aliases expand to more than :data:`MAX_NODES` nodes (counted on the composed graph,
  each shared node once, so the check itself is linear), and aliases that refer to themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from mlnb.errors import UserInputError

MAX_BYTES = 2 ** 20
MAX_DEPTH = 64
MAX_NODES = 100_000


class _TooDeep(yaml.YAMLError):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """``SafeLoader`` that stops composing past :data:`MAX_DEPTH` levels."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(f"nested deeper than {MAX_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def expanded_size(root: yaml.Node, limit: int = MAX_NODES) -> int:
    """Nodes the document has with every alias expanded (stops counting past ``limit``); raises
    ``ValueError`` for an alias that contains itself."""
    sizes: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    open_: set[int] = set()
    while stack:
        node, done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if done:
            open_.discard(id(node))
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(c)] for c in children))
            continue
        if id(node) in open_:
            raise ValueError("an alias refers to the node that contains it")
        open_.add(id(node))
        stack.append((node, True))
        for child in children:
            if id(child) in open_:
                raise ValueError("an alias refers to the node that contains it")
            stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def read_yaml(path: str | Path, error: type[UserInputError] = UserInputError, *,
              max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES) -> Any:
    """Parse one YAML file safely and within bounds; any problem is ``error`` in one line naming the
    file (and the line, when YAML knows it)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise error(f"{path}: larger than {max_bytes // 1024} KiB: refused")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 (byte {exc.start})") from None
    return parse_yaml(text, str(path), error, max_nodes=max_nodes)


def parse_yaml(text: str, where: str, error: type[UserInputError] = UserInputError, *,
               max_nodes: int = MAX_NODES) -> Any:
    """:func:`read_yaml` for text already in memory (``where`` names it in errors)."""
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            size = expanded_size(node, max_nodes)
        except ValueError as exc:
            raise error(f"{where}: {exc}: refused") from None
        if size > max_nodes:
            raise error(f"{where}: its aliases expand to more than {max_nodes:,} values: refused")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{where}:{line} invalid YAML: {' '.join(str(problem).split())}") from None
    finally:
        loader.dispose()


# DVC's generated files list every output: larger, never aliased by DVC itself
DVC_LIMITS: dict[str, int] = {"max_bytes": 64 * 2 ** 20, "max_nodes": 10_000_000}
