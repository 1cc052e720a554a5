"""Scoring keeps the [B, T, V] logits on the model's device: only each target's log-prob and its greedy flag move."""

from __future__ import annotations

import torch

from syllabus.evaluate.loglikelihood import score_tokens, target_scores


def test_target_scores_are_the_log_softmax_at_the_targets_and_the_argmax():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 50, generator=g) * 4
    targets = torch.randint(0, 50, (3, 7), generator=g)
    targets[0, :3] = logits[0, :3].argmax(-1)
    for dtype in (torch.float32, torch.bfloat16):
        lp, greedy = target_scores(logits.to(dtype), targets)
        reference = torch.log_softmax(logits.to(dtype).double(), -1).gather(-1, targets[..., None]).squeeze(-1)
        assert lp.dtype == torch.float32 and lp.shape == (3, 7)
        assert torch.allclose(lp.double(), reference, atol=1e-5)
        assert torch.equal(greedy, logits.to(dtype).argmax(-1) == targets) and greedy[0, :3].all()


def test_only_target_figures_leave_the_device(model, tokenizer, monkeypatch):
    moved = []
    original = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: moved.append(tuple(self.shape)) or
                        original(self, *a, **k))
    requests = [([0, 5, 9, 14, 3, 7], 2), ([0, 8, 2], 1), ([0, 4, 4, 4, 4, 4, 4, 9], 3)]
    scores = score_tokens(model, requests, batch_size=2)
    monkeypatch.undo()
    assert moved and all(len(shape) == 2 for shape in moved), moved  # [B, T], never [B, T, V]
    with torch.no_grad():
        for (tokens, n), (score, greedy) in zip(requests, scores):
            logp = torch.log_softmax(model(torch.tensor([tokens[:-1]])).double(), -1)[0]
            picked = [float(logp[len(tokens) - 1 - n + i, t]) for i, t in enumerate(tokens[-n:])]
            assert abs(score - sum(picked)) < 1e-4
            argmax = logp[len(tokens) - 1 - n:].argmax(-1).tolist()
            assert greedy == (argmax == tokens[-n:])
