"""Dataset readers. Importing this package registers every dataset."""
from .base import DATASET_REGISTRY, DatasetBase
from . import domain_folder, imagenet, openset  # noqa: F401  (registers DomainFolder, PACS, VLCS, ImageNet46)


def build_dataset(cfg):
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


__all__ = ["DATASET_REGISTRY", "DatasetBase", "build_dataset"]
