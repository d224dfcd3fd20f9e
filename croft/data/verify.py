"""Check, before any work, that every image a run lists can be opened (its header read)."""
import os

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

PROGRESS_FROM = 2000
# Images already checked in this process: path -> (size, mtime); a sweep checks each image once.
_VERIFIED = {}


def listed_images(dataset):
    """``[(impath, set name)]`` of every image the run may read, each path once."""
    sets = [("train_x", dataset.train_x), ("the training split", dataset.train_full), ("val", dataset.val),
            ("test", dataset.test)]
    sets += [(f"test set '{name}'", items) for name, items in dataset.test_sets.items()]
    sets += [(f"open-set set '{name}'", items) for name, items in dataset.ood.items()]
    seen = {}
    for name, items in sets:
        for item in items:
            seen.setdefault(item.impath, name)
    return list(seen.items())


def verify_images(dataset, dataset_name):
    """Raise ValueError naming the first image whose header cannot be read, and where it was listed."""
    images = listed_images(dataset)
    bar = tqdm(images, desc="check images", leave=False, dynamic_ncols=True, disable=len(images) < PROGRESS_FROM)
    for path, where in bar:
        try:
            st = os.stat(path)
            if _VERIFIED.get(path) == (st.st_size, st.st_mtime_ns):
                continue
            with Image.open(path) as img:
                img.size  # noqa: B018  (the header is read on open)
            _VERIFIED[path] = (st.st_size, st.st_mtime_ns)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            source = getattr(dataset, "split_source", None)
            listed = f"{where} of {dataset_name}" + (f", from {source}" if source else "")
            raise ValueError(f"unreadable image {path} ({exc.__class__.__name__}: {str(exc)[:120]}); listed in "
                             f"{listed}; expected an image file that PIL can open") from None
