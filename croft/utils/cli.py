"""One line per expected failure for every command-line tool.

``sys.exit(run_tool(main))``: an expected error (bad file, bad value, missing folder) prints
``error: <message>`` on stderr and exits with 1, without a traceback; ``CROFT_TRACEBACK=1``
shows the traceback instead.
"""
import os
import sys

EXPECTED_ERRORS = (KeyError, ValueError, OSError, RuntimeError, FloatingPointError)


def error_message(exc):
    return exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)


def run_tool(main, argv=None):
    try:
        return main(argv)
    except EXPECTED_ERRORS as exc:
        if os.environ.get("CROFT_TRACEBACK"):
            raise
        print(f"error: {error_message(exc)} (set CROFT_TRACEBACK=1 for the traceback)", file=sys.stderr)
        return 1
