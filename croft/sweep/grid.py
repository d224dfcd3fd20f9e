"""Sweep grids as data: one small YAML schema, read and expanded into points (docs/sweeps.md).

A grid file (``configs/sweeps/*.yaml``)::

    _BASE_: base/setup2_pacs.yaml        # optional: inherit another grid (mappings merged, the rest replaced)
    name: croft_setup2_pacs              # default: the file name without .yaml
    trainer: CRoFT                       # TRAINER.NAME
    dataset_config: PACS                 # configs/datasets/PACS.yaml, or a path (relative to this file);
                                         #   a list of them is one more axis, ``dataset`` (outermost)
    trainer_configs: [rn50_ep30_pacs, ViT_ep30_pacs]   # configs/trainers/<trainer>/<name>.yaml, or paths
    domains: dataset                     # held-out domains: 'dataset' (its known domains) or a list;
                                         #   each becomes TEST_ENV test_on_<domain>.json
    fixed:                               # KEY: VALUE for every run ('seed' means --seed)
      DATASET.NUM_SHOTS: 16
    axes:                                # product axes: KEY: [values]
      seed: [1, 2, 3]
      TRAINER.CRoFT.lambda2: [1000, 100, 10, 1, 0]
    zip:                                 # zipped axes: the keys of one entry vary together
      - {DATASET.NUM_SHOTS: [1, 16, 32], TRAINER.CRoFT.gen_step: [10, 1, 1]}
    per_config:                          # overrides of one trainer config
      rn50_ep30_pacs: {TRAINER.CRoFT.gen_step: 0}
    per_dataset:                         # overrides of one dataset config; on an axis key they replace
      imagenet: {OPTIM.MAX_EPOCH: 50}    #   that axis' value for the dataset's runs (as --set does)
    stages:                              # eval-only stages from each trained model
      - name: eval_ood
        overrides: {TRAINER.CRoFT.EVAL_RATIO: 0.5, TRAINER.CRoFT.EVAL_RATIO_TEXT: 0.0}
        use: [open_set]                  # what the results table takes from this stage
    labels: {TRAINER.CRoFT.lambda2: l2}  # optional: folder-name labels of axes
    slurm: {partition: gpu, timeout_min: 240, runs_per_job: 4}   # submitit defaults

Nothing here imports torch: reading and expanding a grid is cheap.
"""
import copy
import itertools
import os
import re
from collections import OrderedDict

from ..config.inherit import inherited_layers
from ..config.locate import configs_dir

# configs/ of a checkout, or the copy shipped inside an installed package (croft/config/locate.py)
SWEEPS_DIR = os.path.join(configs_dir(), "sweeps")
DATASETS_DIR = os.path.join(configs_dir(), "datasets")
TRAINERS_DIR = os.path.join(configs_dir(), "trainers")

TOP_KEYS = ("name", "trainer", "dataset_config", "trainer_configs", "domains", "fixed", "axes", "zip",
            "per_config", "per_dataset", "stages", "labels", "slurm", "description")
STAGE_KEYS = ("name", "overrides", "use")
STAGE_SECTIONS = ("open_set", "closed_set")
SLURM_KEYS = ("partition", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "array_parallelism",
              "runs_per_job", "account", "qos", "constraint", "additional_parameters")
TRAIN_STAGE = "train"

#: Axis names with a meaning of their own: ``seed`` (``--seed``), ``config`` (the trainer config),
#: ``TEST_ENV`` (the held-out domain; ``domain`` is accepted in filters), ``dataset`` (the dataset config of a
#: grid that lists several).
SEED, CONFIG, TEST_ENV, DATASET = "seed", "config", "TEST_ENV", "dataset"
#: Default folder-name labels (else the last dotted part of the key).
DEFAULT_LABELS = {"DATASET.NUM_SHOTS": "shots", "SEED": "seed"}


class GridError(ValueError):
    """A grid file, an override or a filter that the sweep cannot use (the message names it)."""


# ---------------------------------------------------------------------------------------------
# reading

def resolve_grid_path(name):
    """A grid argument: a path, or a name under ``configs/sweeps`` (with or without ``.yaml``)."""
    if os.path.isfile(name):
        return os.path.abspath(name)
    for candidate in (os.path.join(SWEEPS_DIR, name), os.path.join(SWEEPS_DIR, name + ".yaml")):
        if os.path.isfile(candidate):
            return candidate
    raise GridError(f"grid {name}: no such file (nor {os.path.join(SWEEPS_DIR, name)}[.yaml]); expected a "
                    "sweep YAML such as configs/sweeps/croft_setup1.yaml")


