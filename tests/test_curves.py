"""Training curves from metrics.jsonl: tolerant reading, the series drawn, and tools/plot_curves.py."""
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from croft.results.curves import (available_metrics, curve_series, curves_figure, load_runs, metric_value,
                                  plot_curves, read_metrics, run_labels)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def record(epoch, off=0.0, val=True):
    return {"epoch": epoch, "lr": 0.002 * 0.5 * (1 + math.cos(math.pi * epoch / 5)),
            "train": {"loss": 2.0 / epoch + off, "acc": 40.0 + 5 * epoch - off,
                      "loss_ce": 1.0 / epoch, "loss_edr": 0.1 * epoch},
            "val_accuracy": (50.0 + 2 * epoch + off) if val and epoch % 2 == 0 else None, "epoch_s": 1.5 + off}


def write_run(folder, records, tail=""):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.jsonl"), "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.write(tail)
    return folder


@pytest.fixture
def runs(tmp_path):
    a = write_run(str(tmp_path / "CRoFT" / "seed1"), [record(e) for e in range(1, 6)])
    b = write_run(str(tmp_path / "CRoFT" / "seed2"), [record(e, off=0.5) for e in range(1, 5)],
                  tail='{"epoch": 5, "lr": 0.0001, "train": {"lo')  # a run still writing epoch 5
    return a, b


def load_tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# reading

def test_truncated_last_line_is_skipped_with_a_warning(runs):
    _, b = runs
    warnings = []
    records = read_metrics(b, warnings)
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    path = os.path.join(b, "metrics.jsonl")
    assert warnings == [f"{path}:5: truncated last line ignored (a run still writing, or killed while writing)"]
    # the same file read by path, and a complete file without warnings
    assert read_metrics(path) == records
    warnings = []
    assert len(read_metrics(runs[0], warnings)) == 5 and warnings == []


def test_bad_lines_and_repeated_epochs(tmp_path):
    folder = str(tmp_path / "run")
    write_run(folder, [record(1), record(2)], tail="")
    path = os.path.join(folder, "metrics.jsonl")
    with open(path, "a", encoding="utf-8") as f:
        f.write("not json\n\n[1, 2]\n" + json.dumps({"lr": 0.1}) + "\n" + json.dumps(record(2, off=1.0)) + "\n"
                + json.dumps(dict(record(3), epoch=3.0)) + "\n")
    warnings = []
    records = read_metrics(folder, warnings)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[1]["train"]["loss"] == pytest.approx(2.0)  # the later record of epoch 2 (off=1.0)
    assert warnings == [f"{path}:3: not valid JSON; line ignored",
                        f"{path}:5: not a JSON object; line ignored",
                        f"{path}:6: no integer 'epoch'; line ignored",
                        f"{path}: epoch(s) 2 appear more than once; the later record is used"]


@pytest.mark.parametrize("content", ["", "\n\n", '{"epoch": 1, "lr"', "[]\n{}\n"])
def test_no_readable_record_is_an_error_naming_the_file(tmp_path, content):
    path = tmp_path / "metrics.jsonl"
    path.write_text(content)
    with pytest.raises(ValueError, match="no readable per-epoch record") as e:
        read_metrics(str(tmp_path))
    assert str(path) in str(e.value)


def test_missing_and_undecodable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="metrics.jsonl: no such file"):
        read_metrics(str(tmp_path))
    (tmp_path / "metrics.jsonl").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="cannot read") as e:
        read_metrics(str(tmp_path))
    assert str(tmp_path / "metrics.jsonl") in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_runs([str(tmp_path / "nothere")])
    os.makedirs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="has no metrics.jsonl"):
        load_runs([str(tmp_path / "empty")])


# ---------------------------------------------------------------------------------------------
# series

def test_curve_series_default_metrics(runs):
    warnings = []
    loaded = load_runs(runs, warnings)
    assert [label for label, _ in loaded] == ["seed1", "seed2"] and len(warnings) == 1
    series = curve_series(loaded)
    assert list(series) == ["loss", "acc", "lr", "val_accuracy"]
    assert series["loss"] == [("seed1", [1, 2, 3, 4, 5], [pytest.approx(2.0 / e) for e in range(1, 6)]),
                              ("seed2", [1, 2, 3, 4], [pytest.approx(2.0 / e + 0.5) for e in range(1, 5)])]
    assert series["acc"][1] == ("seed2", [1, 2, 3, 4], [40.0 + 5 * e - 0.5 for e in range(1, 5)])
    assert series["lr"][0][2] == pytest.approx([0.002 * 0.5 * (1 + math.cos(math.pi * e / 5)) for e in range(1, 6)])
    # val_accuracy is null on odd epochs: those points are left out
    assert series["val_accuracy"] == [("seed1", [2, 4], [54.0, 58.0]), ("seed2", [2, 4], [54.5, 58.5])]


def test_curve_series_all_explicit_and_missing(runs):
    loaded = load_runs(runs)
    assert available_metrics(loaded) == ["loss", "acc", "loss_ce", "loss_edr", "lr", "val_accuracy", "epoch_s"]
    assert list(curve_series(loaded, "all")) == available_metrics(loaded)
    series = curve_series(loaded, "loss_edr,train.acc,epoch_s,nothing")
    assert list(series) == ["loss_edr", "train.acc", "epoch_s", "nothing"]
    assert series["loss_edr"][0] == ("seed1", [1, 2, 3, 4, 5], [pytest.approx(0.1 * e) for e in range(1, 6)])
    assert series["train.acc"] == curve_series(loaded, ["acc"])["acc"]
    assert series["epoch_s"][1][2] == [2.0] * 4
    assert series["nothing"] == []  # named explicitly: kept, empty
    # without validation: the default panels leave val_accuracy out
    no_val = [("r", [record(e, val=False) for e in range(1, 4)])]
    assert list(curve_series(no_val)) == ["loss", "acc", "lr"]


