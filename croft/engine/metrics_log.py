"""Per-epoch training records: ``OUTPUT_DIR/metrics.jsonl`` and, optionally, TensorBoard scalars.

One JSON object per line and epoch: ``{"epoch", "lr", "train": {meter: epoch mean}, "val_accuracy",
"epoch_s"}`` (``docs/results-schema.md``). A resumed run first drops the records of epochs it will
train again, so the file never holds an epoch twice. With ``TRAIN.TENSORBOARD True`` the same
scalars go to ``OUTPUT_DIR/tensorboard/`` (``train/<meter>``, ``train/lr``, ``val/accuracy``), as Dassl does.
"""
import json
import os

from ..utils.layout import METRICS_FILE, TENSORBOARD_DIR
from ..utils.atomic import atomic_write_text


class MetricsLog:
    def __init__(self, output_dir, tensorboard=False, start_epoch=0):
        self.path = os.path.join(output_dir, METRICS_FILE)
        self._keep_until(start_epoch)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise RuntimeError("TRAIN.TENSORBOARD True needs the 'tensorboard' package "
                                   f"(pip install tensorboard): {exc}") from None
            self.writer = SummaryWriter(log_dir=os.path.join(output_dir, TENSORBOARD_DIR), purge_step=start_epoch + 1)

    def _keep_until(self, epoch):
        if not os.path.isfile(self.path):
            return
        kept = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash
                if isinstance(record, dict) and isinstance(record.get("epoch"), int) and record["epoch"] <= epoch:
                    kept.append(json.dumps(record))
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def append(self, record):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            step = record["epoch"]
            for name, value in record["train"].items():
                self.writer.add_scalar(f"train/{name}", value, step)
            self.writer.add_scalar("train/lr", record["lr"], step)
            if record.get("val_accuracy") is not None:
                self.writer.add_scalar("val/accuracy", record["val_accuracy"], step)
            self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
