"""Feature sources: where the image side of a batch comes from.

- :class:`EncoderSource` reads the images and runs the frozen CLIP image encoder on every pass
  (``CACHE.ENABLED False``, the "online" pipeline).
- :class:`CachedSource` serves features from the on-disk cache
  (:class:`~croft.data.feature_cache.FeatureCache`), encoding each image view once.
- :class:`ImageSource` reads the images and hands them over unencoded, for a method that trains
  its image encoder (``frozen_encoder = False``): cached features would be stale after its first
  update.

All produce the same loaders: an evaluation loader over a list of items in order, and a
training loader that follows an :class:`~croft.data.images.EpochBatchSampler`. All yield
:class:`~croft.data.batch.Batch` objects with their tensors already on the device, and all see the
same pixels for the same (image, view), so the frozen encoder's two sources agree.
"""
import math

import torch
from torch.utils.data import DataLoader

from .batch import Batch
from .images import DatumDataset, is_random_transform


def _private_generator():
    # DataLoader draws its workers' base seed from `generator`, or from the global RNG when None;
    # a private generator keeps the global RNG (which model updates may use) untouched.
    return torch.Generator()


class _ImageLoader:
    """An image DataLoader whose batches go through ``encode`` (images on ``device`` -> N x D fp32 features),
    or keep their images when ``encode`` is None."""

    def __init__(self, loader, encode, device):
        self.loader = loader
        self.encode = encode
        self.device = device
        self.batch_sampler = loader.batch_sampler

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for b in self.loader:
            images = b["img"].to(self.device, non_blocking=True)
            features = self.encode(images) if self.encode is not None else None
            yield Batch(features=features, labels=b["label"].to(self.device, non_blocking=True),
                        domains=b["domain"].to(self.device, non_blocking=True), impaths=list(b["impath"]),
                        indices=b["index"], images=None if self.encode is not None else images)


class EncoderSource:
    """Images through the frozen encoder on every pass (``encode``: images on ``device`` -> N x D fp32)."""

    cache = None

    def __init__(self, encode, device, num_workers=0, pin_memory=False):
        self.encode = encode
        self.device = torch.device(device)
        self.num_workers = int(num_workers)
        self.pin_memory = pin_memory

    def train_loader(self, items, transform, aug_seed, sampler, max_epoch, name="train_x"):
        loader = DataLoader(DatumDataset(items, transform, aug_seed), batch_sampler=sampler,
                            num_workers=self.num_workers, pin_memory=self.pin_memory,
                            persistent_workers=self.num_workers > 0, generator=_private_generator())
        return _ImageLoader(loader, self.encode, self.device)

    def eval_loader(self, items, transform, aug_seed, batch_size, name="", view=0):
        loader = DataLoader(DatumDataset(items, transform, aug_seed, view=view), batch_size=batch_size,
                            shuffle=False, num_workers=self.num_workers, pin_memory=self.pin_memory,
                            generator=_private_generator())
        return _ImageLoader(loader, self.encode, self.device)


class ImageSource(EncoderSource):
    """The online pipeline without encoding: batches carry ``images`` (``features`` None), for a method
    that trains its image encoder and encodes them itself."""

    def __init__(self, device, num_workers=0, pin_memory=False):
        super().__init__(None, device, num_workers, pin_memory)


class CachedSource:
    """Features from the on-disk :class:`~croft.data.feature_cache.FeatureCache`."""

    def __init__(self, cache):
        self.cache = cache

    def train_loader(self, items, transform, aug_seed, sampler, max_epoch, name="train_x"):
        return CachedTrainLoader(self.cache, items, transform, aug_seed, sampler, max_epoch, name)

    def eval_loader(self, items, transform, aug_seed, batch_size, name="", view=0):
        return CachedEvalLoader(self.cache, items, transform, aug_seed, batch_size, name, view)


class _FeatureLoaderBase:
    def __init__(self, cache, items, transform, aug_seed, name):
        self.cache = cache
        self.items = list(items)
        self.transform = transform
        self.aug_seed = aug_seed
        self.name = name
        device = cache.device
        self.labels = torch.tensor([it.label for it in self.items], dtype=torch.long).to(device)
        self.domains = torch.tensor([it.domain for it in self.items], dtype=torch.long).to(device)

    def _batch(self, features, index):
        idx = torch.as_tensor(index, dtype=torch.long)
        on_device = idx.to(features.device)
        return Batch(features=features.index_select(0, on_device), labels=self.labels.index_select(0, on_device),
                     domains=self.domains.index_select(0, on_device),
                     impaths=[self.items[i].impath for i in index], indices=idx)


class CachedEvalLoader(_FeatureLoaderBase):
    """The batches of a set, in order."""

    def __init__(self, cache, items, transform, aug_seed, batch_size, name="", view=0):
        super().__init__(cache, items, transform, aug_seed, name)
        self.batch_size = batch_size
        self.view = view

    def __len__(self):
        return math.ceil(len(self.items) / self.batch_size)

    def __iter__(self):
        # Test-transform sets are kept in memory for the run (validation runs every epoch);
        # augmented views (reference-protocol open-set sets, Tip-Adapter passes) are read once.
        features = self.cache.features(self.items, self.transform, self.view, self.aug_seed, self.name,
                                       memoize=not is_random_transform(self.transform)).to(self.cache.device)
        for start in range(0, len(self.items), self.batch_size):
            yield self._batch(features, list(range(start, min(start + self.batch_size, len(self.items)))))


class CachedTrainLoader(_FeatureLoaderBase):
    """The training batches of an :class:`~croft.data.images.EpochBatchSampler`, as features of the epoch's view."""

    def __init__(self, cache, items, transform, aug_seed, sampler, max_epoch, name="train_x"):
        super().__init__(cache, items, transform, aug_seed, name)
        self.sampler = sampler
        self.max_epoch = max_epoch
        self._prepared = False

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        if not self._prepared:
            # One encoding pass for every view the remaining epochs will use.
            epochs = range(self.sampler.epoch, max(self.max_epoch, self.sampler.epoch + 1))
            views = {e % self.sampler.num_views for e in epochs}
            self.cache.prepare_views(self.items, self.transform, views, self.aug_seed, self.name)
            self._prepared = True
        view = self.sampler.view
        features = self.cache.features(self.items, self.transform, view, self.aug_seed, self.name,
                                       memoize=False).to(self.cache.device)
        for index in self.sampler:
            yield self._batch(features, [i for i, _ in index])
