"""Dataset base class and the dataset registry."""
from ...utils.registry import Registry

DATASET_REGISTRY = Registry("dataset")


class DatasetBase:
    #: The ID side of open-set detection under ``TEST.OOD_PROTOCOL reference``: the held-out
    #: test domain for Setup-II (spec §2.9), the val split for Setup-I (spec §2.7).
    reference_detection_split = "test"

    """What every dataset provides to the data manager.

    - ``train_x``, ``val``, ``test``: lists of :class:`~croft.data.datum.Datum`.
    - ``ood``: ``{set name: [Datum, ...]}`` open-set (semantic-shift) evaluation sets.
    - ``test_sets``: ``{domain or variant name: [Datum, ...]}``; the covariate-shifted test sets
      reported one by one in ``closed_set.per_domain``. Defaults to ``{"test": test}``.
    - ``class_subsets``: ``{test set name: [labels]}``; that set is classified over those classes
      only (e.g. ImageNet-A/-R over the base classes they contain).
    - ``train_full``: the whole training split before few-shot sampling (the reference
      protocol's KNN bank, spec §2.9); defaults to ``train_x``.
    - ``classnames``: ID class names, indexed by label.
    - ``source_domains`` / ``target_domains``: domain names (for results.json).
    """

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

    @property
    def num_classes(self):
        return len(self.classnames)

    @property
    def lab2cname(self):
        return dict(enumerate(self.classnames))
