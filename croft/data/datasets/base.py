"""Dataset base class, the dataset registry, config checks and base-to-new class subsampling."""
import dataclasses
import logging
import math

from ...config.defaults import get_cfg_default
from ...config.merge import get_value
from ...utils.registry import Registry
from ..splits import DatasetConfigError
from .openset import check_ood_cfg

logger = logging.getLogger(__name__)

DATASET_REGISTRY = Registry("dataset")

#: Values of ``DATASET.SUBSAMPLE_CLASSES`` (CoCoOp's base-to-new protocol, see :func:`subsample_classes`).
SUBSAMPLE_CHOICES = ("all", "base", "new")
OOD_PROTOCOLS = ("standard", "reference")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_common_dataset_keys(cfg):
    """Config-only checks of the dataset keys every dataset reads; raises :class:`DatasetConfigError`."""
    d = cfg.DATASET
    if not d.ROOT:
        raise DatasetConfigError(
            "DATASET.ROOT is not set: pass --root or set DATASET.ROOT to the data folder (see datasets/README.md)"
        )
    if d.SUBSAMPLE_CLASSES not in SUBSAMPLE_CHOICES:
        raise DatasetConfigError(
            f"invalid value for 'DATASET.SUBSAMPLE_CLASSES': {d.SUBSAMPLE_CLASSES!r}; expected one of "
            f"{list(SUBSAMPLE_CHOICES)}"
        )
    if not _is_number(d.VAL_PERCENT) or not 0.0 < d.VAL_PERCENT < 1.0:
        raise DatasetConfigError(
            f"invalid value for 'DATASET.VAL_PERCENT': {d.VAL_PERCENT!r}; expected a fraction in (0, 1)"
        )
    for key in ("NUM_SHOTS", "VAL_SHOTS"):
        if not _is_int(d[key]):
            raise DatasetConfigError(
                f"invalid value for 'DATASET.{key}': {d[key]!r}; expected an int (images per class, < 1 = all"
                + (", <= 0 = same as NUM_SHOTS" if key == "VAL_SHOTS" else "") + ")"
            )
    if not _is_number(d.BASE_RATIO) or not 0.0 < d.BASE_RATIO <= 1.0:
        raise DatasetConfigError(
            f"invalid value for 'DATASET.BASE_RATIO': {d.BASE_RATIO!r}; expected a number in (0, 1]"
        )
    if cfg.TEST.OOD_PROTOCOL not in OOD_PROTOCOLS:
        raise DatasetConfigError(
            f"invalid value for 'TEST.OOD_PROTOCOL': {cfg.TEST.OOD_PROTOCOL!r}; expected one of {list(OOD_PROTOCOLS)}"
        )
    check_ood_cfg(cfg)


def reject_non_default(cfg, reasons, dataset_name):
    """Raise :class:`DatasetConfigError` when a key of ``reasons`` (``{dotted key: why it has no
    effect}``) differs from its default: keys of other datasets that ``dataset_name`` does not read."""
    default = get_cfg_default()
    for key, why in reasons.items():
        value, base = get_value(cfg, key), get_value(default, key)
        if value != base:
            raise DatasetConfigError(
                f"{dataset_name}: '{key}' has no effect on this dataset (got {value!r}; default {base!r}): {why}. "
                "Remove it from the config or the command line."
            )


def subsample_classes(dataset, subsample):
    """Keep the ``"base"`` or ``"new"`` half of the classes of ``dataset`` (in place).

    CoCoOp's base-to-new protocol (Zhou et al., "Conditional Prompt Learning for Vision-Language
    Models", CVPR 2022): the labels ``0..C-1`` sorted, base = the first ``ceil(C / 2)``, new = the
    rest. ``train_x``, ``val``, ``test``, every test set and ``train_full`` keep only the items of
    the chosen classes, relabelled ``0..m-1`` in label order; ``classnames`` and ``class_subsets``
    follow. The open-set sets (``ood``) are left as they are. ``"all"`` changes nothing.
    Returns the kept original labels, in new-label order.
    """
    if subsample not in SUBSAMPLE_CHOICES:
        raise DatasetConfigError(
            f"invalid value for 'DATASET.SUBSAMPLE_CLASSES': {subsample!r}; expected one of {list(SUBSAMPLE_CHOICES)}"
        )
    labels = list(range(len(dataset.classnames)))
    if subsample == "all":
        return labels
    m = math.ceil(len(labels) / 2)
    selected = labels[:m] if subsample == "base" else labels[m:]
    if not selected:
        raise DatasetConfigError(
            f"DATASET.SUBSAMPLE_CLASSES {subsample}: {dataset.NAME or type(dataset).__name__} has "
            f"{len(labels)} class(es), so the '{subsample}' half is empty"
        )
    relabel = {old: new for new, old in enumerate(selected)}

    def keep(items):
        return [dataclasses.replace(d, label=relabel[d.label]) for d in items if d.label in relabel]

    old_test, old_train_x = dataset.test, dataset.train_x
    dataset.test = keep(old_test)
    dataset.train_x = keep(old_train_x)
    dataset.val = keep(dataset.val)
    dataset.train_full = dataset.train_x if dataset.train_full is old_train_x else keep(dataset.train_full)
    test_sets = {}
    for name, items in dataset.test_sets.items():
        kept = dataset.test if items is old_test else keep(items)
        if kept or items is old_test:
            test_sets[name] = kept
        else:
            logger.warning("DATASET.SUBSAMPLE_CLASSES %s: test set '%s' has no image of the kept classes; "
                           "it is not evaluated", subsample, name)
    dataset.test_sets = test_sets
    dataset.class_subsets = {
        name: [relabel[label] for label in subset if label in relabel]
        for name, subset in dataset.class_subsets.items() if name in test_sets
    }
    dataset.classnames = [dataset.classnames[old] for old in selected]
    logger.info("DATASET.SUBSAMPLE_CLASSES %s: %d of %d classes (original labels %s), relabelled 0..%d",
                subsample, len(selected), len(labels), selected, len(selected) - 1)
    return selected


