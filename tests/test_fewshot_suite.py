"""The third benchmark (docs/benchmark.md, "The third benchmark"): CoOp's few-shot grids and CoCoOp's base-to-new
grids (configs/sweeps/<method>_fewshot.yaml, <method>_base2new.yaml), the grid format's dataset axis and per-dataset
values, stages that change the class list, the few-shot and base-to-new tables (croft/results/fewshot_tables.py,
tools/collect_results.py --table) and the few-shot figure (croft/results/fewshot_plot.py, tools/plot_fewshot.py).

Expected numbers are recomputed here from each run's results.json (json.load, grouped by its own fields), never
taken from the tables' code. The end-to-end part runs a reduced sweep (tiny backbone, random weights, 1 epoch,
two synthetic datasets) once per module.
"""
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml

from croft.results.fewshot_plot import plot_fewshot, save_fewshot, shot_position
from croft.results.fewshot_tables import (base2new_table, fewshot_table, format_base2new, format_fewshot,
                                          harmonic_mean)
from croft.sweep.grid import GridError, load_grid
from croft.sweep.identity import plan

REPO = Path(__file__).resolve().parents[1]
COOP_DATASETS = ["imagenet", "caltech101", "oxford_pets", "stanford_cars", "oxford_flowers", "food101",
                 "fgvc_aircraft", "sun397", "dtd", "eurosat", "ucf101"]
# CoOp's COOP.md: rn50_ep50 for 1 shot, rn50_ep100 for 2 and 4, rn50 (200 epochs) for 8 and 16; ImageNet *_ep50.
COOP_EPOCHS = {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}
FEWSHOT_METHODS = {"croft": "CRoFT", "coop": "CoOp", "cocoop": "CoCoOp", "clip_adapter": "CLIP_Adapter",
                   "tip_adapter": "TIP_ADAPTER"}


def opts_of(spec):
    """The run's KEY VALUE overrides as {key: last value} (later ones win, as in croft-train)."""
    return {k: v for k, v in zip(spec.opts[0::2], spec.opts[1::2])}


def write_grid(path, tree):
    Path(path).write_text(yaml.safe_dump(tree, sort_keys=False))
    return str(path)


# ------------------------------------------------------------------ the grids

def test_croft_fewshot_has_165_runs_with_coops_epochs_per_shot_count(tmp_path):
    p = plan([load_grid("croft_fewshot")], str(tmp_path))
    assert len(p.runs) == 165 and all(r.stage == "train" for r in p.runs)
    seen = set()
    for spec in p.runs:
        dataset, shots, seed = spec.axes["dataset"], spec.axes["shots"], spec.axes["seed"]
        seen.add((dataset, shots, seed))
        opts = opts_of(spec)
        assert int(opts["DATASET.NUM_SHOTS"]) == shots
        assert int(opts["OPTIM.MAX_EPOCH"]) == (50 if dataset == "imagenet" else COOP_EPOCHS[shots])
        assert int(opts["TRAINER.CRoFT.gen_step"]) == (10 if shots == 1 else 1)
        assert float(opts["OPTIM.WEIGHT_DECAY"]) == 0.1 and opts["TEST.FINAL_MODEL"] == "last_step"
        assert spec.flags[spec.flags.index("--dataset-config-file") + 1].endswith(f"configs/datasets/{dataset}.yaml")
        # the folder names the epochs the run trains for (ImageNet's 50 too), under its dataset config
        assert spec.key.startswith(f"CRoFT/{dataset}/shots{shots}_ep_{opts['OPTIM.MAX_EPOCH']}_gen_step_")
        assert spec.key.split("/")[-1].startswith(f"seed{seed}-")
        assert spec.values["DATASET.NUM_SHOTS"] == shots and spec.values["SEED"] == seed
    assert seen == {(d, k, s) for d in COOP_DATASETS for k in COOP_EPOCHS for s in (1, 2, 3)}
    assert len({r.fingerprint for r in p.runs}) == 165


