#!/usr/bin/env python
"""Results table from run folders: mean ± std over seeds, one row per method and setting.

    python tools/collect_results.py OUTPUT_ROOT [--format md|csv|latex] [--select val]
                                    [--scores energy[,mcm,...]|all] [--ood-metrics auroc,fpr95]
                                    [--wide] [--output FILE]
    python tools/collect_results.py OUTPUT_ROOT --table fewshot|base2new [--format md|csv|latex] [--output FILE]

Reads every ``results.json`` under OUTPUT_ROOT (never log text); which runs share a row is in
``croft/results/settings.py``, the aggregation rules in ``croft/results/aggregate.py``
(``croft/results/collect.py`` maps the steps). The default table is compact: the
closed-set accuracies (per held-out domain or Setup-I variant, and their average), then AUROC
and FPR95 per open-set set for one score (``--scores``, default ``energy``); settings are named
by a key (``CRoFT [a]``) listing the recorded settings in which rows of one method differ (a row
pools runs that differ only in seed and held-out domain); the best value of each column is bold
(md) or ``\\textbf`` (LaTeX). ``--wide`` prints the full table of every score with the settings
spelled out in each row. Malformed results.json files and unfinished run folders are listed in
separate sections (and malformed ones on stderr); a results.json of a newer schema version is
skipped with a warning on stderr. ``--format csv`` writes one table of numbers (mean, std and n
columns per statistic); its notes and warnings go to stderr, or with ``--output FILE.csv`` to
``FILE.notes.csv``.
Evaluation stages of ``croft-sweep`` (a ``stage.json`` next to the results, docs/sweeps.md §4) are
combined with their training runs: e.g. the Setup-II table takes closed-set accuracy from the
training runs and the open-set metrics from the ``eval_ood`` stage, as its footer says. A
missing OUTPUT_ROOT or an unwritable --output ends with one ``error: ...`` line and exit status 1.
``--table fewshot`` prints CoOp's few-shot table (a column per dataset and Average, a row per method and shot
count) and ``--table base2new`` CoCoOp's base-to-new table (Base, New, H per dataset and on average) of the runs
of CoOp's 11 datasets (croft/results/fewshot_tables.py; docs/benchmark.md, "The third benchmark").
"""
import argparse
import os
import sys

try:
    import croft.results.collect  # noqa: F401
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from croft.results.collect import (ALL_METRICS, DEFAULT_OOD_METRICS, DEFAULT_SCORES, FORMATS,  # noqa: E402
                                   available_scores, collect, format_notes, format_table, notes_lines)
from croft.results.fewshot_tables import TABLES  # noqa: E402
from croft.utils.atomic import atomic_write_text  # noqa: E402
from croft.utils.cli import print_error, run_tool  # noqa: E402


