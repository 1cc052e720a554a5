"""The machine's matmul peak per precision: measured once per machine, kept in a small cache file.

A peak is the best FLOP/s of square matmuls over several short bursts at a few sizes, each precision in
turn, so a moment when another process held a core does not become the figure. It is cached per machine
(device model, core count, threads, torch version) in ``peaks.json`` under ``$SYLLABUS_CACHE_DIR``
(default ``$XDG_CACHE_HOME/syllabus``, else ``~/.cache/syllabus``), so two runs on one machine divide by
the same number. A peak only ever rises: it is measured again, keeping the higher figure, when a reading
proves it low (an MFU above 1), and when it was taken on a busy machine (1-minute load average at least
half the core count, kept with it) and the machine is quiet now.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from pathlib import Path

import torch

log = logging.getLogger("syllabus")

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
CALIBRATION_SIZES = (1024, 2048, 3072)  # one burst series per size; the best over all of them counts
BURST_SECONDS = 0.15
CACHE_ENV = "SYLLABUS_CACHE_DIR"
BUSY = 0.5  # a load average of this many processes per core or more: the machine is busy

_memo: dict[tuple[str, str, str], float] = {}  # (cache file, machine key, precision) -> FLOP/s


def measure_matmul_flops(dtype: torch.dtype, device: str, size: int, seconds: float) -> float:
    """Best FLOP/s of ``size``×``size`` matmuls in ``dtype`` on ``device`` over bursts for ``seconds``."""
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    out = torch.empty(size, size, device=device, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up
    reps = max(1, int(4 * (1024 / size) ** 3))  # ~same work per burst whatever the size
    best, deadline = 0.0, time.perf_counter() + seconds
    while True:
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b, out=out)
        if device != "cpu":
            torch.cuda.synchronize()
        best = max(best, reps * 2 * size**3 / (time.perf_counter() - t0))
        if time.perf_counter() >= deadline:
            return best


def calibrate(names: list[str], device: str, sizes: tuple[int, ...] = CALIBRATION_SIZES,
              seconds: float = BURST_SECONDS) -> dict[str, float]:
    """FLOP/s per precision name (``fp32``, ``bf16``, ``fp16``): best over bursts at each size, the
    precisions alternating size by size so a busy moment hits all of them alike. ~0.5 s per name and size."""
    best = dict.fromkeys(names, 0.0)
    for size in sizes:
        for name in names:
            best[name] = max(best[name], measure_matmul_flops(DTYPES[name], device, size, seconds))
    return best


def machine_key(device: str) -> str:
    """What a peak belongs to: device model, core count, threads in use, torch version."""
    if device == "cuda":
        model, cores = torch.cuda.get_device_name(), torch.cuda.device_count()
    else:
        model, cores = cpu_model(), os.cpu_count()
    return f"{device}|{model}|cores={cores}|threads={torch.get_num_threads()}|torch={torch.__version__}"


def cpu_model() -> str:
    """The CPU's model name as ``lscpu`` shows it (``platform.processor()`` where /proc/cpuinfo is absent)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_file() -> Path:
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "syllabus"
    return Path(root) / "peaks.json"


def machine_peaks(names: list[str], device: str, measure=calibrate) -> dict[str, float]:
    """FLOP/s per precision in ``names`` on ``device``: from the cache when this machine has them (measured
    again, keeping the higher, when they were taken on a busy machine and it is quiet now), else measured by
    ``measure(missing_names, device)`` (~0.5 s per precision and size on a CPU) and written to the cache.
    A cache that cannot be written is logged at debug level, never raised."""
    path, key = cache_file(), machine_key(device)
    found = {n: _memo[(str(path), key, n)] for n in names if (str(path), key, n) in _memo}
    if len(found) < len(names):
        entry = _read(path).get(key, {})
        entry = entry if isinstance(entry, dict) else {}
        usable = {n: float(v) for n, v in entry.items() if n in names and _positive(v)}  # a hand-edited file
        load = float(entry["load"]) if _positive(entry.get("load")) else 0.0
        if not (_busy(load) and not _busy(_load())):  # else taken busy, now quiet: again
            found.update({n: v for n, v in usable.items() if n not in found})
        else:
            found.update({n: max(v, measure([n], device)[n]) for n, v in usable.items()})
            if found:
                _store(path, key, {**found, "load": _load()})
    missing = [n for n in names if n not in found]
    if missing:
        load = _load()
        found.update(measure(missing, device))
        _store(path, key, {**{n: found[n] for n in missing}, "load": load})
    for n in names:
        _memo[(str(path), key, n)] = found[n]
    return {n: found[n] for n in names}


def remeasure(name: str, device: str, measure=calibrate) -> float:
    """Measure ``name`` again (an MFU above 1 proved the cached figure low); keeps and returns the higher."""
    path, key = cache_file(), machine_key(device)
    old = machine_peaks([name], device, measure)[name]
    new = max(old, measure([name], device)[name])
    if new > old:
        log.info("matmul peak %s re-measured: %.0f -> %.0f GFLOP/s", name, old / 1e9, new / 1e9)
        _store(path, key, {name: new})
        _memo[(str(path), key, name)] = new
    return new


def cached_entry(device: str) -> dict:
    """Everything the cache holds for this machine (``machine_key``): peaks per precision, ``load``, and what
    ``calibration`` keeps under ``kernels``; ``{}`` when nothing is cached."""
    return _read(cache_file()).get(machine_key(device), {})


def store_entry(device: str, values: dict) -> None:
    """Merge ``values`` into this machine's cache entry (top-level keys replace); never raises."""
    _store(cache_file(), machine_key(device), values)


def busy_now() -> bool:
    """Whether the machine is busy now (1-minute load average >= ``BUSY`` per core)."""
    return _busy(_load())


def busy(load: float) -> bool:
    """Whether a figure taken at 1-minute load average ``load`` was taken on a busy machine."""
    return _busy(load)


def load_average() -> float:
    return _load()


def _load() -> float:
    """The 1-minute load average (0 where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return 0.0


def _busy(load: float) -> bool:
    return load >= BUSY * (os.cpu_count() or 1)


def _positive(value) -> bool:
    """A finite number > 0 (not a bool): what a cached figure must be to be used."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _store(path: Path, key: str, values: dict[str, float]) -> None:
    data = _read(path)
    data[key] = {**data.get(key, {}), **values}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as err:
        log.debug("matmul peaks not cached (%s): %s", path, err)