def _merge(base, over):
    """Mappings merge key by key; anything else (lists, scalars) is replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_grid_tree(path):
    """The grid mapping of ``path`` with its ``_BASE_`` files merged in (bases first)."""
    merged = {}
    for _, tree in inherited_layers(path, GridError, kind="grid",
                                    expected="a mapping at the top level (trainer, dataset_config, axes, ...)"):
        merged = _merge(merged, tree)
    return merged


class Axis:
    """One dimension of the grid: one key (product axis) or several keys varied together (zip)."""

    def __init__(self, keys, values, zipped=False):
        self.keys = tuple(keys)
        self.values = [tuple(v) for v in values]  # one tuple per point, aligned with keys
        self.zipped = zipped

    def __repr__(self):
        return f"Axis({self.keys}, {self.values})"


class Stage:
    def __init__(self, name, overrides, use):
        self.name = name
        self.overrides = overrides  # OrderedDict key -> value
        self.use = list(use)


class Grid:
    """A validated grid file. ``axes`` are in folder-path order: config, the grid's axes and zips in file
    order, TEST_ENV, seed."""

    def __init__(self, path, tree):
        self.path = path
        self.source = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
        where = self.source
        unknown = [k for k in tree if k not in TOP_KEYS]
        if unknown:
            raise GridError(f"{where}: unknown key(s) {unknown}; expected keys among {list(TOP_KEYS)}")
        self.name = str(tree.get("name") or os.path.splitext(os.path.basename(path))[0])
        self.description = tree.get("description", "")
        self.trainer = tree.get("trainer")
        if not isinstance(self.trainer, str) or not self.trainer:
            raise GridError(f"{where}: 'trainer' must name a trainer (e.g. CRoFT, CoOp), got {self.trainer!r}")
        datasets = tree.get("dataset_config")
        if isinstance(datasets, str):
            datasets = [datasets]
        if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) and d for d in datasets):
            raise GridError(f"{where}: 'dataset_config' must name a dataset config (e.g. PACS) or list several, "
                            f"got {tree.get('dataset_config')!r}")
        #: label (the file name without .yaml, the run folders' second part) -> path
        self.dataset_configs = OrderedDict()
        for value in datasets:
            path = self._config_path(value, DATASETS_DIR, "dataset_config")
            label = os.path.splitext(os.path.basename(path))[0]
            if label in self.dataset_configs:
                raise GridError(f"{where}: dataset_config lists {label} twice")
            self.dataset_configs[label] = path
        self.dataset_label, self.dataset_config = next(iter(self.dataset_configs.items()))
        configs = tree.get("trainer_configs")
        if isinstance(configs, str):
            configs = [configs]
        if configs is None:
            configs = []
        if not isinstance(configs, list) or not all(isinstance(c, str) and c for c in configs):
            raise GridError(f"{where}: 'trainer_configs' must be a list of config names, got {configs!r}")
        self.trainer_configs = OrderedDict(
            (os.path.splitext(os.path.basename(c))[0],
             self._config_path(c, os.path.join(TRAINERS_DIR, self.trainer), "trainer_configs")) for c in configs)
        self.fixed = self._mapping(tree.get("fixed"), "fixed")
        self.per_config = OrderedDict()
        for name, overrides in self._mapping(tree.get("per_config"), "per_config").items():
            if name not in self.trainer_configs:
                raise GridError(f"{where}: per_config names '{name}', which is not one of trainer_configs "
                                f"{list(self.trainer_configs)}")
            self.per_config[name] = self._mapping(overrides, f"per_config.{name}")
        self.per_dataset = OrderedDict()
        for name, overrides in self._mapping(tree.get("per_dataset"), "per_dataset").items():
            if name not in self.dataset_configs:
                raise GridError(f"{where}: per_dataset names '{name}', which is not one of dataset_config "
                                f"{list(self.dataset_configs)}")
            self.per_dataset[name] = self._mapping(overrides, f"per_dataset.{name}")
            if SEED in self.per_dataset[name]:
                raise GridError(f"{where}: per_dataset.{name} sets seed; the seeds are an axis or fixed for every "
                                "dataset")
        self.labels = {str(k): str(v) for k, v in self._mapping(tree.get("labels"), "labels").items()}
        self.domains = tree.get("domains")
        if self.domains is not None and self.domains != "dataset" and not (
                isinstance(self.domains, list) and self.domains and all(isinstance(d, str) for d in self.domains)):
            raise GridError(f"{where}: 'domains' must be 'dataset' (the dataset's known domains) or a list of "
                            f"domain names, got {self.domains!r}")
        self.grid_axes = []
        for key, values in self._mapping(tree.get("axes"), "axes").items():
            if not isinstance(values, list) or not values:
                raise GridError(f"{where}: axes.{key} must be a non-empty list of values, got {values!r}")
            self.grid_axes.append(Axis([key], [[v] for v in values]))
        zips = tree.get("zip") or []
        if not isinstance(zips, list):
            raise GridError(f"{where}: 'zip' must be a list of mappings KEY: [values], got {zips!r}")
        for i, group in enumerate(zips):
            group = self._mapping(group, f"zip[{i}]")
            lengths = {k: len(v) if isinstance(v, list) else -1 for k, v in group.items()}
            if not group or any(n <= 0 for n in lengths.values()) or len(set(lengths.values())) != 1:
                raise GridError(f"{where}: zip[{i}] must map each key to a non-empty list, all of the same length; "
                                f"got lengths {lengths}")
            keys = list(group)
            self.grid_axes.append(Axis(keys, list(zip(*[group[k] for k in keys])), zipped=True))
        seen = set()
        for axis in self.grid_axes:
            for key in axis.keys:
                if key in seen or key in self.fixed:
                    raise GridError(f"{where}: key {key} is given twice (in fixed, axes or zip)")
                if key == CONFIG:
                    raise GridError(f"{where}: the trainer configs are listed under trainer_configs, not as an axis")
                if key == DATASET:
                    raise GridError(f"{where}: the dataset configs are listed under dataset_config, not as an axis")
                seen.add(key)
        self.stages = []
        for i, stage in enumerate(tree.get("stages") or []):
            self.stages.append(self._stage(stage, i))
        if len({s.name for s in self.stages}) != len(self.stages):
            raise GridError(f"{where}: stage names must be distinct")
        self.slurm = self._mapping(tree.get("slurm"), "slurm")
        bad = [k for k in self.slurm if k not in SLURM_KEYS]
        if bad:
            raise GridError(f"{where}: unknown slurm key(s) {bad}; expected keys among {list(SLURM_KEYS)}")

    # -------------------------------------------------------------------------------------
    def _mapping(self, value, what):
        if value is None:
            return OrderedDict()
        if not isinstance(value, dict):
            raise GridError(f"{self.source}: '{what}' must be a mapping KEY: VALUE, got {value!r}")
        return OrderedDict((str(k), v) for k, v in value.items())

    def _config_path(self, value, folder, what):
        if value.endswith((".yaml", ".yml")) or os.sep in value or "/" in value:
            path = value if os.path.isabs(value) else os.path.normpath(os.path.join(os.path.dirname(self.path), value))
        else:
            path = os.path.join(folder, value + ".yaml")
        if not os.path.isfile(path):
            raise GridError(f"{self.source}: {what} '{value}': {path} does not exist")
        return path

    def _stage(self, stage, i):
        where = f"{self.source}: stages[{i}]"
        if not isinstance(stage, dict):
            raise GridError(f"{where} must be a mapping with name, overrides and use")
        bad = [k for k in stage if k not in STAGE_KEYS]
        if bad:
            raise GridError(f"{where}: unknown key(s) {bad}; expected {list(STAGE_KEYS)}")
        name = stage.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_]+", name or "") or name == TRAIN_STAGE:
            raise GridError(f"{where}: 'name' must be a word of letters, digits and _ (not '{TRAIN_STAGE}'), "
                            f"got {name!r}")
        use = stage.get("use", ["open_set"])
        if isinstance(use, str):
            use = [use]
        if not isinstance(use, list) or any(u not in STAGE_SECTIONS for u in use):
            raise GridError(f"{where}: 'use' must list sections among {list(STAGE_SECTIONS)}, got {use!r}")
        return Stage(name, self._mapping(stage.get("overrides"), f"stages[{i}].overrides"), use)

    def label(self, key):
        if key in self.labels:
            return self.labels[key]
        if key in DEFAULT_LABELS:
            return DEFAULT_LABELS[key]
        return key.split(".")[-1]

    def __repr__(self):
        return f"Grid({self.name!r}, {self.source})"


def load_grid(name):
    path = resolve_grid_path(name)
    return Grid(path, read_grid_tree(path))


# ---------------------------------------------------------------------------------------------
# values

def same_value(a, b):
    """Grid values compare as numbers where both are numbers (15 == 15.0), else as text."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or str(a).lower() == str(b).lower()
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return str(a) == str(b)


