"""What a run may do with the folders it is given, decided before any work.

- ``OUTPUT_DIR`` holding an earlier run (checkpoints or results.json) is resumed or re-evaluated
  only when that run's fingerprint equals this run's; otherwise the run stops and names every
  differing key. ``--restart`` moves the earlier run's files into ``OUTPUT_DIR/.old/<time>/``
  (never deletes them) and starts over.
- ``--resume DIR`` and ``--eval-only --model-dir DIR`` must name folders that exist; their
  checkpoints' training-side fingerprint must equal this run's.
Nothing here writes into a folder before its checks have passed.

One run at a time per folder: :func:`claim_run_folder` takes an exclusive ``flock`` lock on
``OUTPUT_DIR/.run.lock`` for as long as the run works in the folder. The operating system drops
the lock when its process ends, however it ends (kill -9 included), so a lock is never left
behind by a dead run; the file itself only says who holds it (host, pid, start time), and is
deleted when the run lets go. A second run (a second ``croft-sweep``, a SLURM job, a plain
``croft-train``) that finds the folder claimed stops with :class:`RunFolderBusy`;
:func:`run_folder_holder` tells who holds a folder without taking it.
"""
import errno
import json
import os
import shutil
import socket
import time

from ..utils.atomic import atomic_write_text, host_id, temp_file_writer

try:
    import fcntl
except ImportError:  # not a POSIX system: folders cannot be claimed
    fcntl = None
from ..utils.layout import (BEST_NAME, CONFIG_FILE, FINGERPRINT_FILE, LOCK_FILE, LOG_FILE, OLD_DIR, RUN_FILES,
                              STAGE_FILE, TIP_ADAPTER_CACHE_DIR, has_run, model_folders)
from .checkpoint import load_checkpoint
from .fingerprint import describe, differences


class RunFolderError(RuntimeError):
    """A folder that this run may not use as asked (the message says why and the ways out)."""


def read_fingerprint(directory):
    """``(fingerprint, source)`` of the run in ``directory``, or ``(None, None)`` when none is recorded."""
    path = os.path.join(directory, FINGERPRINT_FILE)
    if os.path.isfile(path):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f), path
        except (OSError, ValueError) as exc:
            raise RunFolderError(f"{path} is unreadable ({exc}); expected the JSON fingerprint croft writes. "
                                 "Move the folder aside or use another --output-dir") from None
    for sub in model_folders(directory):
        best = os.path.join(sub, BEST_NAME)
        if os.path.isfile(best):
            state = load_checkpoint(best)
            if state.get("fingerprint"):
                return state["fingerprint"], best
    return None, None


def write_fingerprint(directory, fingerprint):
    atomic_write_text(os.path.join(directory, FINGERPRINT_FILE), json.dumps(fingerprint, indent=2, default=str) + "\n")


