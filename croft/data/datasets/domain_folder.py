"""Multi-domain, leave-one-domain-out datasets: ``DomainFolder`` (any folder), ``PACS``, ``VLCS``.

Dataset folder: ``DATASET.ROOT/<DATASET_DIR>`` (``PACS``, ``VLCS``) or ``DATASET.ROOT`` itself
(``DomainFolder``), holding either

- ``images/<domain>/<class>/<image>`` (or ``<domain>/<class>/<image>``) plus the split files
  ``test_on_<domain>.json`` (written by ``tools/prepare_splits.py``, see datasets/README.md), or
- only the image folders: the split is then built in memory with
  :func:`croft.data.splits.make_domain_splits`, val fraction ``DATASET.VAL_PERCENT`` (default 0.2)
  and seed 1, i.e. exactly the file ``tools/prepare_splits.py --val-fraction <VAL_PERCENT>`` would
  write. With a split file the val set is the file's, and a non-default ``VAL_PERCENT`` is an error.

The held-out domain comes from ``TEST_ENV`` (``test_on_<domain>.json``) or from
``DATASET.TARGET_DOMAINS`` (one name); domain names match case-insensitively (VLCS folders are
upper case), and a ``Datum``'s domain index comes from the domain folder in its path (the
original code's case-sensitive substring test gave every VLCS image domain 3).

Sets: ``train_x = SAMPLERS[DATASET.FEWSHOT_SAMPLER](train, NUM_SHOTS)``, then
``val = sample_class_balanced(val, VAL_SHOTS if VAL_SHOTS > 0 else NUM_SHOTS)``, ``test`` = the
whole held-out domain, ``test_sets = {held-out domain: test}``, and ``ood`` = the open-set sets
named in ``DATASET.OOD_SETS`` (:func:`croft.data.datasets.openset.load_ood_sets`, seed key
``"canonical"``). The few-shot draws use Python's ``random``, which the engine seeds from ``SEED``
before building the dataset; the open-set draws use their own generators and leave it untouched.

Samplers (``croft/data/fewshot.py``): ``class_balanced`` takes K per class, or every image of a
class that has fewer; ``reference_balance`` follows the original's rule, short classes and short
domains included (every image of a class with fewer than K, every image of a domain with fewer
than floor(K / n_domains)). With either, a class with no training image at all is an error.
The configs/datasets/VLCS*.yaml files set ``DATASET.VAL_SHOTS 16``: the original's VLCS val is
16 per class whatever NUM_SHOTS is. PACS keeps ``-1`` (NUM_SHOTS per class), as the original's
PACS. See docs/differences.md.

Config-only checks (held-out domain, TEST_ENV, SOURCE_DOMAINS for PACS/VLCS, the few-shot
sampler, keys that only ImageNet46 reads) are in :meth:`DomainFolder.check_cfg`; the
constructor keeps the checks that need the disk.
"""
import glob
import logging
import os

from ...config.defaults import get_cfg_default
from ..datum import Datum
from ..fewshot import SAMPLERS, sample_class_balanced
from ..splits import (
    DEFAULT_SEED, DatasetConfigError, DatasetError, SPLIT_KEYS, classnames_from_split, image_dir_of,
    make_domain_splits, read_split_json, split_file_name, visible_entries,
)
from .base import DATASET_REGISTRY, DatasetBase, reject_non_default
from .openset import load_ood_sets

logger = logging.getLogger(__name__)

README_HINT = "see datasets/README.md"

# Keys that only ImageNet46 reads: a non-default value is an error for the multi-domain datasets.
IMAGENET_ONLY_KEYS = {
    "DATASET.BASE_RATIO": "it sets ImageNet46's base/new class split; PACS/VLCS/DomainFolder train on "
                          "every class (DATASET.SUBSAMPLE_CLASSES base/new splits the classes in two)",
    "DATASET.IMAGENET_OOD_SAMPLES": "it sizes ImageNet46's new-class open-set set; use DATASET.OOD_SETS "
                                    "and DATASET.OOD_PER_CLASS",
    "DATASET.IMAGENET_VARIANTS": "it lists ImageNet46's shifted test sets; the held-out domain is the test set",
}


