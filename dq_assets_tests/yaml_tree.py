"""Walking a parsed YAML or JSON document, for the tests of deploy/'s files."""

from collections.abc import Callable, Iterator


def leaves(node, is_leaf: Callable[[object], bool] = lambda node: False,
           path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    """Every (path, value) leaf of the document: scalars, and the mappings `is_leaf` names."""
    if isinstance(node, dict) and not is_leaf(node):
        for key, value in node.items():
            yield from leaves(value, is_leaf, (*path, str(key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from leaves(value, is_leaf, (*path, str(i)))
    else:
        yield path, node
