"""This rank's batches read ahead on one background thread: :class:`Prefetch`.

The step loop asks for whole steps: ``next_step(step, shapes)`` returns the micro-batches of ``step``, one per
``(micro_batch_size, seq_len)`` in ``shapes``. Meanwhile a thread reads the steps after it, with the shapes
``schedule(step)`` says they will be asked for (the curriculum is a pure function of the step; None past the
end), into a queue of ``depth`` steps (one more waits on the thread). Reading, tokenizing (raw sources) and pinning then overlap the
forward and backward of the step before, instead of stalling the device between steps.

Invariant (exact resume): everything but ``next_step`` sees the batches as if nothing had been read ahead.
``state_dict()`` is the position after the last step handed out (each queued step carries a copy of the
position after it, taken on the thread), and every other method (``load_state_dict``, ``set_weights``,
``mix_report``, ``skipped``, any other attribute) first stops the thread, drops what it read ahead and puts the
batches back at that position. A step asked for with other shapes than the schedule gave (or past its end) is
read there and then, after the same rewind. An error met by the thread (e.g. an unreadable file) is raised by the
``next_step`` that would have returned that step, with the batches put back where that step began.

Only the thread touches the wrapped batches while it runs; DataLoader workers it starts (raw sources with
``num_workers``) are stopped by it before it ends, since they are tied to it (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import copy
import queue
import threading
from dataclasses import dataclass
from typing import Callable

import torch

Shapes = list[tuple[int, int]]


@dataclass
class _Step:
    step: int
    shapes: Shapes | None  # None: the schedule ended (nothing past it was read)
    batches: list | None = None
    state: dict | None = None  # the position after this step
    error: BaseException | None = None


class Prefetch:
    """``batches`` (anything with ``next_batch(micro_batch_size, seq_len)``; read-ahead also needs
    ``state_dict``/``load_state_dict``, else every step is read when asked) read ahead by one thread.

    ``schedule(step)`` -> the ``[(micro_batch_size, seq_len), ...]`` of that step's micro-batches, or None past
    the last step. ``depth``: steps queued ahead (0: none, every step is read when asked). ``pin_memory``:
    batches are copied to page-locked memory on the thread (CUDA)."""

    def __init__(self, batches, schedule: Callable[[int], Shapes | None], *, depth: int = 2,
                 pin_memory: bool = False):
        self.batches, self.schedule, self.depth, self.pin_memory = batches, schedule, depth, pin_memory
        self._thread: threading.Thread | None = None
        self._queue: queue.Queue | None = None
        self._stop = threading.Event()
        self._consumed: dict | None = None  # the position after the last step handed out while the thread ran
        self._read_ahead = False  # the thread has started reading past that position
        self._can_read_ahead = hasattr(batches, "state_dict") and hasattr(batches, "load_state_dict")

    # --- the step loop's call ---------------------------------------------------------------------------
    def next_step(self, step: int, shapes: Shapes) -> list[dict[str, torch.Tensor]]:
        """The micro-batches of ``step``, one per ``(micro_batch_size, seq_len)`` of ``shapes`` (dicts of
        tensors as ``batches.next_batch`` makes them, pinned with ``pin_memory``). Blocks only when the thread
        has not read that step yet (always for the first step)."""
        shapes = [tuple(s) for s in shapes]
        if self._thread is not None:
            item = self._queue.get()
            if item.step == step and item.shapes == shapes:
                if item.error is not None:
                    self.pause()
                    raise item.error
                self._consumed = item.state
                return item.batches
            self.pause()  # asked for something else than the schedule said: read it here
        batches = [self._read(b, t) for b, t in shapes]
        if self._can_read_ahead and self.depth > 0 and self.schedule(step) == shapes:
            self._start(step + 1)
        return batches

    # --- the wrapped batches, as if nothing had been read ahead ----------------------------------------
    def state_dict(self) -> dict:
        """The position after the last step handed out (not to be modified)."""
        return self._consumed if self._thread is not None else self.batches.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.pause(rewind=False)
        self.batches.load_state_dict(state)

    def set_weights(self, weights: dict[str, float]) -> None:
        self.pause()
        self.batches.set_weights(weights)

    def mix_report(self) -> dict:
        self.pause()
        return self.batches.mix_report()

    def skipped(self) -> dict:
        self.pause()
        return self.batches.skipped()

    def close(self) -> None:
        self.pause(rewind=False)
        getattr(self.batches, "close", lambda: None)()

    def __getattr__(self, name: str):
        if name.startswith("_") or name in ("batches", "schedule", "depth", "pin_memory"):
            raise AttributeError(name)
        self.pause()
        return getattr(self.batches, name)

    def pause(self, rewind: bool = True) -> None:
        """Stop the thread and drop what it read ahead; with ``rewind``, put the batches back at the position
        after the last step handed out. Reading ahead starts again at the next ``next_step``."""
        if self._thread is None:
            return
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(timeout=0.01)
        self._drain()
        self._thread = self._queue = None
        if rewind and self._read_ahead:
            self.batches.load_state_dict(self._consumed)

    # --- the thread -------------------------------------------------------------------------------------
    def _start(self, step: int) -> None:
        self._consumed = copy.deepcopy(self.batches.state_dict())
        self._read_ahead = False
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self.depth)
        self._thread = threading.Thread(target=self._run, args=(step, self._queue, self._stop),
                                        name="syllabus-prefetch", daemon=True)
        self._thread.start()

    def _run(self, step: int, out: queue.Queue, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                shapes = self.schedule(step)
                if shapes is None:
                    self._put(out, _Step(step, None), stop)
                    return
                shapes = [tuple(s) for s in shapes]
                self._read_ahead = True
                try:
                    item = _Step(step, shapes, [self._read(b, t) for b, t in shapes],
                                 copy.deepcopy(self.batches.state_dict()))
                except BaseException as err:  # handed to the step that needed it
                    self._put(out, _Step(step, shapes, error=err), stop)
                    return
                self._put(out, item, stop)
                step += 1
        finally:
            getattr(self.batches, "close", lambda: None)()  # workers started here die with this thread

    @staticmethod
    def _put(out: queue.Queue, item: _Step, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def _drain(self) -> None:
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _read(self, micro_batch_size: int, seq_len: int) -> dict[str, torch.Tensor]:
        batch = self.batches.next_batch(micro_batch_size, seq_len)
        return {k: v.pin_memory() for k, v in batch.items()} if self.pin_memory else batch
