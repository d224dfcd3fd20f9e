"""Dataset readers. Importing this package registers every dataset."""
from .base import DATASET_REGISTRY, DatasetBase


def build_dataset(cfg):
    return DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)


__all__ = ["DATASET_REGISTRY", "DatasetBase", "build_dataset"]
