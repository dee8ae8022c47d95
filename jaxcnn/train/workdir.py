"""A training's workdir: a folder it can write, held by one training at a time.

`claim(workdir)` makes the folder if need be and takes an exclusive lock on
`<workdir>/.train.lock` (`fcntl.flock`): a second training on the same
workdir is refused, naming the process that holds it. The kernel drops the
lock with its process, however it ends (SIGKILL too), so a lock is never
stale; the file it leaves says nothing by itself. Commands that only read a
workdir (predict, show) take no lock and write nothing.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from jaxcnn.errors import WorkdirError

LOCK_FILE = ".train.lock"


def resolve(workdir: str | Path) -> Path:
    """`workdir` as an absolute path, `~` expanded and symlinks followed."""
    return Path(workdir).expanduser().resolve()


class Claim:
    """This process's hold on a workdir; `release()` (or the process's end) lets it go."""

    def __init__(self, path: Path, fd: int):
        self.path, self._fd = path, fd

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = -1


def claim(workdir: str | Path) -> Claim:
    """`workdir` made (if need be), checked writable and locked for this process's training.

    Raises:
      WorkdirError: if it is a file, cannot be made or written, or another
        training holds it (the message names its process).
    """
    path = resolve(workdir)
    if path.exists() and not path.is_dir():
        raise WorkdirError(f"`workdir` must be a folder, got the file {path}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise WorkdirError(f"`workdir` {path} cannot be written: {e.strerror or e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise WorkdirError(
            f"`workdir` {path} is in use by a training in process {holder}: wait for it to end, "
            "or use another --workdir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return Claim(path, fd)
