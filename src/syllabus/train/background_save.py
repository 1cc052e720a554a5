"""Asynchronous checkpoint saves (``async_save: true``): copy the state to host memory now, write it later.

Invariants kept, the same as for a synchronous save: the folder is written aside, its manifest last, and it is
renamed into place, so a process killed during a background write leaves the previous checkpoint the newest
valid one. At most one save is in flight: starting the next one first waits for it. A stop (SIGINT/SIGTERM),
the end of a stage, a rollback and every required save wait for the save in flight before going on. The
write runs on a non-daemon thread, so even an exception in the loop lets it finish before the process exits.
"""

from __future__ import annotations

import copy
import logging
import threading
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger("syllabus")


class BackgroundSave:
    """One checkpoint write at a time on a worker thread; ``wait`` joins it and re-raises what it raised."""

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._after: list[Callable[[Path], None]] = []
        self._lock = threading.Lock()
        self.step: int | None = None  # the step of the save in flight (or of the last one)

    @property
    def in_flight(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, step: int, write: Callable[[], Path | None]) -> None:
        """Wait for the save in flight (re-raising its error), then run ``write`` on a new worker thread."""
        self.wait()
        self.step = step

        def run() -> None:
            try:
                path = write()
                with self._lock:
                    after, self._after = self._after, []
                for follow_up in after:
                    if path is not None:
                        follow_up(path)
            except BaseException as err:  # kept for ``wait``: the loop decides what a failed save means
                self._error = err
            finally:
                with self._lock:
                    self._after = []

        self._thread = threading.Thread(target=run, name=f"syllabus-save-step-{step}", daemon=False)
        self._thread.start()

    def then(self, follow_up: Callable[[Path], None], path: Path) -> None:
        """Run ``follow_up(path)`` once the save in flight has been renamed into place (now, if none is)."""
        with self._lock:
            if self.in_flight:
                self._after.append(follow_up)
                return
        follow_up(path)

    def wait(self) -> None:
        """Block until no save is in flight; re-raise (once) the error the last one ended with."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err


def host_copy(value):
    """A copy of ``value`` that later training steps cannot change: tensors are copied to CPU memory, containers
    rebuilt, anything else deep-copied. Synchronous; its cost is the step stall of an asynchronous save."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: host_copy(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(host_copy(v) for v in value)
    return copy.deepcopy(value)
