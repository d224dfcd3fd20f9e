"""One registration per method (croft/engine/registration.py): ``@register_method`` on the method class.

The decorator tests run on fresh registries (monkeypatched), so the made-up methods never reach the
trainer registry other tests read. The Dassl side (the same registration building the Dassl class,
also for a method registered after the bridge is installed) is in tests/test_dassl_bridge.py.
"""
import pickle
import re
import sys
import types
from pathlib import Path

import pytest

import croft.trainers
from croft.engine import registration
from croft.engine.trainer import TRAINER_REGISTRY, EngineCore, TrainerBase
from croft.utils.registry import Registry

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh(monkeypatch):
    """Empty method and trainer registries, and a module ``toy_methods`` to define methods in."""
    monkeypatch.setattr(registration, "TRAINER_REGISTRY", Registry("trainer"))
    monkeypatch.setattr(registration, "_REGISTRATIONS", {})
    monkeypatch.setattr(registration, "_LISTENERS", [])
    module = types.ModuleType("toy_methods")
    monkeypatch.setitem(sys.modules, "toy_methods", module)

    def define(source):
        exec("from croft.engine.registration import register_method\n" + source, module.__dict__)
        return module

    return define


def test_the_decorator_generates_registers_and_places_the_trainer_class(fresh):
    module = fresh('''
@register_method("Toy", dassl_name="CroftToy")
class ToyMethod:
    """a method"""
''')
    method, trainer = module.ToyMethod, module.Toy
    assert isinstance(method, type) and method.__doc__ == "a method"  # the decorator returns the method class
    assert trainer.__bases__ == (method, TrainerBase) and issubclass(trainer, EngineCore)
    assert (trainer.__name__, trainer.__qualname__, trainer.__module__) == ("Toy", "Toy", "toy_methods")
    assert registration.TRAINER_REGISTRY.get("Toy") is trainer and trainer.croft_name == "Toy"
    assert pickle.loads(pickle.dumps(trainer)) is trainer  # found where its module and name say
    (only,) = registration.registrations()
    assert (only.name, only.method, only.dassl_name, only.trainer) == ("Toy", method, "CroftToy", trainer)
    assert registration.method_classes() == {"Toy": method}
    module = fresh('@register_method("Plain")\nclass PlainMethod:\n    pass\n')
    assert registration.registrations()[-1].dassl_name == "Plain"  # Dassl's name defaults to croft's


@pytest.mark.parametrize("source, message", [
    ('@register_method("Toy")\nclass Toy:\n    pass\n', "decorates a method class named '<Trainer>Method'; got 'Toy'"),
    ('@register_method("Toy")\nclass Method:\n    pass\n', "named '<Trainer>Method'; got 'Method'"),
    ('@register_method("two words")\nclass ToyMethod:\n    pass\n', "name 'two words' of ToyMethod; expected a Python"),
    ('@register_method("Toy", dassl_name="Croft-Toy")\nclass ToyMethod:\n    pass\n', "dassl_name 'Croft-Toy'"),
    ('Toy = 3\n@register_method("Toy")\nclass ToyMethod:\n    pass\n',
     "module toy_methods already defines 'Toy', the name of ToyMethod's generated trainer class"),
    ('@register_method("Toy")\nclass ToyMethod:\n    pass\n@register_method("Toy")\nclass OtherMethod:\n    pass\n',
     "trainer name 'Toy' of toy_methods.OtherMethod is already toy_methods.ToyMethod's"),
    ('@register_method("A", dassl_name="Same")\nclass AMethod:\n    pass\n'
     '@register_method("B", dassl_name="Same")\nclass BMethod:\n    pass\n',
     "dassl_name 'Same' of BMethod is already used by trainer 'A'"),
])
def test_bad_registrations_are_refused_naming_the_class(fresh, source, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        fresh(source)
    assert [r.name for r in registration.registrations()] in ([], ["Toy"], ["A"])  # the refused one is not in


def test_listeners_see_earlier_and_later_registrations(fresh):
    fresh('@register_method("Early")\nclass EarlyMethod:\n    pass\n')
    seen = []
    registration.on_register(lambda r: seen.append((r.name, r.trainer.__name__)))
    assert seen == [("Early", "Early")]
    fresh('@register_method("Late", dassl_name="CroftLate")\nclass LateMethod:\n    pass\n')
    assert seen == [("Early", "Early"), ("Late", "Late")]


def test_every_method_module_of_croft_trainers_is_registered_without_an_import_list():
    """croft/trainers/__init__.py imports every module there: each ``@register_method`` in the folder is
    registered, its trainer class is ``Method + TrainerBase`` and lives in the method's module."""
    declared = {}
    for path in sorted((REPO / "croft" / "trainers").glob("*.py")):
        for name in re.findall(r'^@register_method\("(\w+)"', path.read_text(), flags=re.M):
            declared[name] = f"croft.trainers.{path.stem}"
    assert {"CRoFT", "CoOp", "CoCoOp", "DPLCLIP", "TIP_ADAPTER"} <= set(declared)
    assert set(croft.trainers.METHODS) == set(declared) == set(TRAINER_REGISTRY.names())
    for entry in registration.registrations():
        assert entry.trainer is TRAINER_REGISTRY.get(entry.name)
        assert entry.trainer.__bases__ == (entry.method, TrainerBase)
        assert entry.method.__module__ == declared[entry.name]
        module = sys.modules[entry.method.__module__]
        assert getattr(module, entry.trainer.__name__) is entry.trainer
        assert entry.trainer.__name__ + "Method" == entry.method.__name__
    # the class names written in these modules before the decorator existed are kept
    from croft.trainers.clip_adapter import CLIPAdapter
    from croft.trainers.tip_adapter import TipAdapter
    from croft.trainers.zsclip import ZeroshotCLIP

    assert (CLIPAdapter.croft_name, TipAdapter.croft_name, ZeroshotCLIP.croft_name) == (
        "CLIP_Adapter", "TIP_ADAPTER", "ZeroshotCLIP")
    dassl = {r.name: r.dassl_name for r in registration.registrations()}
    assert {k: dassl[k] for k in ("CoOp", "CoCoOp", "ZeroshotCLIP", "CRoFT")} == {
        "CoOp": "CroftCoOp", "CoCoOp": "CroftCoCoOp", "ZeroshotCLIP": "CroftZeroshotCLIP", "CRoFT": "CRoFT"}
