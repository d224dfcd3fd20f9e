"""Restoring a run's trainer for prediction: its models built for the run's class names (without the
dataset), the checkpoint the run evaluated, and the run's score context."""
import os

from ..utils.layout import BEST_NAME, DETECTOR_KNN_BANK_FILE, EPOCH_PREFIX, epoch_file_name
from .run_dir import PredictError


class UnavailableItems:
    """The run's item list (e.g. its training images) of known length, whose items are not available.

    A trainer may ask how many training images the run had (Tip-Adapter-F's cache size check);
    reading an item raises an error naming the list.
    """

    def __init__(self, count, what):
        self.count, self.what = int(count), what

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        raise RuntimeError(f"the run's {self.what} images are not available when predicting")

    def __iter__(self):
        raise RuntimeError(f"the run's {self.what} images are not available when predicting")


class ClassNamesDataset:
    """What building a trainer's models needs of a dataset, without its images: the class names
    (in label order), the size of the training list, the domain names. No item is available."""

    setup = "custom"
    #: No image is available: a trainer built on it builds its models only, no loaders.
    has_items = False

    def __init__(self, classnames, num_train=0, source_domains=(), target_domains=()):
        self.classnames = list(classnames)
        self.num_classes = len(self.classnames)
        self.train_x = UnavailableItems(num_train, "training")
        self.train_full = self.train_x
        self.val, self.test = [], []
        self.test_sets, self.ood, self.class_subsets = {}, {}, {}
        self.source_domains, self.target_domains = list(source_domains), list(target_domains)


def build_trainer_for_inference(cfg, dataset, device):
    """The trainer ``cfg.TRAINER.NAME`` with its models built for ``dataset`` (usually a
    :class:`ClassNamesDataset`) on ``device``: no dataset read, no data manager, no loaders."""
    from ..engine.trainer import TRAINER_REGISTRY

    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg, dataset=dataset, device=device)


def _default_device(cfg):
    import torch

    return "cuda" if cfg.USE_CUDA and torch.cuda.is_available() else "cpu"


def _classes_of_run(info, cfg):
    """A :class:`ClassNamesDataset` of the run: from detector.json, else from the run's dataset
    (a run written before detector.json existed) when it is still at ``DATASET.ROOT``."""
    detector = info.detector
    if detector is not None and detector.get("classnames"):
        return ClassNamesDataset(detector["classnames"], detector.get("n_train", 0),
                                 detector.get("source_domains", ()), detector.get("target_domains", ()))
    from ..data.datasets import build_dataset

    try:
        dataset = build_dataset(cfg)
    except Exception as exc:  # noqa: BLE001 -- any failure to read the dataset means the same here
        raise PredictError("class names unknown (no detector.json)", info.run_dir,
                           f"detector.json (written at the end of a run), or the run's dataset "
                           f"{info.results.get('dataset')} at DATASET.ROOT {cfg.DATASET.ROOT!r} "
                           f"({type(exc).__name__}: {exc})") from None
    return ClassNamesDataset(dataset.classnames, len(dataset.train_x), dataset.source_domains,
                             dataset.target_domains)


def _load_checkpoints(trainer, run_dir, best_epoch, load_epoch=None):
    """Load the checkpoint the run evaluated: ``model-best`` of every model, else ``model.pth.tar-<best_epoch>``;
    ``model.pth.tar-<load_epoch>`` when ``load_epoch`` is given."""
    names = trainer.get_model_names()
    if not names:
        return None
    if load_epoch is not None:
        epoch_file = epoch_file_name(load_epoch)
        missing = [n for n in names if not os.path.isfile(os.path.join(run_dir, n, epoch_file))]
        if missing:
            raise PredictError("checkpoint not found", os.path.join(run_dir, missing[0], epoch_file),
                               f"{epoch_file} (load_epoch {load_epoch}) for each model of trainer "
                               f"{trainer.cfg.TRAINER.NAME}: {', '.join(names)}")
        trainer.load_model(run_dir, epoch=load_epoch)
        return epoch_file
    if all(os.path.isfile(os.path.join(run_dir, n, BEST_NAME)) for n in names):
        trainer.load_model(run_dir)
        return BEST_NAME
    epoch_file = epoch_file_name(best_epoch)
    if best_epoch is not None and all(os.path.isfile(os.path.join(run_dir, n, epoch_file)) for n in names):
        trainer.load_model(run_dir, epoch=best_epoch)
        return epoch_file
    missing = [n for n in names if not os.path.isfile(os.path.join(run_dir, n, BEST_NAME))]
    alternative = epoch_file if best_epoch is not None else f"{EPOCH_PREFIX}<E> with --load-epoch E"
    raise PredictError("checkpoint not found", os.path.join(run_dir, missing[0]),
                       f"{BEST_NAME} (or {alternative}) for each model of trainer {trainer.cfg.TRAINER.NAME}: "
                       f"{', '.join(names)}")


