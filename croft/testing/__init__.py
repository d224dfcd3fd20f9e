"""Test and demo fixtures that ship with the package: synthetic datasets in the real on-disk layouts.

``croft.testing.fewshot_trees`` writes CoOp's few-shot classification datasets; the Setup-I/II trees
are written by ``croft.data.synthetic`` (``tools/make_synthetic_data.py`` writes both).
"""
