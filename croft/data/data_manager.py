"""The loaders of a run: train_x, val, test, and any further evaluation set on request.

The data manager is built once the frozen backbone is known, from a *feature source*
(:mod:`croft.data.feature_source`): images through the frozen encoder, the feature cache, or the
images themselves for a method that trains its encoder. Each
loader is built once and yields :class:`~croft.data.batch.Batch` objects. Reproducible
augmentation and batch order: :mod:`croft.data.images`.
"""
import random

from .images import EpochBatchSampler, augmentation_seed, num_train_views
from .transforms import build_transform


class DataManager:
    """Transforms and loaders of a :class:`~croft.data.datasets.DatasetBase` over a feature source."""

    def __init__(self, cfg, dataset, source):
        self.cfg = cfg
        self.dataset = dataset
        self.source = source
        self.train_transform = build_transform(cfg, is_train=True)
        self.test_transform = build_transform(cfg, is_train=False)
        self.aug_seed = augmentation_seed(cfg)
        self.num_views = num_train_views(cfg)
        self.train_sampler = None
        self.train_loader_x = None
        if dataset.train_x:
            shuffle_seed = cfg.SEED if cfg.SEED >= 0 else random.SystemRandom().randrange(1 << 62)
            batch = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
            # drop_last only when the set holds at least one full batch (docs/method.md §7.1).
            self.train_sampler = EpochBatchSampler(len(dataset.train_x), batch, len(dataset.train_x) >= batch,
                                                   shuffle_seed, self.num_views)
            self.train_loader_x = source.train_loader(dataset.train_x, self.train_transform, self.aug_seed,
                                                      self.train_sampler, cfg.OPTIM.MAX_EPOCH, name="train_x")
        self.val_loader = self.eval_loader(dataset.val, name="val") if dataset.val else None
        self.test_loader = self.eval_loader(dataset.test, name="test")

    @property
    def feature_cache(self):
        """The :class:`~croft.data.feature_cache.FeatureCache` behind the loaders, or None."""
        return getattr(self.source, "cache", None)

    def set_epoch(self, epoch):
        """Select the shuffle order and the augmented view of training epoch ``epoch`` (0-based)."""
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)

    def eval_loader(self, items, train_transform=False, name="", view=0):
        """Loader of ``items`` in order; ``train_transform`` uses augmented view ``view`` of the training transform."""
        transform = self.train_transform if train_transform else self.test_transform
        return self.source.eval_loader(items, transform, self.aug_seed, self.cfg.DATALOADER.TEST.BATCH_SIZE,
                                       name=name, view=view)

    @property
    def num_classes(self):
        return self.dataset.num_classes

    @property
    def classnames(self):
        return self.dataset.classnames

