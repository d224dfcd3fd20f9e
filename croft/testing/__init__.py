"""Test and demo fixtures that ship with the package (as ``numpy.testing``): the library never imports them.

- :mod:`croft.testing.synthetic`: the Setup-I/II trees (PACS, VLCS, the open-set sets, ImageNet and its
  variants) in the real on-disk layouts; :mod:`croft.testing.fewshot_trees`: the rest of CoOp's few-shot
  datasets (``tools/make_synthetic_data.py`` writes both); :mod:`croft.testing.render` draws their images;
- :mod:`croft.testing.demo_data`: the demo benchmark (``scripts/demo.sh``, docs/demo.md);
- :mod:`croft.testing.toy_pretrain`: contrastive pretraining of the ``tiny`` CLIP on that data.
"""
