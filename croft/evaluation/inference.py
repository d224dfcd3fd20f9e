"""The inference runner: a loader of :class:`~croft.data.batch.Batch` -> :class:`Outputs`.

A model evaluated here implements three methods (every trainer does):

- ``set_model_mode("eval")``;
- ``encode(images, settings) -> features``: raw image features of a batch of transformed images
  (the frozen CLIP image encoder, unless the method trains its own);
- ``inference(features, settings) -> InferenceOutput`` on a batch of raw image features.

A batch of a frozen-encoder method already holds its features (the frozen encoder, or the feature
cache, encoded them); a batch of images goes through ``encode`` first. ``settings`` says explicitly
which inference is wanted; nothing is set on the model from outside.
"""
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch
from tqdm import tqdm


@dataclass(frozen=True)
class InferenceSettings:
    #: The run's final evaluation (CRoFT then mixes with ``EVAL_RATIO*``, ``docs/method.md`` §4.5;
    #: FT / LP-FT with ``WISE_ALPHA``), as opposed to validation during training.
    final: bool = False


TRAINING = InferenceSettings(final=False)
FINAL = InferenceSettings(final=True)


class InferenceOutput(NamedTuple):
    logits: torch.Tensor            # N x C, already scaled by CLIP's logit scale
    image_features: torch.Tensor    # N x D, L2-normalised (adapted) image features
    #: L2-normalised (adapted) class text features: C x D, the same for every sample of the batch, or
    #: N x C x D, sample i's own (DPLCLIP, whose prompts depend on the batch).
    text_features: torch.Tensor


class Outputs(NamedTuple):
    """Everything evaluation needs of one set, on the CPU, in the set's order.

    ``text_features``: without ``text_index``, the C x D matrix of every sample, or N x C x D (sample
    i's own); with ``text_index`` (N long), K x C x D matrices, sample i's being
    ``text_features[text_index[i]]`` (what :class:`OutputsCollector` makes of text features that vary
    by batch).
    """
    logits: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    text_features: Optional[torch.Tensor]
    text_index: Optional[torch.Tensor] = None

    @property
    def correct(self):
        return self.logits.argmax(dim=1) == self.labels

    @property
    def accuracy(self):
        return 100.0 * int(self.correct.sum()) / len(self.labels) if len(self.labels) else float("nan")

    def subset(self, indices):
        index = torch.as_tensor(indices, dtype=torch.long)
        text, text_index = self.text_features, self.text_index
        if text_index is not None:
            text_index = text_index[index]
        elif text is not None and text.dim() == 3:
            text = text[index]
        return Outputs(self.logits[index], self.features[index], self.labels[index], text, text_index)

    def text_groups(self):
        """``[(sample indices, C x D text features)]``: the samples that share one text matrix."""
        text, text_index = self.text_features, self.text_index
        if text_index is None and text.dim() == 2:
            return [(torch.arange(len(self.labels)), text)]
        if text_index is None:
            text, text_index = distinct_rows(text)
        return [(torch.nonzero(text_index == k).flatten(), text[k]) for k in torch.unique(text_index).tolist()]

    def subset_accuracy(self, labels_subset):
        """Accuracy with the prediction restricted to ``labels_subset`` (other logits set to -inf)."""
        if not len(self.labels):
            return float("nan")
        keep = torch.zeros(self.logits.shape[1], dtype=torch.bool)
        keep[list(labels_subset)] = True
        pred = self.logits.masked_fill(~keep, float("-inf")).argmax(dim=1)
        return 100.0 * int((pred == self.labels).sum()) / len(self.labels)


class OutputsCollector:
    """Collects the :class:`InferenceOutput` of consecutive batches into one :class:`Outputs`.

    Text features are kept per sample: consecutive samples with bit-identical class text features
    share one stored matrix, so a method whose text features never change gets one C x D matrix
    (``text_index`` None), and one whose text varies by batch gets one matrix per batch.
    """

    def __init__(self):
        self.logits, self.features, self.labels = [], [], []
        self.texts, self.text_index = [], []

    def add(self, out: InferenceOutput, labels):
        n = len(out.logits)
        self.logits.append(out.logits.float().cpu())
        self.features.append(out.image_features.float().cpu())
        self.labels.append(torch.as_tensor(labels).cpu())
        text = out.text_features
        if text.dim() == 2:
            self._add_text(text, n)
        else:
            for matrix, count in _runs(text):
                self._add_text(matrix, count)

    def _add_text(self, matrix, count):
        matrix = matrix.float().cpu()
        if not self.texts or not torch.equal(self.texts[-1], matrix):
            self.texts.append(matrix)
        self.text_index.append(torch.full((count,), len(self.texts) - 1, dtype=torch.long))

    def outputs(self, num_classes=0) -> Outputs:
        if not self.logits:
            return Outputs(torch.empty(0, num_classes), torch.empty(0, 0), torch.empty(0, dtype=torch.long), None)
        if len(self.texts) == 1:
            text, index = self.texts[0], None
        else:
            text, index = torch.stack(self.texts), torch.cat(self.text_index)
        return Outputs(torch.cat(self.logits), torch.cat(self.features), torch.cat(self.labels), text, index)


def _runs(text):
    """``[(C x D matrix, count)]``: runs of consecutive bit-identical matrices of an N x C x D tensor."""
    n = len(text)
    if n and text.stride(0) == 0:  # one matrix expanded over the batch
        return [(text[0], n)]
    runs, start = [], 0
    for i in range(1, n + 1):
        if i == n or not torch.equal(text[i], text[start]):
            runs.append((text[start], i - start))
            start = i
    return runs


def distinct_rows(text):
    """``(K x C x D, N index)`` of an N x C x D tensor: one matrix per run of identical consecutive matrices."""
    runs = _runs(text)
    index = torch.cat([torch.full((count,), k, dtype=torch.long) for k, (_, count) in enumerate(runs)])
    return torch.stack([matrix for matrix, _ in runs]), index


def batch_features(model, batch, settings: InferenceSettings):
    """The raw image features of ``batch``: its own (a frozen encoder's), else ``model.encode`` of its images."""
    if batch.features is not None:
        return batch.features
    return model.encode(batch.images, settings)


@torch.no_grad()
def run_inference(model, loader, settings: InferenceSettings, desc="", num_classes=0) -> Outputs:
    """Run ``model.encode`` (image batches) and ``model.inference`` over every batch of ``loader``; fp32 CPU outputs."""
    model.set_model_mode("eval")
    collector = OutputsCollector()
    for batch in tqdm(loader, desc=f"eval {desc}", leave=False, dynamic_ncols=True):
        collector.add(model.inference(batch_features(model, batch, settings), settings), batch.labels)
    return collector.outputs(num_classes)
