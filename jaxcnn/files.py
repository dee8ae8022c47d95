"""Files written whole: a reader sees the old content or the new, never part of it."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, content: bytes, *, sync: bool = True) -> None:
    """`content` to `path` through a temporary file beside it and a rename; with `sync`, the
    file reaches the disk first (what a crash must not lose, rather than what can be made again).

    Raises:
      OSError: if it cannot be written; `path` is then as it was, and no temporary file is left.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as f:
            f.write(content)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
