"""The one batch schema every trainer reads.

Every loader of :class:`~croft.data.data_manager.DataManager` yields :class:`Batch` objects,
whatever the feature source. A method whose image encoder is frozen (``frozen_encoder = True``,
every method but FT / LP-FT) gets the frozen encoder's features, from the encoder or the on-disk
feature cache, already on the run's device, and ``images`` is None. A method that trains its
encoder gets the transformed images instead (``features`` None) and runs them through its own
``encode(images)``; the trainer's ``parse_batch_train`` does that for it.
"""
from dataclasses import dataclass
from typing import List, Optional

import torch


@dataclass
class Batch:
    #: N x D raw (unnormalised) fp32 image features of the frozen CLIP image encoder; None when the
    #: batch carries ``images`` for a method that trains its encoder.
    features: Optional[torch.Tensor]
    #: N class labels (long), on the run's device.
    labels: torch.Tensor
    #: N domain indices (long), on the run's device.
    domains: torch.Tensor
    #: N image paths.
    impaths: List[str]
    #: N positions of the samples in the set the loader was built from (CPU long tensor).
    indices: torch.Tensor
    #: N x 3 x H x W transformed images on the run's device (the online pipeline of a method that
    #: trains its image encoder), else None.
    images: Optional[torch.Tensor] = None

    def __len__(self):
        return len(self.labels)
