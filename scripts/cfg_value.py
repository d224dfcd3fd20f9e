"""Print merged config values, one per line, for the sweep scripts (which name run folders after them).

usage: python scripts/cfg_value.py [--short-floats] DATASET_YAML TRAINER_YAML KEY [KEY ...]

The two YAML files are merged onto the defaults as ``croft.train`` does (``_BASE_`` included).
Floats print as Python writes them (1.0, 10.0, 1.17); with --short-floats a whole float prints
without its ".0" (15.0 -> 15). A config error is printed on stderr and exits with status 2.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.config import ConfigError, get_cfg_default, merge_from_file  # noqa: E402


def _format(value, short_floats):
    if isinstance(value, float) and short_floats and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def main(argv):
    short_floats = bool(argv) and argv[0] == "--short-floats"
    if short_floats:
        argv = argv[1:]
    if len(argv) < 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    dataset_yaml, trainer_yaml, keys = argv[0], argv[1], argv[2:]
    cfg = get_cfg_default()
    try:
        merge_from_file(cfg, dataset_yaml)
        merge_from_file(cfg, trainer_yaml)
        lines = []
        for key in keys:
            node = cfg
            for part in key.split("."):
                if not hasattr(node, "keys") or part not in node:
                    raise ConfigError(f"unknown config key '{key}'")
                node = node[part]
            lines.append(_format(node, short_floats))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
