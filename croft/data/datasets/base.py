"""Dataset base class and the dataset registry."""
from ...utils.registry import Registry

DATASET_REGISTRY = Registry("dataset")


class DatasetBase:
    """What every dataset provides to the data manager.

    - ``train_x``, ``val``, ``test``: lists of :class:`~croft.data.datum.Datum`.
    - ``ood``: ``{set name: [Datum, ...]}`` open-set (semantic-shift) evaluation sets.
    - ``test_sets``: ``{domain or variant name: [Datum, ...]}``; the covariate-shifted test sets
      reported one by one in ``closed_set.per_domain``. Defaults to ``{"test": test}``.
    - ``class_subsets``: ``{test set name: [labels]}``; that set is classified over those classes
      only (e.g. ImageNet-A/-R over the base classes they contain).
    - ``classnames``: ID class names, indexed by label.
    - ``source_domains`` / ``target_domains``: domain names (for results.json).
    """

    def __init__(self, train_x, val, test, classnames, ood=None, test_sets=None,
                 source_domains=(), target_domains=(), class_subsets=None):
        self.train_x = list(train_x)
        self.val = list(val)
        self.test = list(test)
        self.classnames = list(classnames)
        self.ood = dict(ood or {})
        self.test_sets = dict(test_sets) if test_sets else {"test": self.test}
        self.source_domains = list(source_domains)
        self.target_domains = list(target_domains)
        self.class_subsets = dict(class_subsets or {})

    @property
    def num_classes(self):
        return len(self.classnames)

    @property
    def lab2cname(self):
        return dict(enumerate(self.classnames))
