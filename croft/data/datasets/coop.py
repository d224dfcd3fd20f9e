"""CoOp's few-shot classification datasets, under CoOp's names and in their native layouts.

Registered as ``OxfordPets``, ``OxfordFlowers``, ``FGVCAircraft``, ``DescribableTextures``,
``EuroSAT``, ``StanfordCars``, ``Food101``, ``SUN397``, ``Caltech101``, ``UCF101`` (this module) and
``ImageNet`` (:mod:`croft.data.datasets.coop_imagenet`); layouts in
:mod:`croft.data.datasets.coop_layouts`, datasets/README.md; configs ``configs/datasets/<name>.yaml``.

Sets (docs/protocols.md, "Few-shot classification"):

- the split: ``split_zhou_<Name>.json`` as it is; without it, built from the dataset's own
  annotations (or class folders) as CoOp does, deterministically, and written
  (:mod:`croft.data.datasets.coop_split`). FGVCAircraft's split is its own ``images_variant_*.txt``.
- ``train_x`` / ``val``: for ``DATASET.NUM_SHOTS`` K >= 1, CoOp's few-shot picks for ``SEED``: K per
  class from train and min(K, 4) per class from val (:mod:`croft.data.datasets.coop_fewshot`);
  K < 1: the whole train and val lists.
- ``test``: the whole test list; ``test_sets = {"test": test}``.
- ``train_full`` = ``train_x`` (nothing in the few-shot protocol reads the rest of the train list, so
  no run opens it).
- ``ood``: the open-set sets of ``DATASET.OOD_SETS`` (none by default), from ``DATASET.OOD_ROOT``
  (default ``DATASET.ROOT``), no class exclusion unless ``DATASET.OOD_EXCLUDE`` names a list.

``DATASET.SUBSAMPLE_CLASSES base|new`` (CoCoOp's base-to-new protocol) is applied by
:meth:`DatasetBase.build` after the few-shot draw, as CoCoOp does. Keys of the other datasets
(``TEST_ENV``, domains, ``VAL_PERCENT``, ``VAL_SHOTS``, ``FEWSHOT_SAMPLER``, ImageNet46's keys) are an
error when set: CoOp's protocol fixes what they would change.
"""
import logging
import os

from ..datum import Datum
from ..splits import DatasetConfigError, DatasetError, classnames_from_split
from .base import DATASET_REGISTRY, DatasetBase, reject_non_default
from .coop_fewshot import fewshot_subsets
from .coop_layouts import (
    LAYOUTS, README_HINT, read_cars, read_fgvc, read_flowers, read_pets_list, read_sun_classes, read_sun_list,
    read_ucf_classes, read_ucf_list, scan_class_folders,
)
from .coop_split import Loaded, check_images, load_split, remember, split_by_ratio, split_trainval, write_split
from .domain_folder import check_dataset_root
from .openset import canonical_ood_name, load_ood_sets

logger = logging.getLogger(__name__)

NOT_APPLICABLE_KEYS = {
    "TEST_ENV": "the few-shot datasets have no held-out domain",
    "DATASET.SOURCE_DOMAINS": "the few-shot datasets have one domain",
    "DATASET.TARGET_DOMAINS": "the few-shot datasets have one domain",
    "DATASET.VAL_PERCENT": "the val list comes from the dataset's split file (CoOp's fixed split)",
    "DATASET.VAL_SHOTS": "CoOp's protocol takes min(NUM_SHOTS, 4) val images per class",
    "DATASET.FEWSHOT_SAMPLER": "CoOp's protocol samples NUM_SHOTS per class ('class_balanced')",
    "DATASET.BASE_RATIO": "it sets ImageNet46's class split; DATASET.SUBSAMPLE_CLASSES base/new is CoCoOp's",
    "DATASET.IMAGENET_OOD_SAMPLES": "it sizes ImageNet46's open-set set",
    "DATASET.IMAGENET_VARIANTS": "it lists ImageNet46's shifted test sets",
}


