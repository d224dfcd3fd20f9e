"""croft's trainers inside Dassl / CoOp: ``import croft.dassl_bridge`` or ``croft-dassl path/to/train.py ARGS``.

Imported only on request (nothing else in croft imports it). Importing it runs :func:`install`:

- **Config.** Dassl's default config (``dassl.config``) is extended with croft's keys by
  :func:`extend_cfg`: every key croft has and Dassl lacks is added at croft's default, nothing
  that exists is overwritten, and the four Dassl defaults that differ are converted
  (``MODEL.BACKBONE.PRETRAINED`` True -> ``"openai"``; ``TEST.FINAL_MODEL`` ``last_step`` ->
  ``best_val``; ``DATASET.VAL_PERCENT`` 0.1 -> 0.2; ``OPTIM.SGD_DAMPNING`` 0 -> 0.0). These are
  process-wide defaults, so Dassl's and CoOp's own trainers get them too (pass
  ``TEST.FINAL_MODEL last_step`` to keep their upstream selection). The extended config node also
  understands croft's YAML files (``_BASE_`` inheritance), accepts an int for a float key of croft
  (``TRAINER.CRoFT.lambda1 15`` -> 15.0, which plain yacs rejects), and takes either Dassl's bool or
  croft's string for ``MODEL.BACKBONE.PRETRAINED``: a bool stays a bool (Dassl's own backbones test
  it for truth, and the string ``"none"`` would be true), and croft's trainers read False as
  ``"none"`` and True as ``"openai"`` (:func:`croft_config`). When CoOp's ``extend_cfg`` replaces
  ``TRAINER.COOP`` / ``TRAINER.COCOOP`` with new nodes, croft's extra keys are merged into them
  (CoOp's values win); and Dassl's ``clean_cfg`` (``tools/train.py``) keeps croft's
  ``TRAINER.<group>`` nodes when the trainer is one of croft's.
- **Trainers.** croft's trainers are registered in Dassl's ``TRAINER_REGISTRY`` as
  ``Method + DasslAdapter + dassl.engine.TrainerX``, under names that do not clash with Dassl's
  or CoOp's: ``CRoFT``, ``CLIP_Adapter``, ``TIP_ADAPTER``, ``DPLCLIP``, ``BCAL``, ``VLAD`` as in
  croft, and
  ``CroftCoOp``, ``CroftCoCoOp``, ``CroftZeroshotCLIP``: each method's ``dassl_name`` in its one
  registration, :func:`~croft.engine.registration.register_method` (:func:`dassl_names`; also
  ``DASSL_NAMES``). The classes are built from that registration list when the bridge is installed,
  and share croft's engine functions with croft's own ``TrainerBase`` through one base,
  :class:`~croft.engine.trainer.EngineCore`.
- **Datasets.** croft's datasets are registered in Dassl's ``DATASET_REGISTRY`` only under names
  Dassl has none of (Dassl's own ``PACS`` and ``VLCS`` stay Dassl's; croft's trainers always read
  croft's datasets, whatever Dassl registers), and never under the names of CoOp's 11 few-shot
  datasets (``dassl_bridge_registers = False``): CoOp's train.py registers its own readers after
  the bridge is installed.
- **Logging.** Importing Dassl runs ``logging.disable(logging.WARNING)`` (its wilds module), which
  silences every logger of the process; :func:`install` re-enables logging.
- **Errors.** What croft-train reports in one ``error:`` line is one line here too
  (:mod:`croft.dassl_bridge.errors`):
  croft's own errors, an unknown config key or wrong type, and a trainer name Dassl's registry lacks.
  ``croft-dassl`` exits with 2 (config) or 1; under the import line, :func:`install`'s
  ``sys.excepthook`` prints the line (Python's exit status 1). Other errors keep their traceback.
  ``croft-dassl --help`` and ``croft-dassl flatten`` (``_BASE_``-free copies of croft's YAMLs,
  :mod:`croft.config.flat_copy`) need no Dassl: the launcher installs the bridge only to run a script.

:class:`DasslAdapter` makes Dassl's ``TrainerX`` keep croft's engine contract
(``croft.engine.trainer.ENGINE_CONTRACT``): Dassl's own loop (``build_trainer(cfg).train()``)
drives the epochs, and the adapter's hooks give croft's numbers and files: a croft dataset and
croft's feature loaders (Dassl's loaders yield image dicts; croft's methods read frozen features),
``set_epoch`` and one LR step per epoch, ``retain_graph`` in ``model_backward_and_update``,
selection on the val loader only (strict improvement, best-epoch record), croft's checkpoints
(``last.pth.tar``, fingerprints, the original CRoFT code's files), ``load_model`` without a
``val_result``, and ``test()`` running croft's evaluator and results writer (``results.json``,
``scores.npz``, ``detector.json`` exactly as ``croft-train`` writes them).

Modules: :mod:`~croft.dassl_bridge.config` (the extended config, croft's tree read from it),
:mod:`~croft.dassl_bridge.adapter`, :mod:`~croft.dassl_bridge.install` (registries),
:mod:`~croft.dassl_bridge.errors` (one-line errors), :mod:`~croft.dassl_bridge.launcher` (``croft-dassl``).
"""
from .adapter import DasslAdapter, dassl_trainer_class
from .config import (CONVERTED_DEFAULTS, PRETRAINED_KEY, ConfigKeyError, CroftDasslConfig, CroftTrainerNode,
                     croft_config, extend_cfg)
from .install import DASSL_IMPORT_DEPS, DasslNotFound, _dassl_on_path, install
from .names import dassl_names
from .launcher import FLATTEN, USAGE, main, run_by_launcher

__all__ = ["CONVERTED_DEFAULTS", "PRETRAINED_KEY", "ConfigKeyError", "CroftDasslConfig", "CroftTrainerNode",
           "DASSL_IMPORT_DEPS", "DasslAdapter", "DasslNotFound", "FLATTEN", "USAGE", "croft_config",
           "dassl_names", "dassl_trainer_class", "extend_cfg", "install", "main"]


def __getattr__(name):
    if name == "DASSL_NAMES":  # croft trainer name -> Dassl name, from the registrations (dassl_names())
        return dassl_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_dassl_on_path()
if not run_by_launcher(__name__):
    install()
