"""One run per folder: advisory locks held for the life of each process of a run.

Rank 0 (or a run without torchrun) holds ``<run>/.lock``; every other rank ``r`` holds ``<run>/.lock.rank<r>``.
A rank of an earlier run that still lives therefore refuses the same rank of a new run, not only its rank 0:
under FSDP2 every rank writes checkpoint shards, so a surviving old rank is a second writer too. Torchrun
stops every worker when one fails, so the refusal ends the whole new run. Ranks of a torchrun whose launcher
was SIGKILLed end themselves (``launch.watch_launcher``) and their locks go with them."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from syllabus.config.errors import ConfigError


class RunLock:
    """``with RunLock(folder):`` — a second process pointed at the same folder is refused at once.

    The lock is the kernel's (``flock``), so it disappears with the process, even after SIGKILL.
    """

    def __init__(self, folder: str | Path, enabled: bool = True, rank: int = 0):
        self.path = Path(folder) / (".lock" if rank == 0 else f".lock.rank{rank}")
        self.rank = rank
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
            who = "another run" if self.rank == 0 else f"rank {self.rank} of another run"
            raise ConfigError(f"{self.path.parent}: {who} (pid {holder}) is using this folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
