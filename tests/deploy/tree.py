"""The leaves of a parsed YAML or JSON document, with their paths (the deploy tests' walk)."""

from __future__ import annotations

from collections.abc import Iterator


def leaves(node, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """Every scalar under ``node``, with the keys and list indexes leading to it."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, (*path, str(i)))
    else:
        yield path, node
