"""Run identity: from grid points to runs, each with its croft-train command line, fingerprint and folder.

A run's folder is ``OUTPUT/<trainer>/<dataset config>/<one part per varying axis>/seed<S>-<hash8>`` (a grid that
lists several dataset configs puts each one's runs under its own ``<dataset config>``), where
``hash8`` starts the run's full fingerprint (:func:`croft.engine.fingerprint.make_fingerprint` of the
merged config, the identity croft itself checks on resume). Two runs that differ in any setting
that changes numbers therefore never share a folder, and a run whose settings did not change finds
its folder again however the grid, ``--set`` or ``--only`` were spelled. An evaluation stage of a
trained run lives in ``<training run folder>/<stage>-<hash8>``.

The config of a run is built as ``croft.train`` builds it (defaults, dataset YAML, trainer YAML,
flags, then the ``KEY VALUE`` overrides), with the YAML part merged once per trainer config.
"""
import os
import re
import shlex
from collections import OrderedDict

from .grid import (CONFIG, DATASET, SEED, TEST_ENV, TRAIN_STAGE, GridError, axis_keys, dataset_domains, expand,
                   filter_candidates, filter_keys_known, parse_filters, parse_value, path_text, point_matches)

HASH_CHARS = 8
_HASH_SUFFIX = re.compile(r"-[0-9a-f]{%d}$" % HASH_CHARS)


def format_value(value):
    """A grid value as a croft-train override string that decodes back to the same value."""
    from yacs.config import CfgNode

    if isinstance(value, str):
        return value if CfgNode._decode_cfg_value(value) == value else repr(value)
    if isinstance(value, (list, tuple)):
        return repr(list(value))
    return repr(value) if isinstance(value, float) else str(value)


class RunSpec:
    """One run: what to execute and how to recognise it as done. Plain data (it travels to workers and jobs)."""

    FIELDS = ("key", "out_dir", "root", "flags", "opts", "fingerprint", "training_fingerprint", "stage", "parent_key",
              "parent_dir", "grid", "trainer", "axes", "uses", "stage_overrides", "stages")

    def __init__(self, **kw):
        for name in self.FIELDS:
            setattr(self, name, kw.get(name))
        self.values = None

    def argv(self, restart=False):
        """The ``croft.train`` argument list (``--restart`` moves an unusable earlier run aside first)."""
        argv = ["--output-dir", self.out_dir] + list(self.flags)  # flags hold --root (part of the fingerprint)
        if restart:
            argv.append("--restart")
        return argv + list(self.opts)

    def command(self):
        return "python -m croft.train " + " ".join(shlex.quote(a) for a in self.argv())

    def to_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}

    @classmethod
    def from_dict(cls, d):
        return cls(**d)

    def __repr__(self):
        return f"RunSpec({self.key})"


class Plan:
    """The runs of one or more grids: ``runs`` in execution order; ``chains`` group a training run with its stages."""

    def __init__(self):
        self.runs = []
        self.chains = []
        self.notes = []
        self.roots = []  # per grid: the folder that holds its runs (several dataset configs: their parent)
        self.folders = []  # per grid and dataset config: the folder that holds its runs
        self.grids = []
        self.with_stages = []  # training runs with stages whose chain has a selected run (for their stage.json)
        #: every run of the grids with these settings, selected or not, by its folder key without the hashes
        #: (:func:`plain_key`): what a folder of the same grid point with other settings is compared with
        self.every = {}

    def by_key(self):
        return {r.key: r for r in self.runs}


def plain_key(key):
    """A run folder key without its fingerprint hashes (``.../seed1-7acdb9b3/eval_ood-2647eca1`` ->
    ``.../seed1/eval_ood``): the grid point, whatever its settings."""
    return "/".join(_HASH_SUFFIX.sub("", part) for part in key.split("/"))


def pairs(items, what):
    """``["K", "V", "K2", "V2"]`` -> [(K, V), ...]."""
    items = list(items or [])
    if len(items) % 2:
        raise GridError(f"{what}: expected KEY VALUE pairs, got an odd number of items: {items}")
    return [(items[i], items[i + 1]) for i in range(0, len(items), 2)]


def extra_opts_pairs(text):
    """``EXTRA_OPTS`` / ``--opts``: KEY VALUE pairs in one string, split on whitespace as the earlier bash scripts did
    (``read -a``: quotes are kept, so ``DATASET.OOD_SETS ['DTD']`` works; a value cannot hold a space)."""
    return pairs((text or "").split(), "EXTRA_OPTS")


