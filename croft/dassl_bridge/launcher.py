"""``croft-dassl path/to/train.py ARGS`` (and ``python -m croft.dassl_bridge``): install the bridge, run the script."""
import os
import runpy
import sys

from ..config.merge import ConfigError
from ..utils.cli import print_error, report_error
from .errors import HOOK_STATE, _report
from .install import DasslNotFound, _dassl_on_path, install

FLATTEN = "flatten"

USAGE = """usage: croft-dassl path/to/train.py [ARGS ...]
       croft-dassl flatten CONFIG.yaml [-o OUT.yaml]

Run an unchanged Dassl/CoOp train.py (e.g. CoOp's train.py, Dassl's tools/train.py) with croft's
trainers and config keys installed (croft.dassl_bridge.install()). ARGS are the script's own:
--root, --trainer CRoFT, --config-file, --output-dir, --eval-only --model-dir, KEY VALUE ...
Dassl must be importable (installed, on PYTHONPATH, or its folder in CROFT_DASSL_PATH).

`flatten` writes a copy of a croft YAML file without _BASE_ (its bases merged in), for code that
merges YAML files with plain yacs; it needs no Dassl. (Run a script named `flatten` as ./flatten.)"""


def _flatten_main(argv):
    """``croft-dassl flatten CONFIG.yaml [-o OUT.yaml]``: the flat copy to OUT.yaml or stdout."""
    import argparse

    from ..config.flat_copy import flat_yaml
    from ..utils.atomic import atomic_write_text

    parser = argparse.ArgumentParser(
        prog="croft-dassl flatten",
        description="Write a copy of a croft YAML config without _BASE_ (its bases merged in, values as croft "
                    "merges them), which plain yacs (Dassl's, CoOp's cfg.merge_from_file) can merge into a "
                    "config that has croft's keys.")
    parser.add_argument("config", help="a croft YAML config file (with or without _BASE_)")
    parser.add_argument("-o", "--output", default="", help="the file to write (default: standard output)")
    args = parser.parse_args(argv)
    if (args.output and os.path.exists(args.output) and os.path.exists(args.config)
            and os.path.samefile(args.output, args.config)):
        return print_error(f"-o {args.output} is the config being flattened; expected another file", 2)
    try:
        text = flat_yaml(args.config)
    except ConfigError as exc:
        return print_error(exc, 2)
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        atomic_write_text(args.output, text)
    except OSError as exc:
        return print_error(f"cannot write {args.output} ({exc.strerror or exc}); expected a writable file path")
    return 0


def main(argv=None):
    """``croft-dassl path/to/train.py ARGS...``: ``install()``, then run the script as ``__main__``;
    ``croft-dassl flatten ...``: :func:`_flatten_main`. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == FLATTEN:
        return _flatten_main(argv[1:])
    script = os.path.abspath(argv[0])
    if not os.path.isfile(script):
        return print_error(f"{argv[0]} is not a file; expected a Dassl/CoOp train.py (or `flatten`)", 2)
    _dassl_on_path()
    try:
        install()
    except DasslNotFound as exc:
        return report_error(exc, plain=DasslNotFound)
    sys.argv = [script] + argv[1:]
    sys.path.insert(0, os.path.dirname(script))  # as `python train.py` does: its datasets/, trainers/ import
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except Exception as exc:
        status = _report(exc)
        if status is None:
            HOOK_STATE["kept_traceback"] = exc  # judged here; python -m's frames must not make it croft's
            raise
        return status
    return 0


def run_by_launcher(package):
    """Whether the import of ``package`` (``croft.dassl_bridge``) comes from the launcher (``python -m
    croft.dassl_bridge`` or the ``croft-dassl`` console script), whose :func:`main` installs the bridge
    once it knows the command needs Dassl."""
    if sys.argv[:1] == ["-m"]:  # ``python -m``: the package is imported while its __main__ is located
        args = list(getattr(sys, "orig_argv", []))
        for i, arg in enumerate(args):
            named = args[i + 1] if arg == "-m" and i + 1 < len(args) else arg[2:] if arg.startswith("-m") else None
            if named is not None:
                return named in (package, f"{package}.__main__")
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    if spec is not None and spec.name in (package, f"{package}.__main__"):
        return True
    script = getattr(main_module, "__file__", None) or ""
    # pip's console script: bin/croft-dassl, Scripts/croft-dassl-script.py or croft-dassl.exe/__main__.py
    return spec is None and (os.path.basename(script) in ("croft-dassl", "croft-dassl-script.py")
                             or os.path.basename(os.path.dirname(script)) == "croft-dassl.exe")