def test_croft_sweep_list_shows_165_runs(tmp_path, capsys):
    from croft.sweep import cli

    assert cli.main(["list", "croft_fewshot", "--output", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "165 run(s)" and len(lines) == 166
    assert sum(line.split()[1].startswith("CRoFT/sun397/shots16_ep_200_gen_step_1/seed") for line in lines[:-1]) == 3


def test_every_method_grid(tmp_path):
    for name, trainer in FEWSHOT_METHODS.items():
        p = plan([load_grid(f"{name}_fewshot")], str(tmp_path))
        assert len(p.runs) == 165, name
        assert {r.trainer for r in p.runs} == {trainer}
        weight_decay = 0.1 if trainer == "CRoFT" else 5e-4  # CoOp's recipe; CRoFT keeps the reference's
        assert {float(opts_of(r)["OPTIM.WEIGHT_DECAY"]) for r in p.runs} == {weight_decay}, name
        assert {r.values["MODEL.BACKBONE.NAME"] for r in p.runs} == {"RN50"}
    zs = plan([load_grid("zsclip_fewshot")], str(tmp_path))
    assert len(zs.runs) == 11 and {r.axes["dataset"] for r in zs.runs} == set(COOP_DATASETS)
    for name in ("croft", "coop", "cocoop", "zsclip"):
        p = plan([load_grid(f"{name}_base2new")], str(tmp_path))
        train = [r for r in p.runs if r.stage == "train"]
        new = [r for r in p.runs if r.stage == "new"]
        assert len(train) == 33 and len(new) == 33, name
        assert {r.values["MODEL.BACKBONE.NAME"] for r in p.runs} == {"ViT-B/16"}
        for spec in train:
            assert spec.values["DATASET.SUBSAMPLE_CLASSES"] == "base" and spec.values["DATASET.NUM_SHOTS"] == 16
        for spec in new:
            parent = p.by_key()[spec.parent_key]
            assert spec.values["DATASET.SUBSAMPLE_CLASSES"] == "new" and "--eval-only" in spec.flags
            assert ("--model-dir" in spec.flags) == (name != "zsclip")  # zero-shot CLIP trains nothing
            if name != "zsclip":  # the last epoch's model, which its training run evaluated (no model-best)
                load = spec.flags[spec.flags.index("--load-epoch") + 1]
                assert int(load) == parent.values["OPTIM.MAX_EPOCH"]
            # the model it evaluates, which the runner checks before it starts
            assert spec.training_fingerprint == parent.training_fingerprint
            assert spec.uses == []  # the base-to-new table reads it; the results table takes nothing from it
            differ = {k for k in spec.values if spec.values[k] != parent.values[k]}
            assert differ == {"DATASET.SUBSAMPLE_CLASSES"}
    coop = plan([load_grid("coop_base2new")], str(tmp_path))
    epochs = {r.axes["dataset"]: r.values["OPTIM.MAX_EPOCH"] for r in coop.runs}
    assert epochs["imagenet"] == 50 and {v for k, v in epochs.items() if k != "imagenet"} == {200}
    cocoop = opts_of(plan([load_grid("cocoop_base2new")], str(tmp_path)).runs[0])
    assert (cocoop["TRAINER.COCOOP.N_CTX"], cocoop["TRAINER.COCOOP.CTX_INIT"], cocoop["OPTIM.MAX_EPOCH"],
            cocoop["DATALOADER.TRAIN_X.BATCH_SIZE"]) == ("4", "a photo of a", "10", "1")


def test_set_and_only_on_the_dataset_axis(tmp_path):
    p = plan([load_grid("coop_fewshot")], str(tmp_path), sets=[("OPTIM.MAX_EPOCH", "1")],
             filters=["dataset=imagenet,dtd", "shots=2"])
    assert sorted({r.axes["dataset"] for r in p.runs}) == ["dtd", "imagenet"] and len(p.runs) == 6
    # --set wins over the grid's per-dataset value (ImageNet's 50), as over the zip's per-shot epochs
    assert {r.values["OPTIM.MAX_EPOCH"] for r in p.runs} == {1}
    assert all("_ep_1/" in r.key for r in p.runs)
    # other grids' folders under the same trainer are no "run with other settings" of this grid
    assert sorted(os.path.basename(f) for f in p.folders) == sorted(COOP_DATASETS)
    with pytest.raises(GridError, match=r"--only dataset=nope selects no run of coop_fewshot.*dataset: "):
        plan([load_grid("coop_fewshot")], str(tmp_path), filters=["dataset=nope"])


@pytest.mark.parametrize("change,message", [
    ({"per_dataset": {"nope": {"OPTIM.MAX_EPOCH": 5}}},
     r"per_dataset names 'nope', which is not one of dataset_config \['dtd', 'eurosat'\]"),
    ({"dataset_config": ["dtd", "dtd"]}, r"dataset_config lists dtd twice"),
    ({"dataset_config": []}, r"'dataset_config' must name a dataset config \(e.g. PACS\) or list several, got \[\]"),
    ({"axes": {"dataset": ["dtd"]}}, r"the dataset configs are listed under dataset_config, not as an axis"),
    ({"per_dataset": {"dtd": {"seed": 4}}}, r"per_dataset.dtd sets seed"),
    ({"stages": [{"name": "new", "overrides": {"DATASET.SUBSAMPLE_CLASSES": "new", "OPTIM.LR": 0.1}, "use": []}]},
     r"stage new overrides settings of training \(.*OPTIM.LR.*\); a stage may only change evaluation keys"),
    ({"fixed": {"DATASET.SUBSAMPLE_CLASSES": "base", "TRAINER.COOP.CSC": True},
      "stages": [{"name": "new", "overrides": {"DATASET.SUBSAMPLE_CLASSES": "new"}, "use": []}]},
     r"stage new changes DATASET.SUBSAMPLE_CLASSES .*but CoOp \(run dataset=dtd, .*\) learns state that depends on "
     r"the class list"),
])
def test_bad_grids_are_named(tmp_path, change, message):
    tree = {"trainer": "CoOp", "dataset_config": ["dtd", "eurosat"], "trainer_configs": ["rn50_ep30"],
            "axes": {"seed": [1]}}
    tree.update(change)
    with pytest.raises(GridError, match=message):
        plan([load_grid(write_grid(tmp_path / "g.yaml", tree))], str(tmp_path / "out"))


# ------------------------------------------------------------------ tables from hand-written results

def fake_run(root, folder, trainer, dataset, seed, shots, accuracy, trained=True, **values):
    """A run folder as croft writes it: results.json with the settings the tables group by, and metrics.jsonl for a
    run that trained."""
    recorded = {"SEED": seed, "DATASET.NAME": dataset, "DATASET.NUM_SHOTS": shots, "TRAINER.NAME": trainer,
                "MODEL.BACKBONE.NAME": "RN50", "OPTIM.MAX_EPOCH": 50, "DATASET.SUBSAMPLE_CLASSES": "all",
                "DATASET.PROMPT_TEMPLATE": f"a photo of a {{}} ({dataset})"}
    recorded.update(values)
    path = Path(root) / folder
    path.mkdir(parents=True)
    results = {"schema_version": 2, "setup": "custom", "trainer": trainer, "dataset": dataset, "seed": seed,
               "shots": shots, "target_domains": [], "best_epoch": 3 if trained else None,
               "fingerprint_values": recorded,
               "closed_set": {"val_accuracy": None, "test_accuracy": accuracy, "per_domain": {"test": accuracy}}}
    (path / "results.json").write_text(json.dumps(results))
    if trained:  # the per-epoch records a training run writes; an --eval-only run has none
        (path / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train": {"loss": 1.0}}) + "\n")


def test_fewshot_rows_labels_partial_averages_and_conflicts(tmp_path):
    root = tmp_path / "runs"
    # CRoFT at two settings of lambda2 (one row label each); gen_step changes with the shot count only
    for l2, base in ((5, 40.0), (10, 50.0)):
        for shots, gen_step in ((1, 10), (2, 1)):
            for seed in (1, 2):
                for dataset, offset in (("DTD", 0.0), ("EuroSAT", 10.0)):
                    fake_run(root, f"c{l2}/{dataset}/{shots}/{seed}", "CRoFT", dataset, seed, shots,
                             base + offset + shots + seed, **{"TRAINER.CRoFT.lambda2": l2,
                                                              "TRAINER.CRoFT.gen_step": gen_step})
    # CoOp at 1 shot on DTD only (partial row), and two runs of one cell and seed that differ in the epochs
    fake_run(root, "coop/a", "CoOp", "DTD", 1, 1, 30.0)
    fake_run(root, "coop/b", "CoOp", "DTD", 2, 1, 32.0)
    fake_run(root, "coop/c", "CoOp", "DTD", 2, 1, 90.0, **{"OPTIM.MAX_EPOCH": 100})
    # a second CLIP-Adapter setting at 2 shots only: its first setting keeps one label (one line) over 1 and 2 shots
    for folder, shots, ratio in (("a1", 1, 0.2), ("a2", 2, 0.2), ("b2", 2, 0.5)):
        fake_run(root, f"ca/{folder}", "CLIP_Adapter", "DTD", 1, shots, 60.0 + shots,
                 **{"TRAINER.CLIP_Adapter.RATIO": ratio})
    # zero-shot CLIP (trains nothing): 0 shots whatever NUM_SHOTS says; an eval-only CoOp run is left out
    fake_run(root, "zs/dtd", "ZeroshotCLIP", "DTD", 1, -1, 20.0, trained=False)
    fake_run(root, "zs/euro", "ZeroshotCLIP", "EuroSAT", 1, -1, 26.0, trained=False)
    fake_run(root, "coop/eval", "CoOp", "EuroSAT", 1, 1, 99.0, trained=False)
    # not part of the few-shot table: base-to-new and Setup-II runs
    fake_run(root, "b2n/base", "CoOp", "DTD", 1, 16, 70.0, **{"DATASET.SUBSAMPLE_CLASSES": "base"})
    (root / "broken").mkdir()
    (root / "broken" / "results.json").write_text("{not json")

    table = fewshot_table(str(root), zero_shot=["ZeroshotCLIP"], datasets=["EuroSAT"])
    assert table.columns == ["EuroSAT", "DTD"]
    rows = {(r["method"], r["shots"]): r for r in table.rows}
    assert list(rows)[0] == ("ZeroshotCLIP", 0)
    assert set(rows) == {("ZeroshotCLIP", 0), ("CoOp", 1), ("CRoFT [λ2=5]", 1), ("CRoFT [λ2=5]", 2),
                         ("CRoFT [λ2=10]", 1), ("CRoFT [λ2=10]", 2), ("CLIP_Adapter [RATIO=0.2]", 1),
                         ("CLIP_Adapter [RATIO=0.2]", 2), ("CLIP_Adapter [RATIO=0.5]", 2)}
    r = rows["CRoFT [λ2=10]", 2]
    assert r["cells"]["DTD"]["mean"] == pytest.approx(np.mean([53.0, 54.0]))
    assert r["cells"]["EuroSAT"]["std"] == pytest.approx(np.std([63.0, 64.0]))
    assert r["average"] == pytest.approx(np.mean([53.5, 63.5])) and not r["partial"]
    assert table.varying == {"CRoFT [λ2=5]": ["TRAINER.CRoFT.gen_step"], "CRoFT [λ2=10]": ["TRAINER.CRoFT.gen_step"]}
    coop = rows["CoOp", 1]
    assert coop["partial"] and list(coop["cells"]) == ["DTD"]
    assert coop["cells"]["DTD"]["seeds"] == [1] and coop["cells"]["DTD"]["mean"] == 30.0  # seed 2 is ambiguous
    assert rows["ZeroshotCLIP", 0]["average"] == pytest.approx(23.0)
    assert [p for p, _ in table.skipped] == [str(root / "broken" / "results.json")]
    text = "\n".join(table.warnings)
    assert "1 few-shot cell seed(s) have several runs" in text and "coop/b" in text and "coop/c" in text
    assert "1 evaluation-only run(s) of a model trained elsewhere" in text
    md = format_fewshot(table, "md")
    assert "| CoOp | 1 | — | 30.00 ± 0.00 | 30.00* |" in md
    assert "CRoFT [λ2=5]: rows of different shot counts also differ in TRAINER.CRoFT.gen_step" in md
    latex = format_fewshot(table, "latex")
    assert r"CRoFT [$\lambda$2=10] & 2 & 63.50 $\pm$ 0.50 & 53.50 $\pm$ 0.50 & 58.50 \\" in latex
    figure_series = table.series("Average")
    assert "CoOp" not in figure_series  # a partial average is not drawn
    assert figure_series["ZeroshotCLIP"] == [(0, pytest.approx(23.0))]


def test_base2new_pairs_each_base_run_with_its_new_evaluation(tmp_path):
    root = tmp_path / "runs"
    values = {"DATASET.NUM_SHOTS": 16}
    accuracies = {("DTD", 1): (80.0, 60.0), ("DTD", 2): (82.0, 50.0), ("EuroSAT", 1): (90.0, 70.0),
                  ("EuroSAT", 2): (94.0, 72.0)}
    for (dataset, seed), (base, new) in accuracies.items():
        fake_run(root, f"coop/{dataset}/{seed}", "CoOp", dataset, seed, 16, base,
                 **{**values, "DATASET.SUBSAMPLE_CLASSES": "base"})
        fake_run(root, f"coop/{dataset}/{seed}/new", "CoOp", dataset, seed, 16, new, trained=False,
                 **{**values, "DATASET.SUBSAMPLE_CLASSES": "new"})
    # a model trained on the new classes is no part of it; CoCoOp's new evaluation of seed 2 is missing
    fake_run(root, "coop/trained_new", "CoOp", "DTD", 1, 16, 99.0, **{**values, "DATASET.SUBSAMPLE_CLASSES": "new"})
    fake_run(root, "cocoop/1", "CoCoOp", "DTD", 1, 16, 70.0, **{**values, "DATASET.SUBSAMPLE_CLASSES": "base"})
    fake_run(root, "cocoop/1/new", "CoCoOp", "DTD", 1, 16, 65.0, trained=False,
             **{**values, "DATASET.SUBSAMPLE_CLASSES": "new"})
    fake_run(root, "cocoop/2", "CoCoOp", "DTD", 2, 16, 74.0, **{**values, "DATASET.SUBSAMPLE_CLASSES": "base"})

    table = base2new_table(str(root))
    rows = {r["method"]: r for r in table.rows}
    cell = rows["CoOp"]["cells"]["DTD"]
    assert cell["base"]["mean"] == 81.0 and cell["new"]["mean"] == 55.0
    assert cell["h"] == pytest.approx(2 * 81.0 * 55.0 / (81.0 + 55.0))
    avg = rows["CoOp"]["average"]
    assert (avg["base"], avg["new"]) == (pytest.approx(np.mean([81.0, 92.0])), pytest.approx(np.mean([55.0, 71.0])))
    assert avg["h"] == pytest.approx(harmonic_mean(86.5, 63.0))  # H of the averages, as CoCoOp reports
    cocoop = rows["CoCoOp"]["cells"]["DTD"]
    assert cocoop["base"]["seeds"] == [1, 2] and cocoop["new"]["seeds"] == [1]
    text = "\n".join(table.warnings)
    assert "1 run(s) trained on the new classes" in text and "lack the new-class evaluation" in text
    md = format_base2new(table, "md")
    assert "| Average | CoOp | 86.50 | 63.00 | 72.90 |" in md
    assert "| DTD | CoOp | 81.00 ± 1.00 | 55.00 ± 5.00 | 65.51 |" in md
    lines = list(csv.DictReader(io.StringIO(format_base2new(table, "csv"))))
    euro = [line for line in lines if line["method"] == "CoOp" and line["dataset"] == "EuroSAT"][0]
    assert float(euro["base mean"]) == 92.0 and float(euro["new std"]) == 1.0 and euro["new n"] == "2"


# ------------------------------------------------------------------ a reduced sweep, end to end

FAST = ["--set", "OPTIM.MAX_EPOCH", "1", "--set", "DATALOADER.NUM_WORKERS", "0", "--set", "TEST.PLOT", "False",
        "--set", "DATALOADER.TEST.BATCH_SIZE", "64"]
TWO = ["--only", "dataset=dtd,eurosat"]


def load_tool(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def suite(synthetic_root, tmp_path_factory):
    """CoOp and CLIP-Adapter on the few-shot grid, zero-shot CLIP, and CoOp on base-to-new, each reduced to DTD and
    EuroSAT, 1 epoch, tiny backbone: 8 + 4 + 2 runs and 4 trainings + 4 new-class evaluations."""
    from croft.engine import shared
    from croft.sweep import cli
    from croft.testing.fewshot_trees import write_eurosat

    data = tmp_path_factory.mktemp("fewshot_suite_data")
    shutil.copytree(os.path.join(synthetic_root, "dtd"), data / "dtd")  # the readers write split_fewshot/ there
    write_eurosat(str(data))
    out = tmp_path_factory.mktemp("fewshot_suite_out")
    common = ["--root", str(data), "--output", str(out), "--backbone", "tiny", "--pretrained", "none", "--no-table"]
    try:
        assert cli.main(["run", "coop_fewshot", *common, *FAST, *TWO, "--only", "shots=1,2", "--only", "seed=1,2"]) == 0
        assert cli.main(["run", "clip_adapter_fewshot", *common, *FAST, *TWO, "--only", "shots=1,2",
                         "--only", "seed=1"]) == 0
        assert cli.main(["run", "zsclip_fewshot", *common, *FAST, *TWO]) == 0
        assert cli.main(["run", "coop_base2new", *common, *FAST, *TWO, "--only", "seed=1,2"]) == 0
    finally:
        shared.disable_sharing()
    return out


def recorded_runs(out):
    """[(folder, results, stage.json or None)] of every run under ``out``, read with json (not croft's readers)."""
    found = []
    for folder, dirs, files in os.walk(out):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if "results.json" in files:
            with open(os.path.join(folder, "results.json")) as f:
                results = json.load(f)
            stage = None
            if "stage.json" in files:
                with open(os.path.join(folder, "stage.json")) as f:
                    stage = json.load(f)
            found.append((folder, results, stage))
    return found


def expected_fewshot(out):
    """{(trainer, dataset, shots): [test accuracy per seed]} of the few-shot runs; zero-shot CLIP at 0 shots."""
    cells = defaultdict(dict)
    for _, results, _ in recorded_runs(out):
        if results["fingerprint_values"]["DATASET.SUBSAMPLE_CLASSES"] != "all":
            continue
        shots = 0 if results["trainer"] == "ZeroshotCLIP" else results["shots"]
        cells[results["trainer"], results["dataset"], shots][results["seed"]] = \
            results["closed_set"]["test_accuracy"]
    return {k: [v[s] for s in sorted(v)] for k, v in cells.items()}


def test_fewshot_table_of_the_sweep_equals_the_runs_results(suite):
    expected = expected_fewshot(suite)
    assert len(expected) == 2 * (2 + 2 + 1)  # 2 datasets x (CoOp at 1, 2 shots; CLIP-Adapter at 1, 2; zero-shot)
    assert all(len(v) == 2 for (t, _, _), v in expected.items() if t == "CoOp")
    table = fewshot_table(str(suite), zero_shot=["ZeroshotCLIP"])
    assert table.columns == ["DescribableTextures", "EuroSAT"] and not table.skipped
    assert [(r["method"], r["shots"]) for r in table.rows] == [
        ("ZeroshotCLIP", 0), ("CLIP_Adapter", 1), ("CLIP_Adapter", 2), ("CoOp", 1), ("CoOp", 2)]
    for row in table.rows:
        for dataset in table.columns:
            values = expected[row["trainer"], dataset, row["shots"]]
            cell = row["cells"][dataset]
            assert cell["mean"] == pytest.approx(np.mean(values)) and cell["std"] == pytest.approx(np.std(values))
            assert cell["n"] == len(values)
        assert row["average"] == pytest.approx(np.mean([np.mean(expected[row["trainer"], d, row["shots"]])
                                                        for d in table.columns]))
    # the CLI prints the same numbers (csv: numbers only)
    tool = load_tool("collect_results")
    buffer = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "stdout", buffer)
        assert tool.main([str(suite), "--table", "fewshot", "--format", "csv"]) == 0
    lines = {(line["method"], int(line["shots"])): line for line in csv.DictReader(io.StringIO(buffer.getvalue()))}
    for (trainer, dataset, shots), values in expected.items():
        line = lines[trainer, shots]
        assert float(line[f"{dataset} mean"]) == pytest.approx(np.mean(values))
        assert int(line[f"{dataset} n"]) == len(values)


def test_fewshot_figure_plots_the_runs_means(suite, tmp_path):
    expected = expected_fewshot(suite)
    table = fewshot_table(str(suite), zero_shot=["ZeroshotCLIP"])
    fig = plot_fewshot(table)
    titles = {ax.get_title(): ax for ax in fig.axes}
    assert set(titles) == {"Average over datasets", "DescribableTextures", "EuroSAT"}
    names = {"ZeroshotCLIP": "ZeroshotCLIP", "CoOp": "CoOp", "CLIP_Adapter": "CLIP_Adapter"}
    for title, ax in titles.items():
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == set(names)
        for trainer, label in names.items():
            shots = [0] if trainer == "ZeroshotCLIP" else [1, 2]
            if title == "Average over datasets":
                want = [np.mean([np.mean(expected[trainer, d, k]) for d in ("DescribableTextures", "EuroSAT")])
                        for k in shots]
            else:
                want = [np.mean(expected[trainer, title, k]) for k in shots]
            assert list(lines[label].get_xdata()) == [shot_position(k) for k in shots]
            assert np.allclose(lines[label].get_ydata(), want)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1", "2"]
    # the tool writes the figure; an empty folder is one error line
    tool = load_tool("plot_fewshot")
    assert tool.main([str(suite), "--output", str(tmp_path / "fewshot.png")]) == 0
    assert (tmp_path / "fewshot.png").stat().st_size > 10000
    (tmp_path / "empty").mkdir()
    assert tool.main([str(tmp_path / "empty"), "--output", str(tmp_path / "x.png")]) == 1
    assert not (tmp_path / "x.png").exists()


def test_base2new_table_of_the_sweep(suite, capsys):
    base, new = defaultdict(list), defaultdict(list)
    for folder, results, stage in recorded_runs(suite):
        if results["trainer"] != "CoOp" or results["fingerprint_values"]["DATASET.SUBSAMPLE_CLASSES"] == "all":
            continue
        if stage and stage.get("stage_of"):  # the sweep's stage "new": the trained model on the other classes
            assert results["fingerprint_values"]["DATASET.SUBSAMPLE_CLASSES"] == "new"
            new[results["dataset"]].append(results["closed_set"]["test_accuracy"])
        else:
            assert results["fingerprint_values"]["DATASET.SUBSAMPLE_CLASSES"] == "base"
            base[results["dataset"]].append(results["closed_set"]["test_accuracy"])
    assert sorted(base) == sorted(new) == ["DescribableTextures", "EuroSAT"]
    assert all(len(v) == 2 for v in list(base.values()) + list(new.values()))
    table = base2new_table(str(suite))
    assert [r["method"] for r in table.rows] == ["CoOp"] and not table.warnings
    row = table.rows[0]
    for dataset in base:
        cell = row["cells"][dataset]
        b, n = np.mean(base[dataset]), np.mean(new[dataset])
        assert cell["base"]["mean"] == pytest.approx(b) and cell["new"]["mean"] == pytest.approx(n)
        assert cell["h"] == pytest.approx(2 * b * n / (b + n))
    b = np.mean([np.mean(v) for v in base.values()])
    n = np.mean([np.mean(v) for v in new.values()])
    assert row["average"]["h"] == pytest.approx(2 * b * n / (b + n)) and not row["partial"]
    # the results table shows the base runs and takes nothing from the stage (no warning about it)
    from croft.results.collect import collect

    rows = collect(str(suite))
    assert not [w for w in rows.warnings if "stage" in w]
    tool = load_tool("collect_results")
    with pytest.raises(SystemExit):
        tool.main([str(suite), "--table", "base2new", "--wide"])
    assert "--table base2new takes --format and --output only" in capsys.readouterr().err