def _split(text):
    return [s.strip() for s in text.split(",") if s.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", metavar="OUTPUT_ROOT", help="folder that holds the run folders")
    parser.add_argument("--format", default="md", choices=FORMATS, help="table format (default: md)")
    parser.add_argument("--select", choices=["val"], default=None,
                        help="keep only the hyper-parameter setting with the best mean validation accuracy "
                             "per (trainer, dataset, backbone, pretrained, shots, protocol)")
    parser.add_argument("--scores", default=None,
                        help="comma-separated open-set scores to show, or 'all' (e.g. energy,mcm,max_logit,knn; "
                             f"default: {','.join(DEFAULT_SCORES)}, with --wide: all)")
    parser.add_argument("--ood-metrics", default=None,
                        help="comma-separated open-set metrics of the compact table, from "
                             f"{','.join(m for m, _ in ALL_METRICS)} (default: {','.join(DEFAULT_OOD_METRICS)})")
    parser.add_argument("--wide", action="store_true",
                        help="the full table: every score (or --scores), AUROC and FPR95 of each open-set set, "
                             "hyper-parameters spelled out in each row, no best marks")
    parser.add_argument("--output", default=None, help="write the table to FILE instead of stdout (csv: its notes "
                                                       "to FILE's name with .notes.csv)")
    parser.add_argument("--table", default="results", choices=("results",) + TABLES,
                        help="results (default): the table above; fewshot: CoOp's few-shot table; base2new: "
                             "CoCoOp's base-to-new table (docs/benchmark.md)")
    args = parser.parse_args(argv)
    if args.table != "results":
        if args.select or args.scores is not None or args.wide or args.ood_metrics is not None:
            parser.error(f"--table {args.table} takes --format and --output only")
        return fewshot_main(args)

    if not os.path.isdir(args.root):
        return print_error(f"OUTPUT_ROOT {args.root} is not a folder"
                           + (" (it does not exist)" if not os.path.exists(args.root) else ""))
    if args.wide and args.ood_metrics is not None:
        parser.error("--ood-metrics applies to the compact table; --wide always shows AUROC and FPR95")
    ood_metrics = _split(args.ood_metrics) if args.ood_metrics is not None else None
    known = [m for m, _ in ALL_METRICS]
    if ood_metrics is not None and (not ood_metrics or any(m not in known for m in ood_metrics)):
        parser.error(f"--ood-metrics: choose from {', '.join(known)}, got {args.ood_metrics!r}")
    scores = _split(args.scores) if args.scores is not None else None
    if scores is not None and not scores:
        parser.error("--scores: give at least one score name, or 'all'")
    if args.wide and scores is not None and "all" in scores:
        scores = None

    rows = collect(args.root, select=args.select)
    text = format_table(rows, args.format, scores=scores, wide=args.wide, ood_metrics=ood_metrics)
    for path, reason in rows.malformed:
        print(f"skipped malformed {path}: {reason}", file=sys.stderr)
    for line in rows.refused:
        print(f"warning: {line}", file=sys.stderr)
    if not rows:
        print(f"no finished runs (results.json) under {args.root}", file=sys.stderr)
    else:
        available = available_scores(rows)
        wanted = scores if scores is not None else ([] if args.wide else list(DEFAULT_SCORES))
        missing = [s for s in wanted if s != "all" and s not in available]
        if missing:
            print(f"warning: no open-set results for score(s) {', '.join(missing)} "
                  f"(available: {', '.join(available) if available else 'none'})", file=sys.stderr)
    notes = format_notes(rows, scores=scores, wide=args.wide, ood_metrics=ood_metrics) if args.format == "csv" else None
    if args.output:
        notes_path = notes_file(args.output) if notes is not None else None
        try:
            if notes_path:
                atomic_write_text(notes_path, notes)
            atomic_write_text(args.output, text)
        except OSError as e:
            return print_error(f"cannot write {args.output}: {e}")
        print(f"wrote {args.output} ({len(rows)} rows, {len(rows.incomplete)} incomplete, "
              f"{len(rows.malformed)} malformed)" + (f" and its notes to {notes_path}" if notes_path else ""),
              file=sys.stderr)
    else:
        sys.stdout.write(text)
        if notes is not None:
            for line in notes_lines(rows, scores=scores, wide=args.wide, ood_metrics=ood_metrics):
                print(line, file=sys.stderr)
    return 0


def fewshot_main(args):
    """``--table fewshot|base2new``: the table, its notes in it (csv: warnings on stderr)."""
    import croft.trainers  # noqa: F401  (registers every trainer: which ones train nothing)
    from croft.engine.trainer import TRAINER_REGISTRY
    from croft.results.fewshot_tables import base2new_table, fewshot_table, format_base2new, format_fewshot

    if not os.path.isdir(args.root):
        return print_error(f"OUTPUT_ROOT {args.root} is not a folder"
                           + (" (it does not exist)" if not os.path.exists(args.root) else ""))
    if args.table == "fewshot":
        zero_shot = [n for n in TRAINER_REGISTRY.names() if not TRAINER_REGISTRY.get(n).trains]
        table = fewshot_table(args.root, zero_shot=zero_shot)
        text = format_fewshot(table, args.format)
    else:
        table = base2new_table(args.root)
        text = format_base2new(table, args.format)
    if args.format == "csv":
        for path, reason in table.skipped:
            print(f"skipped {path}: {reason}", file=sys.stderr)
        for line in table.warnings:
            print(f"warning: {line}", file=sys.stderr)
    if args.output:
        try:
            atomic_write_text(args.output, text)
        except OSError as e:
            return print_error(f"cannot write {args.output}: {e}")
        print(f"wrote {args.output} ({len(table.rows)} rows)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def notes_file(output):
    """``table.csv`` -> ``table.notes.csv``: where the CSV table's notes go."""
    stem, ext = os.path.splitext(output)
    return f"{stem}.notes{ext or '.csv'}"


if __name__ == "__main__":
    sys.exit(run_tool(main))
