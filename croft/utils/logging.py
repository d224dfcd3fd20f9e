"""Logging to the console and ``OUTPUT_DIR/log.txt`` (the ``croft`` logger every layer writes to).

Set up before importing open_clip: its first warning would otherwise configure the root logger.
"""
import logging
import os
import sys
import time

from .layout import LOG_FILE

LOGGER_NAME = "croft"


def log_file_path(output_dir):
    """``log.txt``, or ``log.txt-<timestamp>`` when a log already exists (docs/method.md §8.5)."""
    path = os.path.join(output_dir, LOG_FILE)
    if os.path.exists(path):
        path += time.strftime("-%Y-%m-%d-%H-%M-%S")
    return path


def setup_logger(output_dir=None, level=logging.INFO):
    """Console: info to stdout, warnings and errors to stderr; ``log.txt`` also gets debug records
    (the traceback of a failed run)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(message)s")
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(level)
    console.addFilter(lambda record: record.levelno < logging.WARNING)
    console.setFormatter(fmt)
    logger.addHandler(console)
    problems = logging.StreamHandler(sys.stderr)
    problems.setLevel(logging.WARNING)
    problems.setFormatter(fmt)
    logger.addHandler(problems)
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        file_handler = logging.FileHandler(log_file_path(output_dir))
        file_handler.setLevel(logging.DEBUG)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        logger.addHandler(file_handler)
    return logger


def get_logger():
    return logging.getLogger(LOGGER_NAME)
