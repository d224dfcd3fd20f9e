"""The one batch schema every trainer reads.

Every loader of :class:`~croft.data.data_manager.DataManager` yields :class:`Batch` objects,
whatever the feature source (images through the frozen encoder, or the on-disk feature cache):
the trainers of croft all run on frozen CLIP image features, so a batch carries those features,
already on the run's device, never raw pixels.
"""
from dataclasses import dataclass
from typing import List

import torch


@dataclass
class Batch:
    #: N x D raw (unnormalised) fp32 image features of the frozen CLIP image encoder.
    features: torch.Tensor
    #: N class labels (long), on the same device as ``features``.
    labels: torch.Tensor
    #: N domain indices (long), on the same device as ``features``.
    domains: torch.Tensor
    #: N image paths.
    impaths: List[str]
    #: N positions of the samples in the set the loader was built from (CPU long tensor).
    indices: torch.Tensor

    def __len__(self):
        return len(self.labels)