def parse_value(text):
    """A command-line value (``--set``, ``--only``) decoded as croft-train decodes overrides (yacs):
    ``15`` int, ``0.5`` / ``1e-5`` float, ``['a', 'b']`` list, anything else text."""
    from yacs.config import CfgNode

    return CfgNode._decode_cfg_value(text)


def path_text(value):
    """A value as it appears in a folder name: 15.0 -> 15, [a, b] -> a+b, unsafe characters -> '-'."""
    if isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float):
        text = str(int(value)) if value.is_integer() else repr(value)
    elif isinstance(value, (list, tuple)):
        text = "+".join(path_text(v) for v in value) or "none"
    else:
        text = str(value)
    text = re.sub(r"[^A-Za-z0-9._+=-]+", "-", text).strip("-")
    return text or "empty"


def domain_of(test_env):
    match = re.fullmatch(r"test_on_(.+?)(\.json)?", str(test_env))
    return match.group(1) if match else str(test_env)


# ---------------------------------------------------------------------------------------------
# expansion

class Point:
    """One run of a grid: its dataset config (label), trainer config and ``values`` ({key: value}, seed under
    'seed')."""

    def __init__(self, config, values, components, dataset=None):
        self.config = config
        self.values = values
        self.components = components  # folder-path parts of the varying axes
        self.dataset = dataset

    def __repr__(self):
        return f"Point({self.dataset}, {self.config}, {dict(self.values)})"


