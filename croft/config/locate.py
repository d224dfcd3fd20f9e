"""Where croft's own YAML files (``configs/datasets``, ``configs/trainers``, ``configs/sweeps``) are.

A source checkout keeps one copy, ``configs/`` next to the ``croft`` package. A plain
``pip install .`` ships that tree inside the package as ``croft/configs`` (``setup.py`` copies it at
build time), so named grids and ``--config-file configs/...`` work from any folder. The tree is
copied whole, so the relative ``_BASE_`` paths inside the files resolve in both places.
"""
import os

from .merge import ConfigError

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The copy inside an installed package (absent from a checkout and from an editable install).
SHIPPED_DIR = os.path.join(PACKAGE_DIR, "configs")
#: ``configs/`` of a source checkout: the folder above the package, when it holds setup.py.
CHECKOUT_DIR = os.path.join(os.path.dirname(PACKAGE_DIR), "configs")
CONFIGS_PREFIX = "configs"


def _is_checkout():
    # setup.py is the marker: an installed package's parent (site-packages, a --target folder)
    # may hold an unrelated "configs" folder of another distribution.
    return os.path.isdir(CHECKOUT_DIR) and os.path.isfile(os.path.join(os.path.dirname(PACKAGE_DIR), "setup.py"))


def configs_dir():
    """The folder of croft's configs: the checkout's ``configs/``, else the installed ``croft/configs``.

    Returns the installed location even when it is missing, so that a "not found" error names it.
    """
    return CHECKOUT_DIR if _is_checkout() else SHIPPED_DIR


def locate_config(path, flag="--config-file"):
    """The file a ``--config-file`` / ``--dataset-config-file`` value names.

    A path that exists (absolute, or relative to the current folder) is returned as given. A relative
    ``configs/<rest>`` that the current folder lacks is looked up as ``<rest>`` in :func:`configs_dir`.
    Any other missing path is returned as given: reading it reports it. Raises :class:`ConfigError`
    (naming ``flag``, the value and both places looked at) for a ``configs/...`` path found in neither.
    """
    if not path or os.path.exists(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    if os.path.isabs(path) or len(parts) < 2 or parts[0] != CONFIGS_PREFIX:
        return path
    shipped = os.path.join(configs_dir(), *parts[1:])
    if os.path.isfile(shipped):
        return shipped
    raise ConfigError(f"{flag} {path}: config file not found (looked in the current folder "
                      f"{os.getcwd()} and in croft's configs, {shipped})")
