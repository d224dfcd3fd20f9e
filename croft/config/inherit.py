"""YAML files that inherit from others with a top-level ``_BASE_`` key: croft's configs and sweep grids.

``_BASE_`` is one path or a list of paths, each relative to the folder of the file that names it (or
absolute). :func:`inherited_layers` reads a file and all its bases, checks the whole ``_BASE_`` graph
(missing files, cycles) and returns the mappings in merge order; how layers combine is the caller's
(a config sets their keys in order, a grid merges mappings and replaces the rest).
"""
import os

import yaml

BASE_KEY = "_BASE_"


def read_mapping(path, source, error, kind="config", expected="a mapping of config keys at the top level"):
    """The top-level mapping of the YAML file ``path`` (``{}`` for an empty file). Problems raise ``error``
    naming ``source``; ``kind`` and ``expected`` word them."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            tree = yaml.safe_load(f)
    except FileNotFoundError:
        raise error(f"{kind} file not found: {source}") from None
    except IsADirectoryError:
        raise error(f"{kind} file not found: {source} is a folder") from None
    except OSError as exc:
        raise error(f"{source}: cannot read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {exc}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise error(f"{source}: expected {expected}")
    return tree


def base_paths(tree, path, error):
    """``[(base as written, resolved path)]`` of the ``_BASE_`` key of ``tree`` (read from ``path``), which it
    removes from ``tree``."""
    bases = tree.pop(BASE_KEY, None)
    if bases is None:
        return []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) and b.strip() for b in bases):
        raise error(f"{path}: '{BASE_KEY}' must be a path or a list of paths (relative to the file's folder), "
                    f"got {bases!r}")
    folder = os.path.dirname(str(path))
    return [(base, os.path.normpath(os.path.join(folder, base))) for base in bases]


def inherited_layers(path, error, kind="config", expected="a mapping of config keys at the top level"):
    """``[(source, mapping)]`` of ``path`` and its bases in merge order: every (transitive) base first, depth
    first and in the order of each ``_BASE_`` list, ``path`` itself last (a base named twice comes twice).
    ``source`` names the file and, for a base, the file that included it. Every file is read, and the graph
    checked, before anything is returned: a missing file, invalid YAML, a bad ``_BASE_`` value or a cycle
    raises ``error``."""
    layers = []

    def visit(file, source, chain):
        real = os.path.realpath(file)
        if real in [seen for _, seen in chain]:
            raise error(f"{kind} cycle: " + " -> ".join([shown for shown, _ in chain] + [str(file)]))
        tree = read_mapping(file, source, error, kind, expected)
        chain = chain + [(str(file), real)]
        for base, resolved in base_paths(tree, file, error):
            if not os.path.isfile(resolved):
                where = "" if os.path.isabs(base) else f", relative to the folder of {file}"
                raise error(f"{file}: base {kind} not found: '{base}' (looked for {resolved}{where})")
            visit(resolved, f"{resolved} (base of {file})", chain)
        layers.append((source, tree))

    visit(path, str(path), [])
    return layers
