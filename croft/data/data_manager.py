"""Wraps a dataset into loaders: train_x, val, test (one per test set) and open-set sets."""
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .transforms import build_transform


def read_image(path):
    with Image.open(path) as img:
        return img.convert("RGB")


class DatumDataset(Dataset):
    def __init__(self, items, transform):
        self.items = items
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        item = self.items[index]
        return {"img": self.transform(read_image(item.impath)), "label": item.label,
                "domain": item.domain, "impath": item.impath, "index": index}


class DataManager:
    """Builds the transforms and loaders of a :class:`~croft.data.datasets.DatasetBase`."""

    def __init__(self, cfg, dataset):
        self.cfg = cfg
        self.dataset = dataset
        self.train_transform = build_transform(cfg, is_train=True)
        self.test_transform = build_transform(cfg, is_train=False)
        self.pin_memory = torch.cuda.is_available() and cfg.USE_CUDA
        batch = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
        if dataset.train_x:
            self.train_loader_x = DataLoader(
                DatumDataset(dataset.train_x, self.train_transform), batch_size=batch, shuffle=True,
                # drop_last only when the set holds at least one full batch (spec §2.2).
                drop_last=len(dataset.train_x) >= batch, num_workers=cfg.DATALOADER.NUM_WORKERS,
                pin_memory=self.pin_memory, persistent_workers=cfg.DATALOADER.NUM_WORKERS > 0)
        else:
            self.train_loader_x = None
        self.val_loader = self.eval_loader(dataset.val) if dataset.val else None
        self.test_loader = self.eval_loader(dataset.test)

    def eval_loader(self, items, train_transform=False):
        transform = self.train_transform if train_transform else self.test_transform
        return DataLoader(DatumDataset(items, transform), batch_size=self.cfg.DATALOADER.TEST.BATCH_SIZE,
                          shuffle=False, num_workers=self.cfg.DATALOADER.NUM_WORKERS, pin_memory=self.pin_memory)

    @property
    def num_classes(self):
        return self.dataset.num_classes

    @property
    def classnames(self):
        return self.dataset.classnames