class DatasetBase:
    """What every dataset provides to the data manager.

    - ``train_x``, ``val``, ``test``: lists of :class:`~croft.data.datum.Datum`.
    - ``ood``: ``{set name: [Datum, ...]}`` open-set (semantic-shift) evaluation sets.
    - ``test_sets``: ``{domain or variant name: [Datum, ...]}``; the covariate-shifted test sets
      reported one by one in ``closed_set.per_domain``. Defaults to ``{"test": test}``.
    - ``class_subsets``: ``{test set name: [labels]}``; that set is classified over those classes
      only (e.g. ImageNet-A/-R over the base classes they contain).
    - ``train_full``: the whole training split before few-shot sampling (the reference
      protocol's KNN bank); defaults to ``train_x``.
    - ``classnames``: ID class names, indexed by label.
    - ``source_domains`` / ``target_domains``: domain names (for results.json).
    - ``subsample_labels``: the original labels kept by ``DATASET.SUBSAMPLE_CLASSES``, in label order.

    Build a dataset with :meth:`build` (what ``build_dataset`` does): :meth:`check_cfg`, the
    constructor, then :func:`subsample_classes`. A subclass checks its config-only keys in
    :meth:`check_cfg` (calling ``super().check_cfg``) and keeps the checks that need the disk in
    its constructor.
    """

    #: The registered name used in messages.
    NAME = ""
    #: results.json "setup": "setup1" (ImageNet-style open-set benchmark with covariate variants),
    #: "setup2" (leave-one-domain-out domain generalisation) or "custom" (docs/results-schema.md §2.2).
    setup = "custom"
    #: The ID side of open-set detection under ``TEST.OOD_PROTOCOL reference``: the held-out
    #: test domain for Setup-II, the val split for Setup-I.
    reference_detection_split = "test"

    def __init__(self, train_x, val, test, classnames, ood=None, test_sets=None,
                 source_domains=(), target_domains=(), class_subsets=None, train_full=None):
        self.train_x = list(train_x)
        self.val = list(val)
        self.test = list(test)
        self.classnames = list(classnames)
        self.ood = dict(ood or {})
        # Keep the identity of a test set that *is* the test split, so it is evaluated once.
        self.test_sets = ({name: self.test if items is test else list(items) for name, items in test_sets.items()}
                          if test_sets else {"test": self.test})
        self.train_full = list(train_full) if train_full is not None else self.train_x
        self.source_domains = list(source_domains)
        self.target_domains = list(target_domains)
        self.class_subsets = dict(class_subsets or {})
        self.subsample_labels = list(range(len(self.classnames)))

    @classmethod
    def check_cfg(cls, cfg):
        """Validate the config keys this dataset reads, without reading any file.

        Raises :class:`~croft.data.splits.DatasetConfigError` (a ``ConfigError``) naming the key,
        the value and what is allowed. The base checks the keys common to every dataset.
        """
        check_common_dataset_keys(cfg)

    @classmethod
    def build(cls, cfg, check=True):
        """``check_cfg`` (unless ``check`` is False: the caller ran it), the dataset, then
        ``DATASET.SUBSAMPLE_CLASSES``."""
        if check:
            cls.check_cfg(cfg)
        dataset = cls(cfg)
        dataset.subsample_labels = subsample_classes(dataset, cfg.DATASET.SUBSAMPLE_CLASSES)
        return dataset

    @property
    def num_classes(self):
        return len(self.classnames)

    @property
    def lab2cname(self):
        return dict(enumerate(self.classnames))
