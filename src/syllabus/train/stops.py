"""SIGINT / SIGTERM become a request to stop after the current step (checkpoint, exit 0)."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger("syllabus")


class StopRequest:
    """Set by a signal; the loop reads it between steps. A second signal restores the default handler."""

    def __init__(self):
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __bool__(self) -> bool:
        return self.signal_name is not None

    @property
    def installed(self) -> bool:
        return bool(self._previous)

    def install(self) -> "StopRequest":
        if not self._previous and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __enter__(self) -> "StopRequest":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()

    def uninstall(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.signal_name is not None:  # asked twice: stop now
            previous = self._previous.get(signum)
            self.uninstall()
            if callable(previous):  # e.g. Python's default SIGINT handler: KeyboardInterrupt, raised here and now
                previous(signum, frame)  # (a re-raised signal would wait until a blocking call such as a write ends)
            signal.raise_signal(signum)  # SIG_DFL: the default action (SIGTERM ends the process at once)
            return
        self.signal_name = name
        log.warning("%s received: finishing this step, saving a checkpoint, then stopping", name)


class RunHalted(RuntimeError):
    """The run stopped itself for a reason it can state in one line (the CLI prints it and exits 1).

    Raised only where the run folder is left resumable: the newest valid checkpoint is intact."""