class _Builder:
    """Merged configs of one grid: the YAML part once per (dataset config, trainer config), then each run's
    overrides."""

    def __init__(self, grid, backbone, root=""):
        from ..train import build_parser

        self.grid = grid
        self.backbone = backbone
        self.root = root
        self.parser = build_parser()
        self._base = {}
        self._work = {}

    def flags(self, config, dataset=None):
        path = self.grid.dataset_configs[dataset] if dataset is not None else self.grid.dataset_config
        flags = ["--trainer", self.grid.trainer, "--dataset-config-file", path]
        if config is not None:
            flags += ["--config-file", self.grid.trainer_configs[config]]
        if self.backbone:
            flags += ["--backbone", self.backbone]
        if self.root:  # part of the fingerprint: augmented views are seeded by absolute image paths
            flags += ["--root", self.root]
        return flags

    def base(self, config, dataset=None):
        from ..config import ConfigError, setup_cfg

        if (config, dataset) not in self._base:
            try:
                self._base[config, dataset] = setup_cfg(self.parser.parse_args(self.flags(config, dataset)))
            except ConfigError as exc:
                raise GridError(f"{self.grid.source}: {exc}") from None
        return self._base[config, dataset]

    def fingerprint(self, config, seed, opts, what, dataset=None):
        """``(make_fingerprint(cfg), cfg.SEED)`` of the run's merged config, as ``croft.train`` builds it:
        flags (here ``--seed``) before the overrides."""
        from ..engine.fingerprint import make_fingerprint

        return self.with_cfg(config, seed, opts, what, dataset, lambda cfg: (make_fingerprint(cfg), cfg.SEED))

    def with_cfg(self, config, seed, opts, what, dataset, fn):
        """``fn(cfg)`` of the run's merged config. The overrides are applied to a working copy of the trainer
        config's merged YAML and undone afterwards (a deep copy per run would dominate planning)."""
        from ..config import ConfigError, get_value, put_value, set_value, validate_cfg

        if (config, dataset) not in self._work:
            work = self.base(config, dataset).clone()
            work.defrost()
            self._work[config, dataset] = work
        cfg = self._work[config, dataset]
        if len(opts) % 2:
            raise GridError(f"{self.grid.source}: {what}: overrides must be KEY VALUE pairs, got {list(opts)}")
        undo = [("SEED", cfg.SEED)]
        try:
            if seed is not None and int(seed) >= 0:
                cfg.SEED = int(seed)
            for key, value in zip(opts[0::2], opts[1::2]):
                undo.append((key, get_value(cfg, key, _MISSING)))
                set_value(cfg, key, value)
            validate_cfg(cfg)
            return fn(cfg)
        except (ConfigError, ValueError, TypeError) as exc:
            raise GridError(f"{self.grid.source}: {what}: {exc}") from None
        finally:
            for key, value in reversed(undo):
                if value is not _MISSING:
                    put_value(cfg, key, value)


_MISSING = object()


def _trainer_class(trainer):
    import croft.trainers  # noqa: F401  (registers every trainer)
    from ..engine.trainer import TRAINER_REGISTRY

    try:
        return TRAINER_REGISTRY.get(trainer)
    except KeyError:
        raise GridError(f"unknown trainer {trainer!r}; registered: {TRAINER_REGISTRY.names()}") from None


def _last_epoch(cfg):
    """The epoch whose checkpoint a run evaluates when it selects none on val (``TEST.FINAL_MODEL last_step``:
    ``model.pth.tar-<MAX_EPOCH>``), else 0 (``model-best.pth.tar``)."""
    return int(cfg.OPTIM.MAX_EPOCH) if cfg.TEST.FINAL_MODEL == "last_step" else 0


def _class_list_may_differ(trainer_class, builder, config, seed, opts, what, dataset):
    """Whether a stage may evaluate the trained model on another class list (``DATASET.SUBSAMPLE_CLASSES``,
    CoCoOp's base-to-new): a trainer that trains nothing, or one whose learnt state does not depend on the class
    list (``evaluates_unseen_classes(cfg)``, as ``croft-train --eval-only`` checks it)."""
    if not trainer_class.trains:
        return True
    unseen = getattr(trainer_class, "evaluates_unseen_classes", None)
    return unseen is not None and bool(builder.with_cfg(config, seed, opts, what, dataset, unseen))


