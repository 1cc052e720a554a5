"""Which kernel is fastest on this machine, per shape class: measured once, cached with the matmul peaks.

Two choices are calibrated on the CPU (``model/kernels.py`` names the candidates): the attention path
(``sdpa``, ``explicit``, ``explicit-bf16``) per precision, head size and key-length bucket, and the chunked
loss's group size per precision, width, vocabulary and row bucket. Each candidate runs forward + backward at
the run's own shape, the candidates alternating ``REPEATS`` times after one warm-up each; the fastest best
time wins. A constant tuned on one machine (an AMD EPYC without AMX chose "explicit up to 1,024 keys")
thereby never rules another (on an AMX Xeon the flash kernel is 1.5x faster at 1,024 keys).

Accuracy bound: an attention path is admissible only if its relative error (output and each of the three
gradients, against an fp64 reference on the same inputs) is at most ``ACCURACY_BOUND`` times the error of
``scaled_dot_product_attention`` in the same precision (+ ``ERROR_FLOOR``), the kernel every reference
implementation trains with. bf16 scores pass only where they are that exact; the explicit path's bf16
accumulation of dk and dv over query blocks fails it at long sequences.

The figures are cached in ``peaks.json`` under the same machine key as the matmul peaks
(``peaks.machine_key``: device model, cores, threads, torch version), entry ``kernels``, each class with when
and at what load average it was measured (``taken``). A busy machine penalises the explicit path's many small
parallel regions most (at load 12 on 2 cores it ran 5x slower than the flash kernel, against 0.7x quiet), so
a class measured busy is measured again, but only once the machine is quiet *and* the figures are at least
``REMEASURE_AFTER_S`` (an hour) old; a class measured quiet is never measured again. Each class thus changes at
most once, and never between two runs close in time: the runs of one test read the same choice (the suite's
cache folder is created empty by ``tests/conftest.py`` and lives for the suite's ~13 minutes). A resumed run
keeps the choice of every class its checkpoint names (``kernels.kernels_on_resume``), whatever the cache says
now. On CUDA nothing is measured: attention is SDPA and the loss keeps its default group.
"""

from __future__ import annotations

import logging
import time

import torch

from syllabus.model.kernels import ATTENTION_PATHS, KernelChoice, attention_class, loss_class
from syllabus.model.loss import LOSS_CHUNK_ELEMENTS, linear_cross_entropy
from syllabus.model.attention import attend
from syllabus.train import peaks

log = logging.getLogger("syllabus")

ACCURACY_BOUND = 1.1  # relative error at most 10% above the flash kernel's
ERROR_FLOOR = 1e-6  # fp32 paths agree to ~1e-7: below this a ratio is rounding noise
REPEATS = 3
LOSS_GROUP_CANDIDATES = (2**22, 2**23, 2**24, 2**25, 2**26)  # logits elements per group
REMEASURE_AFTER_S = 3600  # busy figures stand for an hour at least (see the module's docstring)
_now = time.time  # Unix seconds (tests move it)
PARTS = ("attention", "loss_group", "seconds", "errors", "taken")
ERROR_HEADS = 4  # heads of batch row 0 the error check runs on (errors are statistics; this is plenty)


