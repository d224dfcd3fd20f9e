"""The inference runner: a loader of :class:`~croft.data.batch.Batch` -> :class:`Outputs`.

A model evaluated here implements two methods (every trainer does):

- ``set_model_mode("eval")``;
- ``inference(features, settings) -> InferenceOutput`` on a batch of raw frozen image features.

``settings`` says explicitly which inference is wanted; nothing is set on the model from outside.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from tqdm import tqdm


@dataclass(frozen=True)
class InferenceSettings:
    #: The run's final evaluation (CRoFT then mixes with ``EVAL_RATIO*``, ``docs/method.md`` §4.5),
    #: as opposed to validation during training.
    final: bool = False


TRAINING = InferenceSettings(final=False)
FINAL = InferenceSettings(final=True)


class InferenceOutput(NamedTuple):
    logits: torch.Tensor            # N x C, already scaled by CLIP's logit scale
    image_features: torch.Tensor    # N x D, L2-normalised (adapted) image features
    text_features: torch.Tensor     # C x D, L2-normalised (adapted) text features


class Outputs(NamedTuple):
    """Everything evaluation needs of one set, on the CPU, in the set's order."""
    logits: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    text_features: Optional[torch.Tensor]

    @property
    def correct(self):
        return self.logits.argmax(dim=1) == self.labels

    @property
    def accuracy(self):
        return 100.0 * int(self.correct.sum()) / len(self.labels) if len(self.labels) else float("nan")

    def subset(self, indices):
        index = torch.as_tensor(indices, dtype=torch.long)
        return Outputs(self.logits[index], self.features[index], self.labels[index], self.text_features)

    def subset_accuracy(self, labels_subset):
        """Accuracy with the prediction restricted to ``labels_subset`` (other logits set to -inf)."""
        if not len(self.labels):
            return float("nan")
        keep = torch.zeros(self.logits.shape[1], dtype=torch.bool)
        keep[list(labels_subset)] = True
        pred = self.logits.masked_fill(~keep, float("-inf")).argmax(dim=1)
        return 100.0 * int((pred == self.labels).sum()) / len(self.labels)


@torch.no_grad()
def run_inference(model, loader, settings: InferenceSettings, desc="", num_classes=0) -> Outputs:
    """Run ``model.inference`` over every batch of ``loader``; fp32 CPU outputs."""
    model.set_model_mode("eval")
    logits, features, labels = [], [], []
    text = None
    for batch in tqdm(loader, desc=f"eval {desc}", leave=False, dynamic_ncols=True):
        out = model.inference(batch.features, settings)
        logits.append(out.logits.float().cpu())
        features.append(out.image_features.float().cpu())
        labels.append(batch.labels.cpu())
        text = out.text_features.float().cpu()
    if not logits:
        return Outputs(torch.empty(0, num_classes), torch.empty(0, 0), torch.empty(0, dtype=torch.long), None)
    return Outputs(torch.cat(logits), torch.cat(features), torch.cat(labels), text)