def dataset_domains(grid, dataset_name):
    """The held-out domains of a ``domains: dataset`` grid: the registered dataset's known domains, sorted."""
    if grid.domains is None:
        return None
    if grid.domains != "dataset":
        return list(grid.domains)
    from ..data.datasets.base import DATASET_REGISTRY
    import croft.data.datasets  # noqa: F401  (registers the datasets)

    try:
        cls = DATASET_REGISTRY.get(dataset_name)
    except KeyError:
        raise GridError(f"{grid.source}: domains 'dataset': dataset {dataset_name} is not registered") from None
    known = list(getattr(cls, "DOMAINS", ()) or ())
    if not known:
        raise GridError(f"{grid.source}: domains 'dataset': {dataset_name} has no fixed list of domains; list the "
                        "held-out domains in the grid (domains: [a, b, ...])")
    return sorted(known)


def all_axes(grid, domains, overrides):
    """Folder-ordered axes: config, grid axes (with ``--set`` values collapsing theirs), TEST_ENV, seed.

    Returns ``(axes, varying)`` where ``varying`` holds the keys whose grid (not ``--set``) values
    differ, i.e. the keys that name folders.
    """
    axes = []
    if grid.trainer_configs:
        axes.append(Axis([CONFIG], [[c] for c in grid.trainer_configs]))
    seed_axis = None
    for axis in grid.grid_axes:
        if axis.keys == (SEED,):
            seed_axis = axis
        else:
            axes.append(axis)
    if domains:
        axes.append(Axis([TEST_ENV], [[f"test_on_{d}.json"] for d in domains]))
    if seed_axis is not None:
        axes.append(seed_axis)
    varying = set()
    for axis in axes:
        if len(axis.values) > 1:
            varying.update(axis.keys)
    out = []
    for axis in axes:
        set_keys = [k for k in axis.keys if k in overrides]
        if set_keys and axis.keys != (CONFIG,):
            # --set KEY VALUE of an axis key: that axis takes the given value (a zip keeps its rows whose
            # other keys are not set, with the set key replaced).
            rows = []
            for row in axis.values:
                new = tuple(overrides[k] if k in overrides else v for k, v in zip(axis.keys, row))
                if new not in rows:
                    rows.append(new)
            axis = Axis(axis.keys, rows, axis.zipped)
        out.append(axis)
    return out, varying


def _component(grid, axis, row):
    parts = []
    for key, value in zip(axis.keys, row):
        if key == CONFIG:
            parts.append(path_text(value))
        elif key == TEST_ENV:
            parts.append("test_on_" + path_text(domain_of(value)))
        elif key == SEED:
            parts.append(f"seed{path_text(value)}")
        else:
            label = grid.label(key)
            parts.append(f"{label}{path_text(value)}" if label in ("shots", "seed") else f"{label}_{path_text(value)}")
    return "_".join(parts)