def check_writable_folder(directory, what="OUTPUT_DIR"):
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise RunFolderError(f"{what} {directory} is a file; expected a folder (or a path that does not exist yet)")
    probe = directory
    while not os.path.exists(probe):
        parent = os.path.dirname(os.path.abspath(probe))
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise RunFolderError(f"{what} {directory}: {probe} is a file; expected a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise RunFolderError(f"{what} {directory} is not writable ({probe}); expected a folder you can write to")


def restart(directory):
    """Move an earlier run's files into ``directory/.old/<time>/``; return that folder (or None)."""
    if not has_run(directory):
        return None
    target = os.path.join(directory, OLD_DIR, time.strftime("%Y-%m-%d-%H-%M-%S"))
    suffix = 1
    while os.path.exists(target):
        target = f"{target.rstrip('0123456789-')}-{suffix}"
        suffix += 1
    os.makedirs(target)
    moved = [p for p in (os.path.join(directory, n) for n in RUN_FILES + (TIP_ADAPTER_CACHE_DIR,)) if os.path.exists(p)]
    moved += model_folders(directory)
    for path in moved:
        shutil.move(path, os.path.join(target, os.path.basename(path)))
    return target


def _mismatch(directory, source, diffs, what):
    return RunFolderError(
        f"{what} {directory} holds a run with other settings ({source}): {describe(diffs)}; use another "
        "--output-dir, or --restart to move the earlier run's files aside and start over")


def check_output_dir(directory, fingerprint):
    """Refuse to resume or overwrite an earlier run in ``directory`` whose settings differ."""
    check_writable_folder(directory)
    if not has_run(directory):
        return
    stored, source = read_fingerprint(directory)
    if stored is None:
        raise RunFolderError(
            f"OUTPUT_DIR {directory} holds checkpoints or results without a fingerprint (written by an older croft), "
            "so croft cannot check that they match these settings; use another --output-dir, or --restart to move "
            "them aside")
    diffs = differences(stored, fingerprint)
    if diffs:
        raise _mismatch(directory, source, diffs, "OUTPUT_DIR")


#: Training keys that ``--eval-only`` may change when the trainer's learnt state does not depend on the
#: class list (its classmethod ``evaluates_unseen_classes(cfg)`` is true): CoCoOp's base-to-new protocol
#: evaluates a model trained on the base classes on the new ones (docs/protocols.md §8.3).
CLASS_LIST_KEYS = ("DATASET.SUBSAMPLE_CLASSES",)


def check_source_dir(directory, fingerprint, what, logger=None, may_differ=()):
    """``--resume DIR`` / ``--model-dir DIR``: exists; training-side settings equal (when recorded), except
    the keys of ``may_differ``."""
    if not os.path.isdir(directory):
        raise RunFolderError(f"{what} {directory} does not exist or is not a folder; expected the output folder "
                             "of a croft run")
    stored, source = read_fingerprint(directory)
    if stored is None:
        if logger is not None:
            logger.warning(f"warning: {what} {directory} records no fingerprint (an older croft or another code "
                           "base); its settings cannot be checked against this run's")
        return
    diffs = differences(stored, fingerprint, training_only=True)
    allowed = [d for d in diffs if d[0] in may_differ]
    diffs = [d for d in diffs if d[0] not in may_differ]
    if diffs:
        hint = ("; a trainer whose learnt state depends on the class list cannot be evaluated on other classes"
                if any(d[0] in CLASS_LIST_KEYS for d in diffs) else "")
        raise RunFolderError(
            f"{what} {directory} was trained with other settings ({source}): {describe(diffs)}; pass the settings "
            f"it was trained with (see {os.path.join(directory, CONFIG_FILE)}), or train anew{hint}")
    if allowed and logger is not None:
        logger.info(f"{what} {directory}: evaluated with {describe(allowed)} (the trainer's learnt state does not "
                    "depend on the class list)")


# ---------------------------------------------------------------------------------------------
# one run per folder

#: Errors of ``flock`` that mean "held by another process".
_BUSY = (errno.EACCES, errno.EAGAIN, errno.EWOULDBLOCK)
#: How long a claim retries a lock that looks held: :func:`run_folder_holder` holds a shared lock
#: for a moment while it looks.
_BUSY_RETRY_S = 0.25
#: A temporary file of another machine (or one whose writer cannot be told) is stale only when it
#: was not written for this long before the claim.
STALE_TEMP_S = 60.0

#: Folders claimed by this process (realpath -> _Claim). An ``flock`` lock belongs to its open file: reading the
#: lock file elsewhere, even in this process, leaves it alone (where the file system emulates ``flock`` with
#: POSIX locks, as NFS does, closing any descriptor of the file in this process would drop it: the lock file is
#: only opened here).
_held = {}
_warned_unlocked = set()


class RunFolderBusy(RunFolderError):
    """The folder is claimed by another live run (``holder``: what its lock file says)."""

    def __init__(self, directory, holder):
        self.directory = directory
        self.holder = holder or {}
        super().__init__(f"{directory} is in use by another croft run ({describe_holder(self.holder)}); wait "
                         "for it to end, or use another --output-dir")


def describe_holder(holder):
    """``pid 123 on host gpu07 since 2024-05-01 10:00:00`` from a lock file's record (parts it lacks left out)."""
    holder = holder if isinstance(holder, dict) else {}
    parts = []
    if holder.get("pid") is not None:
        parts.append(f"pid {holder['pid']}")
    if holder.get("host"):
        parts.append(f"on host {holder['host']}")
    if holder.get("since"):
        parts.append(f"since {holder['since']}")
    return " ".join(parts) or "holder unknown"


class _Claim:
    """A claim of this process on a folder (re-entrant: the sweep's runner claims, then croft-train inside it)."""

    def __init__(self, directory, fd, record):
        self.directory = directory
        self.fd = fd  # None: the file system offers no locks, the folder is used unclaimed
        self.record = record
        self.since = time.time()
        self.count = 1

    @property
    def locked(self):
        return self.fd is not None

    def release(self):
        self.count -= 1
        if self.count > 0:
            return
        _held.pop(os.path.realpath(self.directory), None)
        if self.fd is None:
            return
        try:
            os.unlink(os.path.join(self.directory, LOCK_FILE))  # while still locked: see _lock
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
        return False


def _read_record(fd):
    try:
        record = json.loads(os.pread(fd, 65536, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _lock(directory):
    """``(fd, record)`` of a new exclusive lock on ``directory/.run.lock``; fd None without lock support."""
    path = os.path.join(directory, LOCK_FILE)
    record = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    if fcntl is None:
        return None, record
    deadline = time.monotonic() + _BUSY_RETRY_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_record(fd) if exc.errno in _BUSY else None
            os.close(fd)
            if exc.errno not in _BUSY:
                return None, record  # e.g. ENOLCK: a network file system without lock support
            if time.monotonic() >= deadline:
                raise RunFolderBusy(directory, holder) from None
            time.sleep(0.02)
            continue
        # The holder before us deletes the file while it still holds the lock; if it did so after we opened
        # it, we locked a deleted file: open the path again.
        try:
            current = os.stat(path)
            same = (current.st_ino, current.st_dev) == (os.fstat(fd).st_ino, os.fstat(fd).st_dev)
        except OSError:
            same = False
        if not same:
            os.close(fd)
            continue
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        return fd, record


def claim_run_folder(directory):
    """Claim ``directory`` (created if needed) for this process: a context manager, re-entrant within the
    process. :class:`RunFolderBusy` when another live process holds it."""
    key = os.path.realpath(directory)
    claim = _held.get(key)
    if claim is not None:
        claim.count += 1
        return claim
    os.makedirs(directory, exist_ok=True)
    fd, record = _lock(directory)
    claim = _held[key] = _Claim(directory, fd, record)
    if fd is None and key not in _warned_unlocked:
        _warned_unlocked.add(key)
        from ..utils.logging import get_logger

        get_logger().warning(f"warning: {directory}: the file system offers no file locks, so nothing stops another "
                             "run from using this folder at the same time")
    return claim


def run_folder_holder(directory):
    """What the lock file of a folder claimed by a live process says (``{"host", "pid", "since"}``, ``{}``
    when unreadable), or None when no process holds it. Takes nothing: a shared lock for a moment."""
    claim = _held.get(os.path.realpath(directory))
    if claim is not None:
        return dict(claim.record)
    path = os.path.join(directory, LOCK_FILE)
    if fcntl is None or not os.path.exists(path):
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            return _read_record(fd) if exc.errno in _BUSY else None
        return None
    finally:
        os.close(fd)  # releases the shared lock


def _process_gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # EPERM: it exists, under another user
        return False
    return False


def _own_folders(directory):
    """The folder and its sub-folders that belong to its run (model folders, caches), not nested run
    folders (a sweep's evaluation stages, which have their own claim) nor dot-folders (``.old``)."""
    folders = [directory]
    for entry in sorted(os.listdir(directory)):
        sub = os.path.join(directory, entry)
        if entry.startswith(".") or not os.path.isdir(sub):
            continue
        if any(os.path.exists(os.path.join(sub, n)) for n in (LOG_FILE, STAGE_FILE, FINGERPRINT_FILE, LOCK_FILE)):
            continue
        folders.append(sub)
    return folders


def remove_stale_temp_files(directory):
    """Delete the temporary files that interrupted atomic writes left in a run folder that this process has
    claimed; returns their paths. Stale: written before the claim, and by a process of this machine that is
    gone, or (another machine's, or a writer that cannot be told) not written for :data:`STALE_TEMP_S`
    before the claim."""
    claim = _held.get(os.path.realpath(directory))
    since = claim.since if claim is not None else time.time()
    removed = []
    me = host_id()
    for folder in _own_folders(directory):
        for name in os.listdir(folder):
            writer = temp_file_writer(name)
            if writer is None:
                continue
            path = os.path.join(folder, name)
            try:
                mtime = os.stat(path).st_mtime
            except OSError:
                continue
            _, host, pid = writer
            gone = host == me and pid != os.getpid() and _process_gone(pid)
            if mtime < since and (gone or mtime < since - STALE_TEMP_S):
                try:
                    os.remove(path)
                    removed.append(path)
                except OSError:
                    pass
    return removed
