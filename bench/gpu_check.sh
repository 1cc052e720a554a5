#!/usr/bin/env bash
# The GPU check of issue 17: one short script (< 8 minutes) for a machine with one CUDA GPU whose Python has
# torch (CUDA), transformers, tokenizers and safetensors but no network.
#
#   bench/gpu_check.sh pack    # HERE, with network and the dev venv: fills bench/gpu-carry/ (gitignored) with
#                              # the other dependencies as wheels (pydantic, pyyaml, pytest, ... for CPython
#                              # 3.10-3.13, manylinux x86_64) and the benchmark's prepared shards + tokenizer
#   bench/gpu_check.sh         # THERE, in the repository root, with bench/gpu-carry/ carried along
#
# On the GPU it installs the wheels into bench/gpu-carry/site (pip --target, --no-index: nothing is fetched,
# the system Python is not changed), then runs: the CUDA-marked tests; the `small` preset (vocab 32,000,
# seq 1024, micro batch 8) in bf16 with torch.compile, syllabus's real training step against Hugging Face
# LlamaForCausalLM at the same shape, alternating, with tokens/s and MFU against a bf16 matmul peak measured
# in the same process. The last line of output is one JSON object. Environment: PYTHON (default python3),
# ROUNDS / STEPS (default 3 / 5).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
carry="$here/gpu-carry"
py="${PYTHON:-python3}"
wheels=(pydantic pydantic-core annotated-types typing-extensions typing-inspection pyyaml pytest pluggy
        iniconfig packaging pytest-timeout tqdm)

pack() {
    local dev_py="$root/.venv/bin/python" version
    mkdir -p "$carry/wheels" "$carry/data"
    for version in 3.10 3.11 3.12 3.13; do
        "$dev_py" -m pip download -q --only-binary=:all: --platform manylinux2014_x86_64 \
            --platform manylinux_2_17_x86_64 --python-version "$version" --implementation cp \
            -c "$root/constraints.txt" -d "$carry/wheels" "${wheels[@]}"
    done
    # the throughput benchmark's shards (demo corpus, 8k BPE): built here once, read there
    PYTHONPATH="$root/src" "$dev_py" -c "
import sys; sys.path.insert(0, '$here')
from pathlib import Path
import train_throughput
train_throughput.prepared_data(Path('$carry/data'))"
    rm -rf "$carry/data/demo"  # the raw corpus is not needed once tokenized
    du -sh "$carry"
}

check() {
    local t0 log site
    t0=$(date +%s)
    log="$(mktemp -d)"
    site="$carry/site"
    "$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 2
    if ! "$py" -c "import pydantic, yaml, pytest" 2>/dev/null; then
        "$py" -m pip install -q --no-index --find-links "$carry/wheels" --target "$site" "${wheels[@]}"
    fi
    export PYTHONPATH="$root/src:$site${PYTHONPATH:+:$PYTHONPATH}"
    export SYLLABUS_CACHE_DIR="$log/cache"  # measure this GPU's peaks afresh

    local tests_rc=0
    (cd "$root" && timeout 180 "$py" -m pytest -q -m cuda -p no:cacheprovider tests) >"$log/tests.txt" 2>&1 \
        || tests_rc=$?
    tail -n 3 "$log/tests.txt"

    local bench_rc=0
    timeout 300 "$py" "$here/train_throughput.py" --shapes small --dtypes bf16 --compile compiled \
        --systems syllabus hf-llama --rounds "${ROUNDS:-3}" --steps "${STEPS:-5}" --warmup 2 \
        --cache "$carry/data" >"$log/bench.txt" 2>&1 || bench_rc=$?
    grep -v '^{' "$log/bench.txt" | tail -n 8

    "$py" - "$log" "$tests_rc" "$bench_rc" "$(($(date +%s) - t0))" <<'EOF'
import json, sys
from pathlib import Path

log, tests_rc, bench_rc, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
import torch
summary = [line for line in (log / "tests.txt").read_text().splitlines() if " passed" in line or " failed" in line
           or " skipped" in line or "error" in line.lower()]
bench = [line for line in (log / "bench.txt").read_text().splitlines() if line.startswith("{")]
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
out = {"gpu": gpu, "torch": torch.__version__, "cuda_tests_rc": tests_rc,
       "cuda_tests": summary[-1] if summary else None, "bench_rc": bench_rc, "seconds": seconds}
if bench:
    result = json.loads(bench[-1])
    out["peak_gflops"] = result["peak_gflops"]
    out["rows"] = [{k: r[k] for k in ("system", "dtype", "compile", "tokens_per_sec", "mfu", "mfu_best")}
                   for r in result["rows"]]
    out["ratios"] = result["ratios"]
print(json.dumps(out))
EOF
}

case "${1:-check}" in
    pack) pack ;;
    check) check ;;
    *) echo "usage: bench/gpu_check.sh [pack|check]" >&2; exit 2 ;;
esac
