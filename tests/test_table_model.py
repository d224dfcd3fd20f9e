"""The results table's parts (croft/results: records, stages, settings, aggregate, table, table_text).

The rendered tables are tested in tests/test_tables.py (compact) and tests/test_results.py (wide); here: the
wide table is the same model with other columns, score names and their order come from the results shown,
and the stage.json croft-sweep writes is the one the table reads.
"""
import csv
import io
import os
from types import SimpleNamespace

import pytest

from croft.results.aggregate import available_scores, collect
from croft.results.io import write_results_json
from croft.results.table import build_table
from croft.results.table_text import format_table
from croft.sweep.state import write_stage_file

SETS = ("DTD", "Food101")


def results(trainer, seed, acc, scores=("energy", "mcm"), lr=0.002, open_offset=0.0, **top):
    """A schema-2 results.json of a Setup-II PACS run held out on sketch."""
    open_set = {s: {score: {"auroc": 80.0 + 3 * i + j + seed + open_offset, "fpr95": 40.0 - 2 * i - j - seed}
                    for j, score in enumerate(scores)} for i, s in enumerate(SETS)}
    return dict({
        "schema_version": 2, "setup": "setup2", "trainer": trainer, "dataset": "PACS", "backbone": "RN50",
        "pretrained": "openai", "seed": seed, "shots": 16, "protocol": "standard", "target_domains": ["sketch"],
        "hparams": {}, "fingerprint_values": {"SEED": seed, "TEST_ENV": "test_on_sketch.json", "OPTIM.LR": lr},
        "closed_set": {"val_accuracy": 90.0, "test_accuracy": acc, "per_domain": {"sketch": acc}},
        "open_set": open_set}, **top)


@pytest.fixture
def two_methods(tmp_path):
    root = str(tmp_path / "out")
    for seed in (1, 2):
        write_results_json(os.path.join(root, "CRoFT", f"seed{seed}"), results("CRoFT", seed, 70.0 + seed))
        write_results_json(os.path.join(root, "CoOp", f"seed{seed}"), results("CoOp", seed, 60.0 + seed))
    return root


def csv_cells(text):
    return {(r["Method"], k): v for r in csv.DictReader(io.StringIO(text)) for k, v in r.items()
            if k.endswith((" mean", " std", " n"))}


def test_wide_is_the_same_model_with_other_columns(two_methods):
    rows = collect(two_methods)
    wide = build_table(rows, wide=True)
    compact = build_table(rows, scores="all", ood_metrics="auroc,fpr95")
    wide_cols = {c.name: c for c in wide.columns()}
    compact_cols = {c.name: c for c in compact.columns()}
    assert sorted(wide_cols) == sorted(compact_cols)
    assert list(wide_cols)[:2] == ["sketch", "Avg"] and "Food101 mcm FPR95" in wide_cols
    wide_methods = [r["method"] for r in wide.blocks[0].rows]  # collected order
    compact_methods = [r["method"] for r in compact.blocks[0].rows]  # by method name
    assert wide_methods == ["CRoFT", "CoOp"] and compact_methods == ["CoOp", "CRoFT"]
    for name, col in wide_cols.items():  # the same cells, whichever order the rows are in
        assert {m: stat and stat["mean"] for m, (stat, _) in zip(wide_methods, col.cells)} == \
            {m: stat and stat["mean"] for m, (stat, _) in zip(compact_methods, compact_cols[name].cells)}, name
    assert not any(any(c.best) for c in wide.columns())  # wide: no best marks
    assert compact_cols["sketch"].best == [False, True]  # CRoFT's 71.5 over CoOp's 61.5
    # the CSV writer renders both from the model: every number of the compact CSV is the wide CSV's
    narrow = csv_cells(format_table(rows, "csv", scores="all"))
    full = csv_cells(format_table(rows, "csv", wide=True))
    assert narrow and all(full[k] == v for k, v in narrow.items())


def test_wide_takes_all_and_comma_separated_scores(two_methods):
    rows = collect(two_methods)
    every = format_table(rows, "md", wide=True)
    assert format_table(rows, "md", wide=True, scores="all") == every
    assert format_table(rows, "md", wide=True, scores=["all"]) == every
    mcm = format_table(rows, "md", wide=True, scores="mcm")
    assert "DTD mcm AUROC" in mcm and "energy AUROC" not in mcm
    assert format_table(rows, "md", wide=True, scores="mcm,energy") == every


def test_score_names_and_order_come_from_the_results(tmp_path):
    root = str(tmp_path)
    # an unregistered score, and the run's own order (TEST.OOD_SCORES) reversed
    write_results_json(os.path.join(root, "a"), results("CRoFT", 1, 70.0, scores=("zz_custom", "knn", "energy")))
    rows = collect(root)
    assert available_scores(rows) == ["energy", "knn", "zz_custom"]  # croft's default order, then by name
    header = next(line for line in format_table(rows, "md", wide=True).splitlines() if line.startswith("| Method"))
    assert header.index("DTD energy AUROC") < header.index("DTD knn AUROC") < header.index("DTD zz_custom AUROC")
    assert "Open set, zz_custom score: AUROC" in format_table(rows, "md", scores="zz_custom")


def spec(out_dir, **kw):
    base = dict(out_dir=out_dir, parent_key=None, parent_dir=None, stage="train", stages=None, uses=None,
                stage_overrides=None, training_fingerprint=None, fingerprint=None)
    return SimpleNamespace(**dict(base, **kw))


def test_the_stage_files_croft_sweep_writes_are_the_ones_the_table_reads(tmp_path):
    root = str(tmp_path)
    overrides = {"TRAINER.CRoFT.EVAL_RATIO": 0.5}
    for seed in (1, 2):
        train = os.path.join(root, f"seed{seed}")
        write_results_json(train, results("CRoFT", seed, 70.0 + seed, training_fingerprint=f"t{seed}"))
        stages = {}
        for name, use, offset in (("eval_ood", ["open_set"], 10.0), ("new", [], 20.0)):
            folder = os.path.join(train, name)
            write_results_json(folder, results("CRoFT", seed, 10.0, open_offset=offset, fingerprint=f"{name}{seed}",
                                               training_fingerprint=f"t{seed}"))
            write_stage_file(spec(folder, parent_key=f"seed{seed}", parent_dir=train, stage=name, uses=use,
                                  stage_overrides=overrides, training_fingerprint=f"t{seed}",
                                  fingerprint=f"{name}{seed}"))
            stages[name] = {"folder": name, "fingerprint": f"{name}{seed}", "use": use, "overrides": overrides}
        write_stage_file(spec(train, stages=stages, fingerprint=f"t{seed}"))
    rows = collect(root)
    assert len(rows) == 1 and rows[0]["n_seeds"] == 2
    row = rows[0]
    assert row["per_domain"]["sketch"]["mean"] == pytest.approx(71.5)  # the training runs' accuracy
    # open set from eval_ood (offset 10): per seed 80 + 10 + seed on DTD energy
    assert row["open_set"]["DTD"]["energy"]["auroc"]["mean"] == pytest.approx(91.5)
    assert row["stages"] == [("open_set", "eval_ood", "TRAINER.CRoFT.EVAL_RATIO 0.5")]
    assert not rows.warnings  # the 'use: []' stage is read by its own table, not reported as unused
    md = format_table(rows, "md")
    assert "come from stage eval_ood (each trained model evaluated again with TRAINER.CRoFT.EVAL_RATIO 0.5" in \
        " ".join(md.split())
