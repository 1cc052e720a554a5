"""``BackgroundSave``: one write in flight at most, errors surface on the next wait, follow-ups run after the
write; ``host_copy`` is not changed by later in-place updates."""

import threading
import time

import pytest
import torch

from syllabus.train.background_save import BackgroundSave, host_copy


def test_at_most_one_save_in_flight_and_follow_ups_run_after_the_write(tmp_path):
    saves, events = BackgroundSave(), []
    release = threading.Event()

    def slow_write():
        release.wait(5)
        events.append("write 1")
        return tmp_path / "step_1"

    saves.start(1, slow_write)
    assert saves.in_flight
    saves.then(lambda path: events.append(f"alias {path.name}"), tmp_path / "step_1")
    threading.Timer(0.2, release.set).start()
    started = time.monotonic()
    saves.start(2, lambda: events.append("write 2") or tmp_path / "step_2")  # waits for the first
    assert time.monotonic() - started >= 0.15
    saves.wait()
    assert events == ["write 1", "alias step_1", "write 2"]


def test_an_error_of_the_background_write_is_raised_once_by_the_next_wait(tmp_path):
    saves = BackgroundSave()

    def failing():
        raise OSError(28, "No space left on device")

    saves.start(3, failing)
    with pytest.raises(OSError, match="No space"):
        saves.wait()
    saves.wait()  # reported once


def test_host_copy_is_not_changed_by_later_in_place_updates():
    weights = {"w": torch.ones(3), "nested": [torch.zeros(2), {"step": 4}]}
    copied = host_copy(weights)
    weights["w"].add_(1)
    weights["nested"][0].add_(1)
    weights["nested"][1]["step"] = 5
    assert copied["w"].tolist() == [1, 1, 1] and copied["nested"][0].tolist() == [0, 0]
    assert copied["nested"][1]["step"] == 4
