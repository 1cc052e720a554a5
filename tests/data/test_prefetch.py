"""Batches read ahead on a thread (``Prefetch``) are the batches read when asked, and everything but the step
loop's call sees them as if nothing had been read ahead: the saved position is that of the steps handed out."""

from __future__ import annotations

import copy
import threading
import time

import pytest
import torch

from syllabus.data import open_batches
from syllabus.data.prefetch import Prefetch
from syllabus.data.tokenizer import load_tokenizer

SHAPES = [(2, 32), (2, 32)]


@pytest.fixture(scope="module")
def second(code_corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("second") / "docs.jsonl"
    path.write_text((code_corpus / "val.jsonl").read_text())
    return path


def two_sources(corpus, tokenizer, second, **kwargs):
    tok = load_tokenizer(str(tokenizer))
    return open_batches({"a": str(corpus / "train.jsonl"), "b": str(second)}, {"a": 0.5, "b": 0.5},
                        tok, seed=3, **kwargs)


def plain_step(batches, shapes=SHAPES):
    return [batches.next_batch(b, t) for b, t in shapes]


def same(xs, ys) -> bool:
    return len(xs) == len(ys) and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
                                      for x, y in zip(xs, ys))


class Recording:
    """The wrapped batches, noting which thread reads."""

    def __init__(self, batches, fail_at: int | None = None):
        self.inner, self.threads, self.calls, self.fail_at = batches, [], 0, fail_at

    def next_batch(self, b, t):
        self.threads.append(threading.current_thread().name)
        self.calls += 1
        if self.calls == self.fail_at:
            raise OSError("unreadable (injected)")
        return self.inner.next_batch(b, t)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def wait_full(pre: Prefetch) -> None:
    deadline = time.time() + 60
    while not pre._queue.full():
        assert time.time() < deadline
        time.sleep(0.01)


def test_read_ahead_on_a_thread_gives_the_same_steps_and_saves_the_position_handed_out(code_corpus, code_tokenizer, second):
    plain = two_sources(code_corpus, code_tokenizer, second)
    inner = Recording(two_sources(code_corpus, code_tokenizer, second))
    pre = Prefetch(inner, lambda step: SHAPES if step < 20 else None, depth=2)
    for step in range(3):
        assert same(pre.next_step(step, SHAPES), plain_step(plain))
    wait_full(pre)  # steps 3 and 4 are read ahead (5 waits to be queued)
    deadline = time.time() + 60
    while inner.calls < 2 * (3 + 2 + 1) and time.time() < deadline:  # steps 0-2, two queued, one waiting to be
        time.sleep(0.01)
    time.sleep(0.2)
    assert inner.calls == 2 * (3 + 2 + 1)  # ... and no more: the read-ahead is bounded
    assert inner.threads[:2] == ["MainThread"] * 2 and set(inner.threads[2:]) == {"syllabus-prefetch"}
    saved = copy.deepcopy(pre.state_dict())
    assert saved == plain.state_dict()  # the position after step 2, not after what was read ahead
    resumed = two_sources(code_corpus, code_tokenizer, second)
    resumed.load_state_dict(saved)
    expected = plain_step(plain)
    assert same(plain_step(resumed), expected) and same(pre.next_step(3, SHAPES), expected)

    # a mixture change lands exactly after the steps handed out; what was read ahead is dropped
    wait_full(pre)
    for b in (plain, pre):
        b.set_weights({"a": 0.1, "b": 0.9})
    for step in range(4, 7):
        assert same(pre.next_step(step, SHAPES), plain_step(plain))
    wait_full(pre)
    assert pre.mix_report() == plain.mix_report()
    # shapes the schedule did not give (or a step it did not expect) are read when asked, after the rewind
    assert same(pre.next_step(7, [(1, 16)]), plain_step(plain, [(1, 16)]))
    assert same(pre.next_step(9, SHAPES), plain_step(plain))
    pre.close()


def test_an_error_of_the_thread_is_raised_by_the_step_that_needed_it(code_corpus, code_tokenizer, second):
    plain = two_sources(code_corpus, code_tokenizer, second)
    inner = Recording(two_sources(code_corpus, code_tokenizer, second), fail_at=7)  # the first batch of step 3
    pre = Prefetch(inner, lambda step: SHAPES, depth=2)
    for step in range(3):
        assert same(pre.next_step(step, SHAPES), plain_step(plain))
    before = copy.deepcopy(pre.state_dict())
    with pytest.raises(OSError, match="unreadable"):
        pre.next_step(3, SHAPES)
    assert pre.state_dict() == before == plain.state_dict()  # put back where step 3 began
    assert same(pre.next_step(3, SHAPES), plain_step(plain))  # the cause gone, step 3 reads as it would have


def test_workers_started_by_the_thread_end_with_it_and_restart(code_corpus, code_tokenizer, second):
    plain = two_sources(code_corpus, code_tokenizer, second)
    pre = Prefetch(two_sources(code_corpus, code_tokenizer, second, num_workers=1), lambda step: SHAPES if step < 4 else None)
    for step in range(4):  # the thread ends at the schedule's end, stopping the workers it started
        assert same(pre.next_step(step, SHAPES), plain_step(plain))
    assert same(pre.next_step(4, SHAPES), plain_step(plain))  # past the schedule: read when asked
    assert pre.skipped() == plain.skipped()
    pre.close()