def test_metric_value_and_labels():
    r = {"epoch": 1, "lr": 0.1, "loss": 9.0, "train": {"loss": 1.0, "acc": float("nan"), "x": "s", "b": True}}
    assert metric_value(r, "lr") == 0.1 and metric_value(r, "loss") == 9.0 and metric_value(r, "train.loss") == 1.0
    assert metric_value(r, "acc") is None and metric_value(r, "x") is None and metric_value(r, "b") is None
    assert metric_value(r, "epoch") is None and metric_value(r, "missing") is None
    assert available_metrics([("r", [r])]) == ["train.loss", "lr", "loss"]
    assert run_labels(["out/a/seed1", "out/a/seed2", "out/b/seed1"]) == ["a/seed1", "a/seed2", "b/seed1"]
    assert run_labels(["out/a/seed1"]) == ["out/a/seed1"]
    assert run_labels(["out/a", "out/a"]) == ["a (1)", "a (2)"]


def drawn_lines(ax):
    return [(line.get_label(), list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()]


def has_colour(png, colour):
    """Whether some pixel of ``png`` has matplotlib colour ``colour`` (e.g. ``"C0"``)."""
    from matplotlib.colors import to_rgb
    from matplotlib.image import imread

    pixels = imread(png)[..., :3]
    return bool((np.abs(pixels - np.array(to_rgb(colour))).max(axis=-1) < 1.5 / 255).any())


def test_curves_figure_draws_every_run_in_every_panel(runs):
    series = curve_series(load_runs(runs), "all")
    fig = curves_figure(series, title="CRoFT")
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in panels] == list(series) and len(fig.axes) == 9  # 7 panels on a 3 x 3 grid
    for ax, lines in zip(panels, series.values()):
        assert drawn_lines(ax) == [(label, epochs, values) for label, epochs, values in lines]
        assert [line.get_color() for line in ax.get_lines()] == ["C0", "C1"]  # a run keeps its colour
    assert fig.get_suptitle() == "CRoFT"
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["seed1", "seed2"]
    # a metric named explicitly without values: an empty panel that says so
    fig = curves_figure(curve_series(load_runs(runs), "val_accuracy,nothing"), labels=["seed2", "seed1"])
    val, nothing = fig.axes[:2]
    assert drawn_lines(val) == [("seed1", [2, 4], [54.0, 58.0]), ("seed2", [2, 4], [54.5, 58.5])]
    assert [line.get_color() for line in val.get_lines()] == ["C1", "C0"]  # labels fix the colours
    assert drawn_lines(nothing) == [] and [t.get_text() for t in nothing.texts] == ["no values"]
    with pytest.raises(ValueError, match="no metric"):
        curves_figure({})


def test_plot_curves_saves_the_figure(runs, tmp_path):
    series = curve_series(load_runs(runs), "all")
    out = plot_curves(series, str(tmp_path / "figs" / "curves.png"), title="CRoFT")
    assert out == str(tmp_path / "figs" / "curves.png")
    from matplotlib.image import imread

    assert imread(out).shape[:2] == (round(3 * 3.8 * 110), round(3 * 5.2 * 110))
    assert has_colour(out, "C0") and has_colour(out, "C1") and not has_colour(out, "C2")
    with pytest.raises(ValueError, match="no metric"):
        plot_curves({}, str(tmp_path / "x.png"))
    assert not os.path.exists(tmp_path / "x.png")


# ---------------------------------------------------------------------------------------------
# CLI

def test_plot_curves_cli_in_process(runs, tmp_path, capsys):
    tool = load_tool("plot_curves")
    out = str(tmp_path / "curves.png")
    assert tool.main([*runs, "--output", out, "--metrics", "loss,val_accuracy,nothing"]) == 0
    err = capsys.readouterr().err
    assert "truncated last line" in err and "warning: no values for metric nothing" in err and f"wrote {out}" in err
    assert has_colour(out, "C0") and has_colour(out, "C1")  # both runs drawn
    # unreadable metrics.jsonl: one error line naming the file, exit status 1, no figure
    bad = write_run(str(tmp_path / "bad"), [], tail="{\n")
    assert tool.main([runs[0], bad, "--output", str(tmp_path / "no.png")]) == 1
    err = capsys.readouterr().err
    assert f"error: {os.path.join(bad, 'metrics.jsonl')}: no readable per-epoch record" in err
    assert not os.path.exists(tmp_path / "no.png")
    # no values at all for the requested metrics
    assert tool.main([runs[0], "--output", str(tmp_path / "no.png"), "--metrics", "nothing"]) == 1
    assert "error: no values for nothing in any run (available: loss, acc" in capsys.readouterr().err


def test_plot_curves_cli_errors_subprocess(runs, tmp_path):
    empty = str(tmp_path / "eval_only_run")
    os.makedirs(empty)
    missing = str(tmp_path / "nothere")
    out = str(tmp_path / "y.png")
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tools", "plot_curves.py"), runs[0], missing, empty,
                           "--output", out], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"error: run folder {missing} does not exist",
                     f"error: run folder {empty} has no metrics.jsonl (it is written per epoch by training; "
                     "evaluation-only runs have none)"]
    assert "Traceback" not in proc.stderr and not os.path.exists(out)
