"""Results tables from run folders: the names ``tools/collect_results.py``, ``croft-sweep collect`` and the
docs use, gathered from the modules that do each job (DomainBed-style: records, selection, tables).

This replaces the reference's log parsers (docs/protocols.md §6), which pooled Setup-I variants, kept
running means across logs and assigned seeds by listing order. Every number comes from one run's
``results.json``, and each step is explicit:

* :mod:`croft.results.records`: reading the results.json files under a folder (:func:`scan`), what is
  incomplete, malformed, of an unread schema version, or not a number;
* :mod:`croft.results.stages`: the ``stage.json`` of ``croft-sweep``'s evaluation stages, whose sections
  replace those of their training runs (:func:`combine_stages`);
* :mod:`croft.results.settings`: which runs share a row (recorded ``fingerprint_values`` except
  :data:`POOLED_KEYS`) and the labels that tell rows apart;
* :mod:`croft.results.aggregate`: mean ± std over seeds, averages over held-out domains, ``--select val``
  (:func:`collect`, :func:`aggregate`);
* :mod:`croft.results.table`: the one table model (compact, or ``wide``: another choice of columns);
* :mod:`croft.results.table_text`: its md / csv / latex writers (:func:`format_table`) and the CSV's notes
  (:func:`format_notes`).
"""
from .aggregate import CollectedRows, aggregate, available_scores, collect
from .records import ALL_METRICS, RunRecord, scan
from .settings import ABSENT, POOLED_KEYS, differing_keys, format_hparams, format_setting, run_identities
from .stages import combine_stages
from .table import DEFAULT_OOD_METRICS, DEFAULT_SCORES
from .table_text import FORMATS, format_notes, format_stat, format_table, notes_lines

__all__ = [
    "CollectedRows", "RunRecord", "scan", "combine_stages", "aggregate", "collect", "format_table",
    "format_hparams", "format_setting", "format_stat", "format_notes", "notes_lines", "available_scores",
    "run_identities", "differing_keys", "FORMATS", "DEFAULT_SCORES", "DEFAULT_OOD_METRICS", "ALL_METRICS",
    "POOLED_KEYS", "ABSENT",
]
