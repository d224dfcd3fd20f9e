"""Dataset readers. Importing this package registers every dataset."""
from .base import DATASET_REGISTRY, DatasetBase, subsample_classes
from . import domain_folder, imagenet, openset  # noqa: F401  (registers DomainFolder, PACS, VLCS, ImageNet46)
from . import coop, coop_imagenet  # noqa: F401  (registers CoOp's 11 few-shot datasets, ImageNet included)


def build_dataset(cfg, check=True):
    """The dataset ``DATASET.NAME``: its ``check_cfg`` (skipped with ``check=False``, for a caller
    that already ran it), its reader, then ``DATASET.SUBSAMPLE_CLASSES`` (:meth:`DatasetBase.build`)."""
    return DATASET_REGISTRY.get(cfg.DATASET.NAME).build(cfg, check=check)


__all__ = ["DATASET_REGISTRY", "DatasetBase", "build_dataset", "subsample_classes"]