# The open-set set (croft.data.datasets.openset) that reads the same folder as a dataset.
OWN_OOD_SET = {"DescribableTextures": "DTD", "Food101": "Food101", "Caltech101": "Caltech101",
               "OxfordFlowers": "Flowers102"}


class CoOpDataset(DatasetBase):
    """A CoOp classification dataset; a subclass sets ``LAYOUT`` and, if CoOp can build its split,
    :meth:`build_split`."""

    setup = "custom"
    LAYOUT = None
    #: How the DATASET.OOD_SETS draws are seeded (croft.data.datasets.openset.OOD_SEED_KEYS).
    OOD_SEED_KEY = "canonical"
    #: CoOp registers readers under the same names in Dassl; croft.dassl_bridge leaves them to CoOp.
    dassl_bridge_registers = False
    #: CoOp draws min(K, 4) val images per class; ImageNet has no val list.
    HAS_VAL = True

    @classmethod
    def check_cfg(cls, cfg):
        """The common keys, the keys that do not apply, a SEED for K >= 1, and no open-set set that is
        this dataset's own folder."""
        super().check_cfg(cfg)
        name = cls.LAYOUT.name
        reject_non_default(cfg, NOT_APPLICABLE_KEYS, name)
        if cfg.DATASET.NUM_SHOTS >= 1 and cfg.SEED < 0:
            raise DatasetConfigError(
                f"{name}: DATASET.NUM_SHOTS {cfg.DATASET.NUM_SHOTS} draws the few-shot subsets from SEED, which is "
                f"{cfg.SEED}; pass --seed (e.g. 1, 2 or 3, CoOp's seeds)")
        own = OWN_OOD_SET.get(name)
        same_root = os.path.abspath(cfg.DATASET.OOD_ROOT or cfg.DATASET.ROOT) == os.path.abspath(cfg.DATASET.ROOT)
        if own and same_root and own in [canonical_ood_name(n) for n in cfg.DATASET.OOD_SETS]:
            raise DatasetConfigError(
                f"{name}: DATASET.OOD_SETS {list(cfg.DATASET.OOD_SETS)} names {own}, the ID dataset's own folder; "
                "an open-set set must hold other classes")

    def __init__(self, cfg):
        layout = self.LAYOUT
        self.NAME = layout.name
        root = os.path.abspath(check_dataset_root(cfg))
        self.dataset_dir = layout.dataset_dir(root)
        self.base_dir = layout.base_dir(root)
        if not os.path.isdir(self.dataset_dir):
            raise FileNotFoundError(
                f"{self.NAME}: dataset folder not found: {self.dataset_dir} (expected CoOp's layout: "
                f"{layout.folder}/{layout.image_dir + '/' if layout.image_dir else ''}... and "
                f"{layout.split_file or 'its split lists'}; {README_HINT})")
        loaded = self.read_split()
        self.split_source = loaded.source
        split = loaded.split
        classnames = self._classnames(loaded)
        shots = cfg.DATASET.NUM_SHOTS
        if shots >= 1:
            train, val = fewshot_subsets(self.dataset_dir, self.base_dir, loaded, shots, cfg.SEED, self.HAS_VAL)
        else:
            train, val = split["train"], split["val"]
        train_x = self._data(train)
        ood = load_ood_sets(cfg, root, "none", self.OOD_SEED_KEY)
        super().__init__(train_x, self._data(val), self._data(split["test"]), classnames, ood=ood)
        logger.info("%s: %d classes; train_x %d, val %d, test %d (split %s)", self.NAME, len(classnames),
                    len(self.train_x), len(self.val), len(self.test), loaded.source)

    @staticmethod
    def _classnames(loaded):
        """Label-ordered class names of the split (computed once per held split); every class has a train image."""
        if loaded.classnames is None:
            split = loaded.split
            classnames = classnames_from_split(split, loaded.source)
            missing = sorted(set(range(len(classnames))) - {e[1] for e in split["train"]})
            if missing:
                raise DatasetError(f"{loaded.source}: the train list has no image of class(es) "
                                   f"{', '.join(f'{c} ({classnames[c]})' for c in missing)}; every class needs one")
            loaded.classnames = classnames
        return loaded.classnames

    def _data(self, entries):
        return [Datum(os.path.join(self.base_dir, relpath), label, 0, classname, "")
                for relpath, label, classname in entries]

    # ------------------------------------------------------------------ the split

    @property
    def split_path(self):
        return os.path.join(self.dataset_dir, self.LAYOUT.split_file)

    def read_split(self):
        """The split as a :class:`~croft.data.datasets.coop_split.Loaded`: the split file, or (absent) the
        split CoOp would build, written to the split file's place."""
        path = self.split_path
        if not os.path.isfile(path):
            logger.info("%s: no split file %s; building CoOp's split from the dataset's annotations", self.NAME, path)
            train, val, test = self.build_split()
            write_split(path, {"train": train, "val": val, "test": test})
            if not os.path.isfile(path):  # not writable: use it from memory
                return remember(("built", path), lambda: self._checked({"train": train, "val": val, "test": test},
                                                                     f"the split built from {self.dataset_dir}"))
        return load_split(path, self.base_dir, self.NAME)

    def _checked(self, split, source):
        check_images(split, self.base_dir, source, self.NAME)
        return Loaded(split, source)

    def build_split(self):
        """``(train, val, test)`` entries as CoOp builds them when the split file is absent."""
        raise FileNotFoundError(f"{self.NAME}: split file not found: {self.split_path} ({README_HINT})")

    def _class_folder_split(self):
        layout = self.LAYOUT
        if not os.path.isdir(self.base_dir):
            raise FileNotFoundError(
                f"{self.NAME}: neither the split file {self.split_path} nor the image folder {self.base_dir} "
                f"exists; expected {self.base_dir}/<class>/<image> to build the split from ({README_HINT})")
        classes, skipped = scan_class_folders(layout, self.base_dir)
        if skipped:
            logger.warning("warning: %s: skipped %d entries that are not image files in %s, e.g. %s", self.NAME,
                           len(skipped), self.base_dir, skipped[0])
        if not classes:
            raise DatasetError(f"{self.NAME}: no class folders in {self.base_dir}; expected <class>/<image> "
                               f"folders to build the split from ({README_HINT})")
        rel = [(label, folder, classname, [os.path.relpath(p, self.base_dir).replace(os.sep, "/") for p in paths])
               for label, (folder, classname, paths) in enumerate(classes)]
        return split_by_ratio(self.NAME, rel, f"class folder {self.base_dir}")

    def _trainval_split(self, trainval, test, source):
        train, val = split_trainval(self.NAME, trainval, source)
        return train, val, test