def kernel_choice(model_config, shapes: list[tuple[int, int]], precision: str, device_type: str, *,
                  time_attention=None, attention_errors=None, time_loss=None) -> KernelChoice:
    """The kernels for a run of ``model_config`` at ``shapes`` ([(micro_batch_size, seq_len)], one per
    curriculum phase) in ``precision`` (``fp32``, ``bf16``, ``fp16``): cached classes from ``peaks.json``,
    the rest measured now and cached. ``time_attention(path, B, H, KV, S, D, dtype)`` and
    ``time_loss(group_elements, rows, hidden, vocab, dtype)`` return seconds, ``attention_errors(path, H, KV,
    S, D, dtype)`` a list of relative errors; tests inject them. A few seconds per new class on a CPU."""
    if device_type != "cpu":
        return KernelChoice(source="default: attention is SDPA, the loss's group its default, off the CPU")
    time_attention = time_attention or _time_attention
    attention_errors = attention_errors or _attention_errors
    time_loss = time_loss or _time_loss
    dtype = peaks.DTYPES[precision]
    cached = peaks.cached_entry(device_type).get("kernels", {})
    known = {part: dict(cached.get(part, {})) for part in PARTS}
    fresh = {}  # the parts of each class measured now
    c = model_config
    attention, loss_group = {}, {}
    for batch, seq in sorted(set(shapes)):
        a_class = attention_class(precision, c.head_size, seq)
        if a_class not in known["attention"] or _stale(known, a_class, cached.get("load", 0.0)):
            candidates = [p for p in ATTENTION_PATHS if dtype != torch.float32 or p != "explicit-bf16"]
            args = (c.num_attention_heads, c.kv_heads, seq, c.head_size, dtype)
            errors = {p: attention_errors(p, *args) for p in candidates}
            seconds = _alternating({p: (lambda p=p: time_attention(p, batch, *args)) for p in candidates})
            fresh[a_class] = {"attention": choose_attention(seconds, errors), "seconds": seconds,
                              "errors": {p: max(e) for p, e in errors.items()}, "taken": _taken()}
        l_class = loss_class(precision, c.hidden_size, c.vocab_size, batch * seq)
        if l_class not in known["loss_group"] or _stale(known, l_class, cached.get("load", 0.0)):
            candidates = loss_group_candidates(batch * seq, c.vocab_size)
            seconds = _alternating({n: (lambda n=n: time_loss(n, batch * seq, c.hidden_size, c.vocab_size, dtype))
                                    for n in candidates})
            fresh[l_class] = {"loss_group": choose_loss_group(seconds), "taken": _taken(),
                              "seconds": {str(n): s for n, s in seconds.items()}}
        for cls, parts in fresh.items():
            for part, value in parts.items():
                known[part][cls] = value
        attention[a_class], loss_group[l_class] = known["attention"][a_class], known["loss_group"][l_class]
    measured = bool(fresh)
    if measured:  # merged into the file as it is now: classes another process stored meanwhile are kept
        now = peaks.cached_entry(device_type).get("kernels", {})
        merged = {part: {**now.get(part, {}), **{cls: p[part] for cls, p in fresh.items() if part in p}}
                  for part in PARTS}
        peaks.store_entry(device_type, {"kernels": {**merged, "load": now.get("load", cached.get("load", 0.0))}})
    classes = set(attention) | set(loss_group)
    choice = KernelChoice(attention, loss_group, "measured" if measured else "cached",
                          {k: v for k, v in known["seconds"].items() if k in classes},
                          {k: v for k, v in known["errors"].items() if k in classes})
    log.debug("kernels: %s", choice.describe())
    return choice


def _taken() -> dict:
    """When (Unix seconds) and at what 1-minute load average a class was measured."""
    return {"load": peaks.load_average(), "at": _now()}


def _stale(known: dict, cls: str, entry_load: float) -> bool:
    """Whether ``cls``'s figures are measured again: taken on a busy machine, ``REMEASURE_AFTER_S`` ago or
    more, and the machine is quiet now (a class cached before ``taken`` existed: at the entry's ``load``)."""
    taken = known["taken"].get(cls, {"load": entry_load, "at": 0.0})
    return peaks.busy(taken["load"]) and _now() - taken["at"] >= REMEASURE_AFTER_S and not peaks.busy_now()


def choose_attention(seconds: dict[str, float], errors: dict[str, list[float]]) -> str:
    """The fastest path whose every error is within ``ACCURACY_BOUND`` of SDPA's (SDPA always qualifies)."""
    ref = errors["sdpa"]
    admissible = [p for p in seconds
                  if p == "sdpa" or all(e <= ACCURACY_BOUND * r + ERROR_FLOOR for e, r in zip(errors[p], ref))]
    return min(admissible, key=seconds.get)


