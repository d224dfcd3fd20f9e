"""Atomic file writes: a temporary file next to the target, fsync, then ``os.replace``.

Readers never see a partial file, and concurrent writers of the same path leave one complete
version (the last rename wins).
"""
import os
import uuid


def atomic_write(path, write_fn, binary=False):
    """Call ``write_fn(file)`` on a fresh temporary file next to ``path``, then rename it.

    The temporary file is created with ``O_EXCL`` and mode 0o666 (the umask applies, so the
    final file gets the same permissions as an ordinary ``open(path, "w")``). On any error the
    temporary file is removed and the existing ``path`` is left as it was.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
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
