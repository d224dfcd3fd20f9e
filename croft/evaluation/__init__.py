"""Evaluation as parts with one job each (see ``docs/architecture.md``).

- :mod:`.inference`: turn a loader into :class:`~.inference.Outputs` (logits, features, labels)
  under explicit :class:`~.inference.InferenceSettings`;
- :mod:`.scores`: the open-set score registry (energy, MCM, max-logit, KNN);
- :mod:`.protocols`: the open-set protocols ``standard`` and ``reference`` (``docs/protocols.md``);
- :mod:`.evaluator`: closed-set and open-set evaluation of a model on a dataset, as data.
The results writer (:mod:`croft.results.writer`) turns that data into the run folder's files.
"""
