"""What torchrun tells this process through its environment, read without importing torch (the command
line uses it before any heavy import)."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """True outside torchrun and on its rank 0 (``RANK``): the process that prints and logs progress."""
    return int(os.environ.get("RANK", "0")) == 0


_watching = False  # one watcher per process


def watch_launcher(interval: float = 0.2) -> bool:
    """Under torchrun, end this worker at once (SIGKILL to itself) when its launcher dies; returns whether it
    watches.

    torch elastic starts each worker in a session of its own, so a ``kill -9`` of the ``torchrun`` process
    leaves the workers running: they would go on training and writing the run folder beside a run started
    again. A daemon thread compares ``os.getppid()`` with the launcher's pid every ``interval`` seconds; once
    the worker has been re-parented the launcher is gone and the worker kills itself (no handler runs, as for
    the launcher: the newest complete checkpoint is what a rerun resumes from; a half-written one is never
    renamed into place). Outside torchrun (no ``TORCHELASTIC_RUN_ID``) nothing is started."""
    import signal
    import threading
    import time

    global _watching
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        return False
    if _watching:
        return True
    _watching = True
    launcher = os.getppid()

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="syllabus-launcher-watch", daemon=True).start()
    return True
