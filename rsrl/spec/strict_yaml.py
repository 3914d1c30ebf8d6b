"""YAML for specs: PyYAML's safe loader, but duplicate keys and alias bombs are errors, and
only true/false are booleans.

PyYAML keeps the last of two equal keys without a word, so a typo'd copy of a section
silently wins. And nine levels of `&anchor [*a, *a, ...]` are a few lines of text that
expand to billions of values when OmegaConf copies them: the expanded size is counted on
the composed node graph (linear in the file's size) before anything is built. PyYAML
follows YAML 1.1, where on/off/yes/no are booleans too, so `routing_replay: on` would
arrive as True; YAML 1.2 (and most tools since) read them as the strings they look like.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

# Far above any real spec (the quickstart holds about 220 values), far below a slow merge.
MAX_NODES = 20_000
BOOL = "tag:yaml.org,2002:bool"


class SpecYAMLError(Exception):
    """The YAML parses, but a spec must not be written this way; `line` is 1-based or None."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message)
        self.line = line


class _StrictLoader(yaml.SafeLoader):
    yaml_implicit_resolvers = {
        first: [(tag, regex) for tag, regex in resolvers if tag != BOOL]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        _reject_duplicate_keys(node)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_implicit_resolver(
    BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _reject_duplicate_keys(node: MappingNode) -> None:
    first: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue  # `<<: *base` merges may override keys: that is their purpose
        line, key = key_node.start_mark.line + 1, (key_node.tag, key_node.value)
        if key in first:
            raise SpecYAMLError(
                f"duplicate key '{key_node.value}' at line {line} (first given "
                f"at line {first[key]}); keep one of them",
                line,
            )
        first[key] = line


def safe_load_strict(text: str) -> Any:
    """`yaml.safe_load`, raising SpecYAMLError on a duplicate key or an oversized expansion."""
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_expanded_size(root: Node) -> None:
    sizes: dict[int, int] = {}  # id(node) -> values below it once aliases are expanded
    if _expanded_size(root, sizes, set()) > MAX_NODES:
        raise SpecYAMLError(
            f"expands to more than {MAX_NODES} values once its aliases (*name) are "
            "expanded; a spec holds far fewer: look for anchors (&name) used inside each "
            "other, or move bulk data to a data file"
        )


def _expanded_size(node: Node, sizes: dict[int, int], open_: set[int]) -> int:
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_:
        raise SpecYAMLError(
            "an alias (*name) is used inside its own anchor (&name): the "
            "value would contain itself",
            node.start_mark.line + 1,
        )
    open_.add(id(node))
    total = 1
    if isinstance(node, SequenceNode):
        children: list[Node] = list(node.value)
    elif isinstance(node, MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, open_)
        if total > MAX_NODES:
            break  # no need to count on
    open_.discard(id(node))
    sizes[id(node)] = total
    return total
