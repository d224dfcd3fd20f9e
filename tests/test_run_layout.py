"""The run-folder layout (``croft.utils.layout``): checkpoint discovery on hand-made folders, the callers
that use it (sweep state, ``--restart``, croft-predict's checks), and the rule that the library spells
the run folder's file names only there."""
import ast
import os
from pathlib import Path

import pytest

from croft.utils import layout
from croft.utils.layout import (BEST_NAME, CHECKPOINT_MARKER, LAST_NAME, RESULTS_FILE, RUN_FILES, UnreadableRecord,
                                  checkpoint_files, epoch_file_name, has_checkpoints, has_run, model_folders,
                                  read_json_object, read_results)

REPO = Path(__file__).resolve().parents[1]


def touch(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture()
def run(tmp_path):
    """best/ (model-best), epochs/ (model.pth.tar-3 and -10), marker/ (the ``checkpoint`` file only), notes/ (no
    checkpoint), .old/aside/ (hidden: an earlier run's files) and a plain file."""
    run = tmp_path / "run"
    touch(run / "best" / BEST_NAME)
    touch(run / "epochs" / epoch_file_name(3))
    touch(run / "epochs" / epoch_file_name(10))
    touch(run / "marker" / CHECKPOINT_MARKER, epoch_file_name(3) + "\n")
    touch(run / "notes" / "model.txt")
    touch(run / ".old" / "aside" / BEST_NAME)
    touch(run / "a-file")
    return run


def test_model_folders_and_checkpoint_files(run):
    assert model_folders(run) == [str(run / "best"), str(run / "epochs"), str(run / "marker")]
    assert model_folders(run, epoch=3) == [str(run / "best"), str(run / "epochs")]
    assert model_folders(run, epoch=1) == [str(run / "best")]  # model.pth.tar-1 is not model.pth.tar-10
    assert checkpoint_files(run) == [(f"best/{BEST_NAME}", str(run / "best" / BEST_NAME)),
                                     ("epochs/model.pth.tar-10", str(run / "epochs" / "model.pth.tar-10")),
                                     ("epochs/model.pth.tar-3", str(run / "epochs" / "model.pth.tar-3"))]
    touch(run / LAST_NAME)
    assert checkpoint_files(run)[-1] == (LAST_NAME, str(run / LAST_NAME))
    assert model_folders(run / "no-such-folder") == [] and model_folders(run / "a-file") == []


def test_has_checkpoints_and_has_run(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not has_checkpoints(empty) and not has_run(empty) and not has_run(tmp_path / "missing")
    touch(empty / ".old" / "x" / BEST_NAME)
    assert not has_checkpoints(empty)  # what --restart moved aside is not the folder's run
    touch(empty / LAST_NAME)
    assert has_checkpoints(empty) and has_run(empty)
    finished = tmp_path / "finished"
    touch(finished / RESULTS_FILE, "{}")
    assert has_run(finished) and not has_checkpoints(finished)
    only_epochs = tmp_path / "epochs"
    touch(only_epochs / "prompt_learner" / epoch_file_name(5))
    assert has_checkpoints(only_epochs)


def test_the_callers_use_the_layout(run, tmp_path):
    """The sweep's state, --restart and croft-predict's checks find the same checkpoints."""
    from croft.engine.run_folder import restart
    from croft.predict import PredictError, check_run_dir
    from croft.sweep.state import has_checkpoints as sweep_has_checkpoints

    assert sweep_has_checkpoints(run) and not sweep_has_checkpoints(tmp_path / "missing")
    for name in RUN_FILES:
        touch(run / name, "{}")
    moved = Path(restart(str(run)))
    assert moved.parent == run / layout.OLD_DIR
    assert sorted(p.name for p in moved.iterdir()) == sorted(list(RUN_FILES) + ["best", "epochs", "marker"])
    assert sorted(p.name for p in run.iterdir()) == [".old", "a-file", "notes"]

    folder = tmp_path / "checkpoints-only"
    touch(folder / "adapter" / epoch_file_name(2))
    with pytest.raises(PredictError, match="no config.yaml.*--config-file"):  # checkpoints found: the hint
        check_run_dir(folder)
    touch(folder / layout.CONFIG_FILE)
    touch(folder / RESULTS_FILE, '{"schema_version": 2, "best_epoch": 3, "trainer": "CLIP_Adapter"}')
    with pytest.raises(PredictError, match=r"^no checkpoint, .*model-best.pth.tar \(or model.pth.tar-3\)"):
        check_run_dir(folder)
    touch(folder / "adapter" / epoch_file_name(3))
    assert check_run_dir(folder).results["best_epoch"] == 3


def test_reading_records(tmp_path):
    assert read_results(tmp_path) is None
    touch(tmp_path / RESULTS_FILE, '{"trainer": "CRoFT"}')
    assert read_results(tmp_path) == {"trainer": "CRoFT"}
    for text, why in (("[1, 2]", "not a JSON object"), ('{"a": ', "unreadable"), (b"\xff\xfe{}", "unreadable")):
        path = tmp_path / RESULTS_FILE
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(UnreadableRecord) as info:
            read_results(tmp_path)
        assert str(info.value).startswith(f"{path}: {why}")
    with pytest.raises(FileNotFoundError):
        read_json_object(tmp_path / "missing.json")


# ------------------------------------------------------------------------------------------ one module

#: Names too common to look for (``checkpoint`` is also a word in messages and parameters).
NOT_SCANNED = {layout.CHECKPOINT_MARKER}
#: Library files allowed to spell a run-folder name themselves: ``{path: reason}`` (none: the layout module
#: is in croft/utils, below every layer that names a file, the logger and the ImageNet reader included).
LATER = {}


def spelled_names(root=REPO):
    """``{library file: sorted run-folder names written as string constants}`` outside croft/utils/layout.py."""
    names = {v for k, v in vars(layout).items() if k.isupper() and isinstance(v, str)} - NOT_SCANNED
    found = {}
    for path in sorted((root / "croft").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ("croft/utils/layout.py",) or rel.startswith("croft/testing/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        hits = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in names}
        if hits:
            found[rel] = sorted(hits)
    return found


def test_run_folder_names_are_spelled_in_one_module():
    found = spelled_names()
    assert "croft/utils/layout.py" not in found and len({v for k, v in vars(layout).items() if k.endswith("_FILE")}) > 10
    new = {path: hits for path, hits in found.items() if path not in LATER}
    assert not new, f"import these names from croft.utils.layout instead: {new}"
    stale = sorted(path for path in LATER if path not in found and (REPO / path).exists())
    assert not stale, f"remove from LATER in tests/test_run_layout.py (the file no longer spells them): {stale}"


def test_the_scan_finds_a_spelled_name(tmp_path):
    """The rule itself: a module that writes ``"results.json"`` is found; the layout module and messages are not."""
    touch(tmp_path / "croft" / "utils" / "layout.py", 'RESULTS_FILE = "results.json"\n')
    touch(tmp_path / "croft" / "sweep" / "x.py", 'import os\nPATH = os.path.join("out", "results.json")\n'
                                                 'MESSAGE = "no results.json yet"\n')
    assert spelled_names(tmp_path) == {"croft/sweep/x.py": [RESULTS_FILE]}