def check_dataset_root(cfg):
    """``DATASET.ROOT`` as an existing folder, or an error that says what is wrong."""
    root = cfg.DATASET.ROOT
    if not root:
        raise DatasetError(
            f"DATASET.ROOT is not set: pass --root or set DATASET.ROOT to the data folder ({README_HINT})"
        )
    root = os.path.expanduser(root)
    if not os.path.exists(root):
        raise FileNotFoundError(f"DATASET.ROOT not found: {root} ({README_HINT})")
    if not os.path.isdir(root):
        raise NotADirectoryError(f"DATASET.ROOT is not a directory: {root}")
    return root


@DATASET_REGISTRY.register("DomainFolder")
class DomainFolder(DatasetBase):
    """A leave-one-domain-out dataset from any ``<domain>/<class>/<image>`` folder tree.

    Subclasses set ``DATASET_DIR`` (sub-folder of ``DATASET.ROOT``), ``DOMAINS`` (canonical
    lower-case names in domain-index order), ``DOMAIN_ALIASES`` (other folder names of a domain)
    and ``OOD_EXCLUDE`` (the default open-set exclusion list). Without ``DOMAINS`` the domains
    are the sorted domain folders, in lower case.
    """
    setup = "setup2"

    NAME = "DomainFolder"
    DATASET_DIR = ""
    DOMAINS = ()
    DOMAIN_ALIASES = {}
    OOD_EXCLUDE = "none"
    #: Seed key of the open-set draws (croft.data.datasets.openset.OOD_SEED_KEYS).
    OOD_SEED_KEY = "canonical"

    @classmethod
    def check_cfg(cls, cfg):
        """The common dataset keys, the keys only ImageNet46 reads (must keep their defaults),
        ``DATASET.FEWSHOT_SAMPLER``, the held-out domain (``TEST_ENV`` / ``DATASET.TARGET_DOMAINS``)
        and, for a dataset with a fixed domain list (PACS, VLCS), ``DATASET.SOURCE_DOMAINS``."""
        super().check_cfg(cfg)
        reject_non_default(cfg, IMAGENET_ONLY_KEYS, cls.NAME)
        sampler_name = cfg.DATASET.FEWSHOT_SAMPLER
        if sampler_name not in SAMPLERS:
            raise DatasetConfigError(
                f"invalid value for 'DATASET.FEWSHOT_SAMPLER': {sampler_name!r}; expected one of {sorted(SAMPLERS)}"
            )
        held_out, _ = cls._held_out_from_cfg(cfg)
        if cfg.DATASET.SOURCE_DOMAINS and cls.DOMAINS:
            sources = [d for d in cls.DOMAINS if d != held_out]
            bad = [d for d in (cls._canonical(n) for n in cfg.DATASET.SOURCE_DOMAINS) if d not in sources]
            if bad:
                raise DatasetConfigError(cls._not_sources_message(cfg, bad, sources, held_out))

    def __init__(self, cfg):
        root = check_dataset_root(cfg)
        dataset_dir = os.path.join(root, self.DATASET_DIR) if self.DATASET_DIR else root
        self.dataset_dir = dataset_dir
        if not os.path.isdir(dataset_dir):
            raise FileNotFoundError(
                f"{self.NAME}: dataset folder not found: {dataset_dir}. Looked for "
                f"{dataset_dir}/images/<domain>/<class>/<image> (with {dataset_dir}/test_on_<domain>.json) "
                f"and {dataset_dir}/<domain>/<class>/<image> ({README_HINT})"
            )
        image_dir = image_dir_of(dataset_dir)
        folders = self._domain_folders(image_dir)  # canonical name -> folder name
        self.domains = list(self.DOMAINS) or sorted(folders)
        if not self.domains:
            raise DatasetError(
                f"{self.NAME}: no domain folders in {image_dir}: expected {image_dir}/<domain>/<class>/<image> "
                f"({README_HINT})"
            )
        held_out, test_env = self._held_out_from_cfg(cfg)
        if held_out not in self.domains:  # DomainFolder: its domains are the folders on disk
            given = (f"TEST_ENV '{cfg.TEST_ENV}'" if test_env
                     else f"DATASET.TARGET_DOMAINS {list(cfg.DATASET.TARGET_DOMAINS)}")
            raise DatasetError(f"{self.NAME}: unknown held-out domain '{held_out}' (from {given}); {self._known()}")

        json_path = os.path.join(dataset_dir, test_env or split_file_name(held_out))
        split_files = sorted(os.path.basename(p) for p in glob.glob(os.path.join(dataset_dir, "test_on_*.json")))
        if not os.path.isfile(json_path):
            # Domain names match case-insensitively and through aliases, in TEST_ENV too
            # (test_on_CALTECH -> test_on_caltech.json).
            same = [f for f in split_files if self._canonical(f[len("test_on_"):-len(".json")]) == held_out]
            if len(same) == 1:
                json_path = os.path.join(dataset_dir, same[0])
        if not os.path.isfile(json_path) and split_files:
            # Some split files but not this one: a folder-built split would silently differ from them.
            raise FileNotFoundError(
                f"{self.NAME}: split file not found: {json_path} (split files in {dataset_dir}: {split_files}); "
                f"expected test_on_<domain>.json for the held-out domain '{held_out}', or no split file at all "
                f"to build the splits from the folders ({README_HINT})")
        if os.path.isfile(json_path):
            split = read_split_json(json_path)
            source = json_path
            self._check_val_percent_unused(cfg, json_path)
        elif folders:
            split, source = self._split_from_folders(dataset_dir, image_dir, folders, held_out,
                                                     cfg.DATASET.VAL_PERCENT)
        else:
            found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(dataset_dir, "test_on_*.json")))
            raise FileNotFoundError(
                f"{self.NAME}: split file not found: {json_path} (split files in {dataset_dir}: "
                f"{found or 'none'}), and there are no image folders {image_dir}/<domain>/<class>/ to build "
                f"the split from; run tools/prepare_splits.py ({README_HINT})"
            )
        self.split_source = source

        classnames = classnames_from_split(split, source)
        index = {d: i for i, d in enumerate(self.domains)}
        data = {}
        for key in SPLIT_KEYS:
            data[key] = [self._datum(image_dir, entry, index, source, key, i) for i, entry in enumerate(split[key])]
        self._check_images(data, source)

        seen_domains = {d.domainname for d in data["train"] + data["val"]}
        sources = [d for d in self.domains if d != held_out and d in seen_domains]
        if cfg.DATASET.SOURCE_DOMAINS:
            chosen = [self._canonical(d) for d in cfg.DATASET.SOURCE_DOMAINS]
            bad = [d for d in chosen if d not in sources]
            if bad:  # a source domain with no image in this split (PACS/VLCS names: checked in check_cfg)
                raise DatasetError(self._not_sources_message(cfg, bad, sources, held_out))
            sources = [d for d in self.domains if d in chosen]
            data["train"] = [d for d in data["train"] if d.domainname in sources]
            data["val"] = [d for d in data["val"] if d.domainname in sources]
        elif self.DOMAINS:
            # Every domain but the held-out one is a source: one without images is an error, never
            # a silently smaller training set.
            absent = [d for d in self.domains if d != held_out and d not in seen_domains]
            if absent:
                raise DatasetError(
                    f"{self.NAME}: source domain(s) {absent} have no training or val image in {source}; "
                    f"expected images of every domain of {list(self.DOMAINS)} except the held-out '{held_out}' "
                    "(or name the sources to use with DATASET.SOURCE_DOMAINS)")

        sampler_name = cfg.DATASET.FEWSHOT_SAMPLER
        shots = cfg.DATASET.NUM_SHOTS
        train_x = SAMPLERS[sampler_name](data["train"], shots)
        val_shots = cfg.DATASET.VAL_SHOTS if cfg.DATASET.VAL_SHOTS > 0 else shots
        val = sample_class_balanced(data["val"], val_shots)
        test = data["test"]

        # The label -> text-feature alignment needs every class in train_x.
        present = {d.label for d in train_x}
        missing = [f"{label} ({name})" for label, name in enumerate(classnames) if label not in present]
        if missing:
            raise DatasetError(
                f"{self.NAME}: the training set (DATASET.FEWSHOT_SAMPLER {sampler_name}, NUM_SHOTS {shots}, "
                f"from {source}) has no image of class(es) {', '.join(missing)}; every label 0..{len(classnames) - 1} "
                "must appear in train_x"
            )

        ood = load_ood_sets(cfg, self.default_ood_root(root), self.OOD_EXCLUDE, self.OOD_SEED_KEY)
        super().__init__(
            train_x, val, test, classnames, ood=ood, test_sets={held_out: test},
            source_domains=sources, target_domains=[held_out], train_full=data["train"],
        )

    # ------------------------------------------------------------------ domains

    @classmethod
    def _canonical(cls, name):
        low = name.lower()
        return cls.DOMAIN_ALIASES.get(low, low)

    def _domain_folders(self, image_dir):
        """``{canonical domain: folder}`` of the folder layout, ``{}`` when there is none."""
        out = {}
        for name in visible_entries(image_dir):
            path = os.path.join(image_dir, name)
            if os.path.isdir(path) and any(os.path.isdir(os.path.join(path, c)) for c in visible_entries(path)):
                out.setdefault(self._canonical(name), name)
        return out

    @classmethod
    def _known_domains(cls, domains):
        if domains:
            return f"known {cls.NAME} domains: {list(domains)}"
        return f"the {cls.NAME} domains are the domain folders of DATASET.ROOT"

    def _known(self):
        return self._known_domains(self.domains)

    @classmethod
    def _not_sources_message(cls, cfg, bad, sources, held_out):
        return (f"{cls.NAME}: DATASET.SOURCE_DOMAINS {list(cfg.DATASET.SOURCE_DOMAINS)}: {bad} are not "
                f"source domains; choose from {sources} (held-out domain: {held_out})")

    @classmethod
    def _held_out_from_cfg(cls, cfg):
        """The held-out domain (canonical) and the TEST_ENV file name ("" when not given), from the
        config alone. Raises :class:`DatasetConfigError` for a malformed ``TEST_ENV``, several or no
        held-out domains, a ``TEST_ENV`` / ``TARGET_DOMAINS`` disagreement, or (datasets with a
        fixed ``DOMAINS`` list) an unknown domain."""
        domains = list(cls.DOMAINS)
        test_env = cfg.TEST_ENV
        from_env = None
        if test_env:
            stem = os.path.basename(test_env)
            if stem.endswith(".json"):
                stem = stem[:-5]
            else:
                test_env = test_env + ".json"
            if not stem.startswith("test_on_") or stem == "test_on_":
                raise DatasetConfigError(
                    f"{cls.NAME}: TEST_ENV '{cfg.TEST_ENV}' should name a split file test_on_<domain>.json "
                    f"({cls._known_domains(domains)})"
                )
            from_env = cls._canonical(stem[len("test_on_"):])
        targets = list(cfg.DATASET.TARGET_DOMAINS)
        if len(targets) > 1:
            raise DatasetConfigError(
                f"{cls.NAME}: DATASET.TARGET_DOMAINS must name one held-out domain (leave-one-domain-out), "
                f"got {targets}"
            )
        from_targets = cls._canonical(targets[0]) if targets else None
        if from_env is None and from_targets is None:
            example = domains[-1] if domains else "<domain>"
            choices = f"one of {domains}" if domains else "one domain folder"
            raise DatasetConfigError(
                f"{cls.NAME}: no held-out domain: set TEST_ENV (e.g. test_on_{example}.json) or "
                f"DATASET.TARGET_DOMAINS ({choices})"
            )
        if from_env is not None and from_targets is not None and from_env != from_targets:
            raise DatasetConfigError(
                f"{cls.NAME}: TEST_ENV '{cfg.TEST_ENV}' holds out '{from_env}' but DATASET.TARGET_DOMAINS "
                f"is {targets}; set one of them, or make them agree"
            )
        held_out = from_env if from_env is not None else from_targets
        if domains and held_out not in domains:
            given = f"TEST_ENV '{cfg.TEST_ENV}'" if from_env is not None else f"DATASET.TARGET_DOMAINS {targets}"
            raise DatasetConfigError(
                f"{cls.NAME}: unknown held-out domain '{held_out}' (from {given}); {cls._known_domains(domains)}"
            )
        return held_out, test_env

    def _check_val_percent_unused(self, cfg, json_path):
        """A split file fixes the val set: a non-default ``DATASET.VAL_PERCENT`` would have no effect."""
        default = get_cfg_default().DATASET.VAL_PERCENT
        if cfg.DATASET.VAL_PERCENT != default:
            raise DatasetError(
                f"{self.NAME}: DATASET.VAL_PERCENT {cfg.DATASET.VAL_PERCENT} has no effect: the split comes from "
                f"{json_path}, whose val set is fixed. Remove DATASET.VAL_PERCENT (default {default}), or write "
                f"the split files with tools/prepare_splits.py --val-fraction {cfg.DATASET.VAL_PERCENT} "
                f"(or remove them to split the image folders in memory)"
            )

    def _split_from_folders(self, dataset_dir, image_dir, folders, held_out, val_fraction):
        unknown = sorted(folders[d] for d in folders if d not in self.domains)
        if unknown:
            raise DatasetError(
                f"{self.NAME}: unexpected domain folder(s) {unknown} in {image_dir}; {self._known()}"
            )
        if held_out not in folders:
            raise FileNotFoundError(
                f"{self.NAME}: no folder for the held-out domain '{held_out}' in {image_dir} "
                f"(found {sorted(folders.values())}) and no split file "
                f"{os.path.join(dataset_dir, split_file_name(held_out))}"
            )
        logger.info("%s: no split file for '%s'; building the split from %s (DATASET.VAL_PERCENT %s)",
                    self.NAME, held_out, image_dir, val_fraction)
        splits = make_domain_splits(dataset_dir, val_fraction, DEFAULT_SEED)
        return splits[folders[held_out]], f"folder layout {image_dir}"

    def _domain_of(self, relpath, index, source, key, i):
        for part in relpath.replace("\\", "/").split("/"):
            name = self._canonical(part)
            if name in index:
                return name
        raise DatasetError(
            f"{source}: entry {i} of '{key}' ({relpath}) is not in a domain folder; expected "
            f"<domain>/<class>/<image> with a domain from {self.domains}"
        )

    def _datum(self, image_dir, entry, index, source, key, i):
        relpath, label, classname = entry
        domain = self._domain_of(relpath, index, source, key, i)
        return Datum(os.path.join(image_dir, relpath), label, index[domain], classname, domain)

    @staticmethod
    def _check_images(data, source):
        for key in SPLIT_KEYS:
            missing = [(i, d.impath) for i, d in enumerate(data[key]) if not os.path.isfile(d.impath)]
            if missing:
                total = sum(len(v) for v in data.values())
                i, path = missing[0]
                raise FileNotFoundError(
                    f"image not found: {path} (listed in {source}, entry {i} of '{key}'); {len(missing)} of the "
                    f"{len(data[key])} '{key}' images are missing ({total} images listed in all). "
                    f"Is DATASET.ROOT right? ({README_HINT})"
                )

    # ------------------------------------------------------------------ open-set sets

    def default_ood_root(self, root):
        """Where ``dtd/``, ``food-101/``, ``caltech-101/`` live: ``DATASET.ROOT`` for PACS/VLCS, the
        parent folder of ``DATASET.ROOT`` for DomainFolder (whose ROOT is the dataset itself)."""
        if self.DATASET_DIR:
            return root
        return os.path.dirname(os.path.abspath(root))


@DATASET_REGISTRY.register("PACS")
class PACS(DomainFolder):
    """PACS (Li et al., ICCV 2017): 7 classes in 4 domains; domain indices as in the reference."""

    NAME = "PACS"
    DATASET_DIR = "PACS"
    DOMAINS = ("art_painting", "cartoon", "photo", "sketch")
    OOD_EXCLUDE = "PACS"


@DATASET_REGISTRY.register("VLCS")
class VLCS(DomainFolder):
    """VLCS (Fang et al., ICCV 2013): 5 classes in 4 domains.

    Domain indices follow the reference's order (caltech 0, pascal 1, labelme 2, sun 3).
    DomainBed's folder names (Caltech101, LabelMe, SUN09, VOC2007) are accepted as aliases.
    """

    NAME = "VLCS"
    DATASET_DIR = "VLCS"
    DOMAINS = ("caltech", "pascal", "labelme", "sun")
    DOMAIN_ALIASES = {"caltech101": "caltech", "voc2007": "pascal", "sun09": "sun"}
    OOD_EXCLUDE = "VLCS"