def register_coop(layout_name):
    """Register a :class:`CoOpDataset` subclass under the name of ``LAYOUTS[layout_name]``."""
    layout = LAYOUTS[layout_name]

    def decorator(cls):
        cls.LAYOUT = layout
        cls.NAME = layout.name
        return DATASET_REGISTRY.register(layout.name)(cls)

    return decorator


@register_coop("OxfordPets")
class OxfordPets(CoOpDataset):
    """Oxford-IIIT Pets: 37 breeds; split from ``annotations/{trainval,test}.txt``."""

    def build_split(self):
        trainval = read_pets_list(self.LAYOUT, self.dataset_dir, "trainval.txt")
        test = read_pets_list(self.LAYOUT, self.dataset_dir, "test.txt")
        return self._trainval_split(trainval, test, os.path.join(self.dataset_dir, "annotations", "trainval.txt"))


@register_coop("OxfordFlowers")
class OxfordFlowers(CoOpDataset):
    """Oxford Flowers-102; split 50/20/30 per class from ``imagelabels.mat`` and ``cat_to_name.json``."""

    def build_split(self):
        groups = read_flowers(self.LAYOUT, self.dataset_dir)
        classes = [(label, str(label), name, relpaths) for label, (name, relpaths) in groups.items()]
        return split_by_ratio(self.NAME, classes, os.path.join(self.dataset_dir, "imagelabels.mat"))


