"""croft.config.merge.get_value / put_value: the one reader and writer of dotted config keys."""
import pytest

from croft.config import get_cfg_default, get_value, put_value

MISSING = object()


def test_get_value_reads_leaves_and_groups_and_raises_without_default():
    cfg = get_cfg_default()
    assert get_value(cfg, "OPTIM.LR") == cfg.OPTIM.LR
    assert get_value(cfg, "OPTIM") is cfg.OPTIM
    with pytest.raises(KeyError):
        get_value(cfg, "OPTIM.NOPE")


@pytest.mark.parametrize("key", ["NOPE", "OPTIM.NOPE", "OPTIM.LR.BELOW_A_LEAF"])
def test_get_value_default_for_what_does_not_exist(key):
    assert get_value(get_cfg_default(), key, MISSING) is MISSING


def test_get_value_default_none_is_a_default():
    assert get_value({"A": {"B": 1}}, "A.C", None) is None


def test_put_value_sets_as_is_and_creates_missing_groups():
    tree = {"A": {"B": 1}}
    put_value(tree, "A.C.D", "1")
    put_value(tree, "A.B", [2])
    assert tree == {"A": {"B": [2], "C": {"D": "1"}}}
    cfg = get_cfg_default()
    put_value(cfg, "OPTIM.LR", "0.5")  # no decoding: the string stays a string
    assert cfg.OPTIM.LR == "0.5"
