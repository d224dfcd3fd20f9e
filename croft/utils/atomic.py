"""Atomic file writes: a temporary file next to the target, fsync, then ``os.replace``.

Readers never see a partial file, and concurrent writers of the same path leave one complete
version (the last rename wins). The temporary file is ``.<name>.<host id>-<pid>.<8 hex>.tmp``: a
writer killed mid-write leaves it behind, and :func:`temp_file_writer` tells from its name which
machine and process wrote it (``croft.engine.run_folder.remove_stale_temp_files`` cleans them up).
"""
import hashlib
import os
import re
import socket
import uuid

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?:(?P<host>[0-9a-f]{6})-)?(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def host_id(hostname=None):
    """Six hex characters naming this machine (hostnames may hold dots, which the file name splits on)."""
    return hashlib.sha1((hostname or socket.gethostname()).encode()).hexdigest()[:6]


def temp_file_writer(name):
    """``(target name, host id or None, pid)`` of a temporary file name written by :func:`atomic_write`
    (host id None for the older ``.<name>.<pid>.<8 hex>.tmp`` form), or None for any other name."""
    match = _TEMP_RE.match(name)
    if match is None:
        return None
    return match.group("name"), match.group("host"), int(match.group("pid"))


def atomic_write(path, write_fn, binary=False):
    """Call ``write_fn(file)`` on a fresh temporary file next to ``path``, then rename it.

    The temporary file is created with ``O_EXCL`` and mode 0o666 (the umask applies, so the
    final file gets the same permissions as an ordinary ``open(path, "w")``). On any error the
    temporary file is removed and the existing ``path`` is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{host_id()}-{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def atomic_write_bytes(path, data):
    return atomic_write(path, lambda f: f.write(data), binary=True)


def atomic_write_text(path, text):
    return atomic_write(path, lambda f: f.write(text), binary=False)
