"""CoOp's ``ImageNet``: all 1,000 classes, ImageNet-val as the test set (the few-shot benchmark's 11th dataset).

Layout (the same folder as ImageNet46, datasets/README.md)::

    imagenet/classnames.txt                 "<wnid> <class name>" per line (CoOp's, the CLIP names)
    imagenet/images/{train,val}/<wnid>/<image>

As CoOp: label = position of the wnid among the sorted ``images/train`` folders, class name from
``classnames.txt``; ``train`` = every train image, ``test`` = every val image; the few-shot draw
takes ``DATASET.NUM_SHOTS`` per class from train (``SEED``; kept in
``imagenet/split_fewshot/shot_K-seed_S.json``, or read from CoOp's ``.pkl``; see
:mod:`croft.data.datasets.coop_fewshot`). CoOp has no ImageNet val list (it passes the test set as
val and evaluates the last epoch): here ``val`` is empty, so a run evaluates its last epoch whatever
``TEST.FINAL_MODEL`` says, and never selects on the test set.

Differences (docs/differences.md, "ImageNet listing order"): images are listed sorted (CoOp:
``os.listdir`` order, kept in its ``preprocessed.pkl``), and only image files; a val folder that is
not a train folder is an error (CoOp would shift the val labels). The listing is read once per
process (keyed by the folders' modification times), so the runs of an in-process sweep list the
1.28M training images once.
"""
import logging
import os

from ..splits import DatasetError, is_image_file
from .coop import CoOpDataset, register_coop
from .coop_layouts import README_HINT
from .coop_split import Loaded, remember
from .imagenet import CLASSNAMES_FILE, read_classnames

logger = logging.getLogger(__name__)


def _folders(split_dir):
    """``[(name, mtime_ns)]`` of the sorted visible sub-folders of ``split_dir``."""
    with os.scandir(split_dir) as entries:
        return sorted((e.name, e.stat().st_mtime_ns) for e in entries if not e.name.startswith(".") and e.is_dir())


def _images(folder):
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if not e.name.startswith(".") and is_image_file(e.name)
                      and e.is_file())


@register_coop("ImageNet")
class ImageNet(CoOpDataset):
    """ILSVRC-2012, CoOp's protocol (see the module docstring)."""

    HAS_VAL = False

    def read_split(self):
        names_file = os.path.join(self.dataset_dir, CLASSNAMES_FILE)
        train_dir, val_dir = (os.path.join(self.base_dir, s) for s in ("train", "val"))
        for split_dir in (train_dir, val_dir):
            if not os.path.isdir(split_dir):
                raise FileNotFoundError(f"{self.NAME}: ImageNet folder not found: {split_dir} (expected "
                                        f"{split_dir}/<wnid>/<image>; {README_HINT})")
        if not os.path.isfile(names_file):
            raise FileNotFoundError(f"{self.NAME}: class list not found: {names_file} (CoOp's classnames.txt, "
                                    f"'<wnid> <class name>' per line; {README_HINT})")
        st = os.stat(names_file)
        train_folders, val_folders = _folders(train_dir), _folders(val_dir)
        key = ("imagenet", self.base_dir, st.st_size, st.st_mtime_ns, tuple(train_folders), tuple(val_folders))
        return remember(key, lambda: self._list(names_file, train_dir, val_dir, train_folders, val_folders))

    def _list(self, names_file, train_dir, val_dir, train_folders, val_folders):
        names = dict(read_classnames(names_file))
        wnids = [w for w, _ in train_folders]
        if not wnids:
            raise DatasetError(f"{self.NAME}: no class folders in {train_dir}; expected {train_dir}/<wnid>/<image>")
        unknown = [w for w in wnids if w not in names]
        if unknown:
            raise DatasetError(f"{self.NAME}: class folder(s) {unknown[:5]} of {train_dir} are not in {names_file}")
        labels = {w: i for i, w in enumerate(wnids)}
        stray = [w for w, _ in val_folders if w not in labels]
        if stray:
            raise DatasetError(f"{self.NAME}: val folder(s) {stray[:5]} of {val_dir} have no train folder in "
                               f"{train_dir}; every val class must be a train class")
        split = {"train": [], "val": [], "test": []}
        for key, split_dir, folders in (("train", train_dir, wnids), ("test", val_dir, [w for w, _ in val_folders])):
            for wnid in folders:
                files = _images(os.path.join(split_dir, wnid))
                if key == "train" and not files:
                    raise DatasetError(f"{self.NAME}: empty training folder {os.path.join(split_dir, wnid)}")
                sub = os.path.basename(split_dir)
                split[key] += [(f"{sub}/{wnid}/{f}", labels[wnid], names[wnid]) for f in files]
        logger.info("%s: listed %d train and %d val images of %d classes", self.NAME, len(split["train"]),
                    len(split["test"]), len(wnids))
        return Loaded(split, f"the folders {train_dir} and {val_dir}", name="images/{train,val} (sorted listing)")