def _check_backbone(trainer, detector, run_dir):
    """A backbone rebuilt from a random initialisation must be the run's (same state-dict hash)."""
    weights = ((detector or {}).get("backbone") or {}).get("weights") or {}
    if weights.get("kind") != "random-init" or not weights.get("state_dict_sha256"):
        return
    from ..clip.weights import state_dict_digest

    if state_dict_digest(trainer.clip_model) != weights["state_dict_sha256"]:
        raise PredictError("the rebuilt random-init backbone differs from the run's", run_dir,
                           "the backbone of the run (state-dict hash in detector.json); a random initialisation "
                           "is rebuilt from SEED and needs the same open_clip and torch versions")


def _build_trainer_on_dataset(cfg, info, device):
    """The trainer on the run's dataset (a folder without detector.json: its class names and ID val
    images come from there), built as croft-train builds it."""
    from ..data.datasets import build_dataset
    from ..data.verify import verify_images
    from ..engine.trainer import TRAINER_REGISTRY

    try:
        dataset = build_dataset(cfg)
        verify_images(dataset, cfg.DATASET.NAME)
    except Exception as exc:  # noqa: BLE001 -- any failure to read the dataset means the same here
        raise PredictError("class names and detector thresholds unknown (no detector.json)", info.run_dir,
                           f"the run's dataset {cfg.DATASET.NAME} at DATASET.ROOT {cfg.DATASET.ROOT!r} (--root), "
                           "to read its class names and compute the thresholds on its ID val images, or the "
                           "detector files of an --eval-only run of these checkpoints in the folder "
                           f"({type(exc).__name__}: {exc})") from None
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg, dataset=dataset, device=device)


def _compute_thresholds(trainer, info):
    """Detector thresholds computed in memory as the run's evaluation computes them; None (logged) when the
    dataset has no ID val or test image."""
    from ..utils.logging import get_logger
    from ..evaluation.detector import compute_detector, describe_thresholds

    data = compute_detector(trainer)
    if data is not None:
        get_logger().info(f"{describe_thresholds(data.detector)} (computed now, not stored in {info.run_dir})")
    return data


def run_score_context(run_dir, detector, cfg):
    """The score context the run's evaluation scored with (``score_context.npz``); for a run written before
    croft saved it, the KNN bank and ``k`` of its detector files, as predict read them then. Without either,
    a context without a KNN bank (``knn`` cannot be predicted)."""
    import numpy as np
    import torch

    from ..evaluation.score_context import ScoreContext, load_score_context

    try:
        context = load_score_context(run_dir)
    except ValueError as exc:
        raise PredictError("unreadable score context", run_dir,
                           f"the score_context.npz a finished run writes ({exc})") from None
    if context is not None:
        return context
    context = ScoreContext(knn_k=cfg.TEST.KNN_K, mcm_temperature=cfg.TEST.MCM_TEMPERATURE)
    knn = (detector or {}).get("knn")
    bank_path = os.path.join(run_dir, (knn or {}).get("bank", DETECTOR_KNN_BANK_FILE))
    if knn and os.path.isfile(bank_path):
        context.knn_bank = torch.from_numpy(np.load(bank_path, allow_pickle=False)).float()
        context.knn_k = int(knn["k"])
    return context
