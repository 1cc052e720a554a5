"""One run per folder: an advisory lock on ``<run>/.lock`` held for the life of the process."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from syllabus.config.errors import ConfigError


class RunLock:
    """``with RunLock(folder):`` — a second process pointed at the same folder is refused at once.

    The lock is the kernel's (``flock``), so it disappears with the process, even after SIGKILL.
    """

    def __init__(self, folder: str | Path, enabled: bool = True):
        self.path = Path(folder) / ".lock"
        self.enabled = enabled
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        if not self.enabled:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(f"{self.path.parent}: another run (pid {holder}) is using this folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