def loss_group_candidates(rows: int, vocab: int) -> list[int]:
    """Group sizes (logits elements) that split ``rows`` differently: one per distinct group of whole chunks."""
    chunk = max(256, LOSS_CHUNK_ELEMENTS // vocab)
    by_rows = {}
    for n in LOSS_GROUP_CANDIDATES:
        group_rows = min(max(chunk, n // vocab // chunk * chunk), max(rows, chunk))
        by_rows.setdefault(group_rows, n)
    return sorted(by_rows.values())


def choose_loss_group(seconds: dict[int, float]) -> int:
    return min(seconds, key=seconds.get)


def _alternating(runs: dict) -> dict:
    """Best seconds of each run: one warm-up each, then ``REPEATS`` rounds alternating between them, so a busy
    moment of the machine hits every candidate alike."""
    for run in runs.values():
        run()
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(REPEATS):
        for key, run in runs.items():
            best[key] = min(best[key], run())
    return best


def _qkv(B: int, H: int, KV: int, S: int, D: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, S, D, generator=g), torch.randn(B, KV, S, D, generator=g),
            torch.randn(B, KV, S, D, generator=g), torch.randn(B, H, S, D, generator=g))


def _forward_backward(path: str, q, k, v, grad):
    q, k, v = (t.detach().requires_grad_() for t in (q, k, v))
    out = attend(q, k, v, None, path)
    out.backward(grad)
    return [out, q.grad, k.grad, v.grad]


def _time_attention(path: str, B: int, H: int, KV: int, S: int, D: int, dtype: torch.dtype) -> float:
    q, k, v, grad = (t.to(dtype) for t in _qkv(B, H, KV, S, D))
    t0 = time.perf_counter()
    _forward_backward(path, q, k, v, grad)
    return time.perf_counter() - t0


def _attention_errors(path: str, H: int, KV: int, S: int, D: int, dtype: torch.dtype) -> list[float]:
    """Relative errors (Frobenius) of the output and dq, dk, dv against fp64 SDPA on the same inputs."""
    KV, H = min(KV, ERROR_HEADS), min(KV, ERROR_HEADS) * (H // KV)  # the same grouping, fewer heads
    q, k, v, grad = _qkv(1, H, KV, S, D, seed=1)
    ref = _forward_backward("sdpa", *(t.double() for t in (q, k, v, grad)))
    ours = _forward_backward(path, *(t.to(dtype) for t in (q, k, v, grad)))
    return [float((o.detach().double() - r.detach()).norm() / r.detach().norm().clamp(min=1e-30)) for o, r in zip(ours, ref)]


def _time_loss(group_elements: int, rows: int, hidden: int, vocab: int, dtype: torch.dtype) -> float:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(rows, hidden, generator=g).to(dtype).requires_grad_()
    w = (0.02 * torch.randn(vocab, hidden, generator=g)).to(dtype).requires_grad_()
    labels = torch.randint(0, vocab, (rows,), generator=g)
    t0 = time.perf_counter()
    linear_cross_entropy(x, w, labels, group_elements).backward()
    return time.perf_counter() - t0


def kernel_choice_on_all_ranks(model_config, shapes, precision: str, device: torch.device) -> KernelChoice:
    """``kernel_choice`` on rank 0, the same answer handed to every rank (all ranks compute alike)."""
    import torch.distributed as tdist

    if not (tdist.is_available() and tdist.is_initialized() and tdist.get_world_size() > 1):
        return kernel_choice(model_config, shapes, precision, device.type)
    box = [kernel_choice(model_config, shapes, precision, device.type).to_dict() if tdist.get_rank() == 0 else None]
    tdist.broadcast_object_list(box, src=0)
    return KernelChoice.from_dict(box[0])