@register_coop("FGVCAircraft")
class FGVCAircraft(CoOpDataset):
    """FGVC-Aircraft (variants): its own ``images_variant_{train,val,test}.txt`` are the split."""

    def read_split(self):
        lists = [os.path.join(self.dataset_dir, f) for f in
                 ("variants.txt", *(f"images_variant_{s}.txt" for s in ("train", "val", "test")))]
        stats = tuple((p, os.stat(p).st_size, os.stat(p).st_mtime_ns) if os.path.isfile(p) else (p,) for p in lists)

        def build():
            split = {}
            for key in ("train", "val", "test"):
                split[key], _ = read_fgvc(self.LAYOUT, self.dataset_dir, key)
            return self._checked(split, os.path.join(self.dataset_dir, "images_variant_{train,val,test}.txt"))

        return remember(("fgvc", self.base_dir, stats), build)


@register_coop("DescribableTextures")
class DescribableTextures(CoOpDataset):
    """DTD: 47 textures; split 50/20/30 per class folder of ``images/``."""

    def build_split(self):
        return self._class_folder_split()


@register_coop("EuroSAT")
class EuroSAT(CoOpDataset):
    """EuroSAT (RGB): 10 land-cover classes, renamed as CoOp does ("AnnualCrop" -> "Annual Crop Land");
    split 50/20/30 per class folder of ``2750/``."""

    def build_split(self):
        return self._class_folder_split()


@register_coop("StanfordCars")
class StanfordCars(CoOpDataset):
    """Stanford Cars: 196 models; split from the devkit's ``.mat`` annotations (paths relative to the
    dataset folder: ``cars_train/...``, ``cars_test/...``)."""

    def build_split(self):
        devkit = os.path.join(self.dataset_dir, "devkit")
        meta = os.path.join(devkit, "cars_meta.mat")
        trainval_file = os.path.join(devkit, "cars_train_annos.mat")
        trainval = read_cars(self.LAYOUT, self.dataset_dir, "cars_train", trainval_file, meta)
        test = read_cars(self.LAYOUT, self.dataset_dir, "cars_test",
                         os.path.join(self.dataset_dir, "cars_test_annos_withlabels.mat"), meta)
        return self._trainval_split(trainval, test, trainval_file)


@register_coop("Food101")
class Food101(CoOpDataset):
    """Food-101: 101 dishes; split 50/20/30 per class folder of ``images/`` (as CoOp: not the
    official ``meta/`` lists)."""

    def build_split(self):
        return self._class_folder_split()


@register_coop("SUN397")
class SUN397(CoOpDataset):
    """SUN397: 397 scenes; split from ``ClassName.txt`` and the first partition ``{Training,Testing}_01.txt``."""

    def build_split(self):
        labels = read_sun_classes(self.LAYOUT, self.dataset_dir)
        trainval = read_sun_list(self.LAYOUT, self.dataset_dir, "Training_01.txt", labels)
        test = read_sun_list(self.LAYOUT, self.dataset_dir, "Testing_01.txt", labels)
        return self._trainval_split(trainval, test, os.path.join(self.dataset_dir, "Training_01.txt"))


@register_coop("Caltech101")
class Caltech101(CoOpDataset):
    """Caltech-101: 100 object classes (``BACKGROUND_Google`` and ``Faces_easy`` skipped, four folders
    renamed as CoOp does); split 50/20/30 per class folder."""

    def build_split(self):
        return self._class_folder_split()


@register_coop("UCF101")
class UCF101(CoOpDataset):
    """UCF101 middle frames: 101 actions ("ApplyEyeMakeup" -> "Apply_Eye_Makeup"); split from
    ``ucfTrainTestlist/{classInd,trainlist01,testlist01}.txt``."""

    def build_split(self):
        labels = read_ucf_classes(self.LAYOUT, self.dataset_dir)
        trainval = read_ucf_list(self.LAYOUT, self.dataset_dir, "trainlist01.txt", labels)
        test = read_ucf_list(self.LAYOUT, self.dataset_dir, "testlist01.txt", labels)
        return self._trainval_split(trainval, test,
                                    os.path.join(self.dataset_dir, "ucfTrainTestlist", "trainlist01.txt"))
