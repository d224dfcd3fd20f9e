import subprocess
import sys

import pytest

from croft.config import ConfigError, get_cfg_default, merge_from_file, merge_from_list, setup_cfg
from croft.train import build_parser


def parse(*argv):
    return build_parser().parse_args(list(argv))


def test_help_shows_coop_flags():
    out = subprocess.run([sys.executable, "-m", "croft.train", "--help"], capture_output=True, text=True, check=True).stdout
    for flag in ["--root", "--output-dir", "--resume", "--seed", "--source-domains", "--target-domains",
                 "--transforms", "--config-file", "--dataset-config-file", "--trainer", "--backbone", "--head",
                 "--eval-only", "--model-dir", "--load-epoch", "--no-train"]:
        assert flag in out


def test_unknown_key_is_named():
    cfg = get_cfg_default()
    with pytest.raises(ConfigError, match="unknown config key 'TRAINER.CRoFT.lambda3'"):
        merge_from_list(cfg, ["TRAINER.CRoFT.lambda3", "1"])
    with pytest.raises(ConfigError, match="'DATASETS' does not exist"):
        merge_from_list(cfg, ["DATASETS.NAME", "PACS"])


def test_wrong_type_names_key_and_expected_type():
    cfg = get_cfg_default()
    with pytest.raises(ConfigError, match=r"wrong type for 'DATASET.NUM_SHOTS'.*expected int"):
        merge_from_list(cfg, ["DATASET.NUM_SHOTS", "many"])
    with pytest.raises(ConfigError, match=r"wrong type for 'TRAINER.CRoFT.WCCF'.*expected bool"):
        merge_from_list(cfg, ["TRAINER.CRoFT.WCCF", "1"])


def test_lambdas_accept_ints_and_floats():
    cfg = get_cfg_default()
    merge_from_list(cfg, ["TRAINER.CRoFT.lambda1", "0.5", "TRAINER.CRoFT.lambda2", "10"])
    assert cfg.TRAINER.CRoFT.lambda1 == 0.5
    assert cfg.TRAINER.CRoFT.lambda2 == 10.0 and isinstance(cfg.TRAINER.CRoFT.lambda2, float)


def test_odd_number_of_overrides():
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        merge_from_list(get_cfg_default(), ["DATASET.NUM_SHOTS"])


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("DATASET:\n  NUMSHOTS: 4\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: unknown config key 'DATASET.NUMSHOTS'"):
        merge_from_file(get_cfg_default(), str(bad))
    with pytest.raises(ConfigError, match="config file not found"):
        merge_from_file(get_cfg_default(), str(tmp_path / "missing.yaml"))


def test_merge_order_defaults_dataset_trainer_flags_overrides(tmp_path):
    dataset_yaml = tmp_path / "d.yaml"
    dataset_yaml.write_text("DATASET:\n  NAME: PACS\n  NUM_SHOTS: 2\nOPTIM:\n  LR: 0.5\n")
    trainer_yaml = tmp_path / "t.yaml"
    trainer_yaml.write_text("OPTIM:\n  LR: 0.002\nMODEL:\n  BACKBONE:\n    NAME: RN50\n")
    cfg = setup_cfg(parse("--dataset-config-file", str(dataset_yaml), "--config-file", str(trainer_yaml),
                          "--backbone", "tiny", "--seed", "0", "--trainer", "CRoFT", "DATASET.NUM_SHOTS", "8"))
    assert cfg.OPTIM.LR == 0.002  # trainer YAML after dataset YAML
    assert cfg.MODEL.BACKBONE.NAME == "tiny"  # flag after YAML
    assert cfg.DATASET.NUM_SHOTS == 8  # override last
    assert cfg.SEED == 0 and cfg.TRAINER.NAME == "CRoFT"
    assert cfg.is_frozen()


def test_invalid_choice_is_named():
    with pytest.raises(ConfigError, match="TEST.OOD_PROTOCOL"):
        setup_cfg(parse("TEST.OOD_PROTOCOL", "strict"))


def test_reference_yaml_values():
    cfg = get_cfg_default()
    assert cfg.OPTIM.WEIGHT_DECAY == 5e-4
    merge_from_file(cfg, "configs/trainers/CRoFT/rn50_ep30.yaml")
    assert cfg.OPTIM.WEIGHT_DECAY == 0.1 and cfg.OPTIM.LR == 0.002 and cfg.OPTIM.MAX_EPOCH == 30
    assert cfg.INPUT.INTERPOLATION == "bicubic" and tuple(cfg.INPUT.SIZE) == (224, 224)
    assert cfg.OPTIM.WARMUP_CONS_LR == 1e-5 and cfg.MODEL.BACKBONE.NAME == "RN50"