def axis_keys(grid):
    """Every key of the grid's own axes and zips."""
    return {key for axis in grid.grid_axes for key in axis.keys}


def dataset_overrides(grid, dataset, overrides):
    """The values that collapse axes for one dataset's points: its ``per_dataset`` values of axis keys, then the
    ``--set`` values (the command line wins)."""
    out = OrderedDict((k, v) for k, v in grid.per_dataset.get(dataset, {}).items() if k in axis_keys(grid))
    out.update(overrides)
    return out


def expand(grid, domains, overrides, dataset=None):
    """Every point of ``grid`` (of one dataset config) in folder order (``overrides``: the ``--set`` values,
    which collapse axes, with :func:`dataset_overrides` for ``dataset``)."""
    if dataset is not None:
        overrides = dataset_overrides(grid, dataset, overrides)
    axes, varying = all_axes(grid, domains, overrides)
    points = []
    for rows in itertools.product(*[axis.values for axis in axes]):
        values = OrderedDict()
        components = []
        config = None
        for axis, row in zip(axes, rows):
            for key, value in zip(axis.keys, row):
                if key == CONFIG:
                    config = value
                else:
                    values[key] = value
            if any(k in varying for k in axis.keys):
                components.append(_component(grid, axis, row))
        points.append(Point(config, values, components, dataset))
    return points


# ---------------------------------------------------------------------------------------------
# filters (--only KEY=VALUE)

def parse_filters(items):
    """``["seed=1", "TEST_ENV=test_on_sketch.json", "seed=2"]`` -> {key: [values]} (same key: any of them)."""
    filters = OrderedDict()
    for item in items or []:
        if "=" not in item:
            raise GridError(f"--only {item}: expected KEY=VALUE, e.g. --only seed=1 or "
                            "--only TEST_ENV=test_on_sketch.json")
        key, _, value = item.partition("=")
        key = key.strip()
        if not key:
            raise GridError(f"--only {item}: empty key")
        filters.setdefault(key, []).extend(parse_value(v) for v in value.split(","))
    return filters


def point_matches(grid, point, stage, filters):
    """Whether a point (and stage) passes every filter; a filter key is matched against the axis key, its
    label, ``config``, ``domain`` (the held-out domain name) and ``stage``."""
    for key, wanted in filters.items():
        if key == "stage":
            candidates = [stage]
        elif key == CONFIG:
            candidates = [point.config]
        elif key == DATASET:
            candidates = [point.dataset]
        elif key == "domain":
            candidates = [domain_of(point.values[TEST_ENV])] if TEST_ENV in point.values else [None]
        else:
            matched = [k for k in point.values if k == key or grid.label(k) == key]
            fixed = [k for k in grid.fixed if k == key or grid.label(k) == key]
            if key == TEST_ENV and TEST_ENV in point.values:
                candidates = [point.values[TEST_ENV], domain_of(point.values[TEST_ENV])]
            elif matched:
                candidates = [point.values[matched[0]]]
            elif fixed:
                candidates = [grid.fixed[fixed[0]]]
            else:
                candidates = [None]
        if not any(c is not None and same_value(c, w) for c in candidates for w in wanted):
            return False
    return True


def filter_candidates(grid, point, stage, key):
    """The values a filter KEY can match for one point (as :func:`point_matches` compares them)."""
    if key == "stage":
        return [stage]
    if key == CONFIG:
        return [point.config]
    if key == DATASET:
        return [point.dataset]
    if key == "domain" or key == TEST_ENV:
        return [domain_of(point.values[TEST_ENV])] if TEST_ENV in point.values else []
    for k, v in point.values.items():
        if k == key or grid.label(k) == key:
            return [v]
    for k, v in grid.fixed.items():
        if k == key or grid.label(k) == key:
            return [v]
    return []


def filter_keys_known(grid, points, filters):
    """Raise for a filter key that names nothing of the grid (a typo would otherwise select nothing)."""
    known = {"stage", CONFIG, "domain", TEST_ENV, DATASET}
    for point in points[:1]:
        for key in point.values:
            known.update({key, grid.label(key)})
    for key in grid.fixed:
        known.update({key, grid.label(key)})
    for key in filters:
        if key not in known:
            raise GridError(f"--only {key}=...: {grid.name} has no axis or key {key}; choose from {sorted(known)}")