def plan(grids, output, root="", backbone="", pretrained="", sets=(), filters=(), extra_opts=""):
    """Expand ``grids`` into a :class:`Plan` of runs under ``output``.

    ``sets``: ``[(KEY, VALUE)]`` from ``--set`` (after ``EXTRA_OPTS``), appended to every run; an axis
    key takes the given value instead of its list. ``filters``: ``--only KEY=VALUE`` strings.
    """
    from ..engine.fingerprint import describe, differences

    output = os.path.abspath(output)
    overrides = list(extra_opts_pairs(extra_opts)) + [(str(k), str(v)) for k, v in sets]
    set_values = OrderedDict((k, parse_value(v)) for k, v in overrides)
    filter_map = parse_filters(filters)
    result = Plan()
    seen = {}
    folders = {}
    duplicates = []  # (selected run left out, the run with its settings)
    offered = {key: set() for key in filter_map}  # what each --only key could have matched
    for grid in grids:
        builder = _Builder(grid, backbone, root)
        first = next(iter(grid.trainer_configs), None)
        points = []
        for dataset in grid.dataset_configs:
            dataset_name = builder.base(first, dataset).DATASET.NAME
            points += expand(grid, dataset_domains(grid, dataset_name), set_values, dataset)
            result.folders.append(os.path.join(output, grid.trainer, dataset))
        filter_keys_known(grid, points, filter_map)
        trainer_class = _trainer_class(grid.trainer)
        trains = trainer_class.trains
        seed_named = any(SEED in axis.keys and len(axis.values) > 1 for axis in grid.grid_axes)
        several = len(grid.dataset_configs) > 1
        on_axes = axis_keys(grid)
        result.roots.append(os.path.join(output, grid.trainer) if several else result.folders[-1])
        result.grids.append(grid)
        chains = []
        tail = []
        if pretrained:
            tail += ["MODEL.BACKBONE.PRETRAINED", pretrained]
        for key, value in overrides:
            if key == CONFIG:
                raise GridError("--set config ...: choose trainer configs with --only config=NAME")
            if key != SEED:  # --set seed S replaces the grid's seeds (see below)
                tail += [key, value]
        for point in points:
            seed = set_values.get(SEED, point.values.get(SEED, grid.fixed.get(SEED)))
            opts = []
            per_dataset = [(k, v) for k, v in grid.per_dataset.get(point.dataset, {}).items() if k not in on_axes]
            for key, value in list(grid.fixed.items()) + list(grid.per_config.get(point.config, {}).items()) \
                    + per_dataset + list(point.values.items()):
                if key in (SEED, CONFIG):
                    continue
                opts += [key, format_value(value)]
            flags = builder.flags(point.config, point.dataset)
            if seed is not None:
                flags = ["--seed", str(seed)] + flags
            named = [(DATASET, point.dataset)] * several + [(CONFIG, point.config)] + list(point.values.items())
            what = f"run {', '.join(f'{k}={v}' for k, v in named)}"
            fp, cfg_seed = builder.fingerprint(point.config, seed, opts + tail, what, point.dataset)
            components = list(point.components)
            if not seed_named:
                components.append(f"seed{cfg_seed}")
            components[-1] += "-" + fp["hash"][:HASH_CHARS]
            key = "/".join([grid.trainer, point.dataset] + components)
            axes = OrderedDict()
            if several:
                axes[DATASET] = point.dataset
            if point.config is not None:
                axes[CONFIG] = point.config
            for k, v in point.values.items():
                axes[grid.label(k) if k != TEST_ENV else "domain"] = v if k != TEST_ENV else _domain(v)
            train = RunSpec(key=key, out_dir=os.path.join(output, key), root=root, flags=flags, opts=opts + tail,
                            fingerprint=fp["hash"], training_fingerprint=fp["training_hash"], stage=TRAIN_STAGE,
                            parent_key=None, parent_dir=None, grid=grid.name, trainer=grid.trainer, axes=dict(axes),
                            uses=[], stage_overrides={})
            train.values = fp["values"]  # kept here only (not sent to workers): precompute's data settings
            chain = [train]
            last_epoch = None
            for stage in grid.stages:
                stage_opts = []
                for k, v in stage.overrides.items():
                    stage_opts += [k, format_value(v)]
                sfp, _ = builder.fingerprint(point.config, seed, opts + stage_opts + tail,
                                             f"{what}, stage {stage.name}", point.dataset)
                stage_values = sfp["values"]
                if sfp["training_hash"] != fp["training_hash"]:
                    from ..engine.run_folder import CLASS_LIST_KEYS

                    diffs = differences(fp, sfp, training_only=True)
                    if not all(d[0] in CLASS_LIST_KEYS for d in diffs):
                        raise GridError(f"{grid.source}: stage {stage.name} overrides settings of training "
                                        f"({describe(diffs)}); a stage may only change evaluation keys (TEST.*, "
                                        "DATASET.OOD_*, TRAINER.CRoFT.EVAL_RATIO*, ...) and, for base-to-new, "
                                        "DATASET.SUBSAMPLE_CLASSES")
                    if not _class_list_may_differ(trainer_class, builder, point.config, seed, opts + tail, what,
                                                  point.dataset):
                        raise GridError(f"{grid.source}: stage {stage.name} changes {describe(diffs)}, but "
                                        f"{grid.trainer} ({what}) learns state that depends on the class list, "
                                        "so its trained model cannot be evaluated on other classes")
                sflags = flags + ["--eval-only"] + (["--model-dir", train.out_dir] if trains else [])
                if trains and last_epoch is None:
                    last_epoch = builder.with_cfg(point.config, seed, opts + tail, what, point.dataset, _last_epoch)
                if trains and last_epoch:  # the model its training run evaluated: it saved no model-best
                    sflags += ["--load-epoch", str(last_epoch)]
                skey = f"{key}/{stage.name}-{sfp['hash'][:HASH_CHARS]}"
                # training_fingerprint: of the model the stage evaluates (its training run), which the runner
                # checks before it starts; a base-to-new stage's own differs in the class list
                chain.append(RunSpec(key=skey, out_dir=os.path.join(output, skey), root=root, flags=sflags,
                                     opts=opts + stage_opts + tail, fingerprint=sfp["hash"],
                                     training_fingerprint=fp["training_hash"], stage=stage.name, parent_key=key,
                                     parent_dir=train.out_dir, grid=grid.name, trainer=grid.trainer,
                                     axes=dict(axes), uses=list(stage.use),
                                     stage_overrides={k: v for k, v in stage.overrides.items()}))
                chain[-1].values = stage_values
            train.stages = {s.stage: {"folder": os.path.relpath(s.out_dir, train.out_dir), "fingerprint": s.fingerprint,
                                      "use": list(s.uses), "overrides": dict(s.stage_overrides)} for s in chain[1:]}
            kept = []
            for spec in chain:
                selected = point_matches(grid, point, spec.stage, filter_map)
                result.every.setdefault(plain_key(spec.key), spec)
                if spec.fingerprint in seen:
                    if selected:  # a duplicate the selection does not hold is no news
                        duplicates.append((spec.key, seen[spec.fingerprint]))
                    continue
                if spec.key in folders and folders[spec.key] != spec.fingerprint:
                    raise GridError(f"two runs with different settings map to folder {spec.key} (a "
                                    f"{HASH_CHARS}-character hash collision); rename an axis label")
                seen[spec.fingerprint] = spec.key
                folders[spec.key] = spec.fingerprint
                for fkey in filter_map:
                    offered[fkey].update(path_text(v) for v in filter_candidates(grid, point, spec.stage, fkey))
                if selected:
                    kept.append(spec)
            if kept:
                chains.append((seed, kept))
                if train.stages:
                    result.with_stages.append(train)
        # Execution order: seed first (runs of one seed share the frozen backbone in one process),
        # then folder order.
        order = {}
        for seed, _ in chains:
            order.setdefault(str(seed), len(order))
        chains.sort(key=lambda item: order[str(item[0])])
        for _, chain in chains:
            result.chains.append(chain)
            result.runs.extend(chain)
    note = ""
    if duplicates:
        left_out, same_as = duplicates[0]
        note = (f"{len(duplicates)} selected run(s) have the same settings (fingerprint) as another run of the "
                f"grid(s) and were left out (e.g. two trainer configs that --backbone makes equal): {left_out} is "
                f"the same run as {same_as}")
    if filter_map and not result.runs:
        choices = "; ".join(f"{k}: {', '.join(sorted(v)) or '(none)'}" for k, v in offered.items())
        raise GridError(f"--only {' '.join(f'{k}={v}' for k, vs in filter_map.items() for v in vs)} selects no run "
                        f"of {', '.join(g.name for g in grids)}" + (f" ({note})" if note else f"; values: {choices}"))
    if note:
        result.notes.append(note)
    return result


def _domain(test_env):
    from .grid import domain_of

    return domain_of(test_env)
