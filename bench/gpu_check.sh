#!/usr/bin/env bash
# The GPU check (issues 17 and 23): one script, at most 10 minutes, for a machine with one CUDA GPU whose Python
# has torch (CUDA), transformers, tokenizers and safetensors but no network. Its last line is one JSON object.
#
#   bench/gpu_check.sh pack      # HERE, with network and the dev venv: fills bench/gpu-carry/ (git-ignored) with
#                                # wheels of everything else the package needs, the list derived from
#                                # pyproject.toml (`bench/gpu_check.py requirements`: the dependencies and the
#                                # gpu-check extra, without what the image brings) and resolved by `pip download`
#                                # for PY_VERSIONS (default "3.10 3.11 3.12 3.13"; name the image's one alone to
#                                # stay small), plus the throughput benchmark's prepared shards + tokenizer
#   bench/gpu_check.sh           # THERE, in the repository root, with bench/gpu-carry/ carried along
#   bench/gpu_check.sh dry-run   # HERE: every step but the install on this CPU, tiny sizes (checks the script)
#
# There it installs only what this Python lacks (`bench/gpu_check.py missing`), from the carried wheels (pip
# --no-index --find-links --prefix bench/gpu-carry/prefix: nothing is fetched, the system Python is untouched),
# imports every syllabus module before it starts, then runs the CUDA-marked tests and `bench/gpu_check.py run`
# (throughput at seq 2048 beside HF Llama and nanoGPT, FSDP2 bf16 compile + checkpointing with async save and an
# exact resume, fp16 with the scaler across a resume, a two-stage plan with memory after stage 1, a resume from two
# CUDA RNG states, a sync-debug run, document-masked grouped-query attention without SDPA's math kernel). Environment: PYTHON (default python3), ROUNDS / STEPS (default 3 / 3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
carry="$here/gpu-carry"
py="${PYTHON:-python3}"

pack() {
    local dev_py="$root/.venv/bin/python" version
    local -a reqs
    mapfile -t reqs < <("$dev_py" "$here/gpu_check.py" requirements)
    mkdir -p "$carry/wheels" "$carry/data"
    for version in ${PY_VERSIONS:-3.10 3.11 3.12 3.13}; do
        "$dev_py" -m pip download -q --only-binary=:all: --platform manylinux2014_x86_64 \
            --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --python-version "$version" \
            --implementation cp -c "$root/constraints.txt" -d "$carry/wheels" "${reqs[@]}"
    done
    # LEAVE_OUT: wheels not to carry (the device tool carries at most 64 MiB; for one Python version the full set
    # is ~150 MB, of which pyarrow 55, scipy 35 (for datasketch), numpy 17). What is left out and missing there is
    # reported as not_installed; the import check still gates the start (these three are imported lazily,
    # numpy comes with torch images).
    local name
    for name in ${LEAVE_OUT:-}; do
        rm -f "$carry/wheels/${name//-/_}-"*.whl "$carry/wheels/${name}-"*.whl
    done
    # the throughput benchmark's shards (demo corpus, 8k BPE): built here once, read there
    PYTHONPATH="$root/src" "$dev_py" -c "
import sys; sys.path.insert(0, '$here')
from pathlib import Path
import train_throughput
train_throughput.prepared_data(Path('$carry/data'))"
    rm -rf "$carry/data/demo" "$carry/data/rendered"  # the raw and rendered corpus: not needed once tokenized
    du -sh "$carry"
}

# Install what this Python lacks from the carried wheels; put it on PYTHONPATH.
install_missing() {
    local prefix="$carry/prefix" site
    local -a need
    mapfile -t need < <(PYTHONPATH="$root/src" "$py" "$here/gpu_check.py" missing)
    local req
    for req in "${need[@]}"; do  # one at a time: a wheel left out of the carry fails alone
        echo "installing $req from bench/gpu-carry/wheels" >&2
        PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
            "$py" -m pip install -q --no-index --find-links "$carry/wheels" --prefix "$prefix" "$req" \
            || echo "not installed: $req (not carried?)" >&2
    done
    site="$("$py" -c "import sysconfig; print(sysconfig.get_path('purelib', vars={'base': '$prefix'}))")"
    local platlib
    platlib="$("$py" -c "import sysconfig; print(sysconfig.get_path('platlib', vars={'platbase': '$prefix'}))")"
    export PYTHONPATH="$root/src:$site:$platlib${PYTHONPATH:+:$PYTHONPATH}"
}

check() {
    local dry="$1" t0 log
    t0=$(date +%s)
    log="$(mktemp -d)"
    if [[ "$dry" == 1 ]]; then
        export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
    else
        "$py" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'" || exit 2
        install_missing
    fi
    "$py" "$here/gpu_check.py" imports || { echo "imports failed: not starting" >&2; exit 2; }

    local tests_rc=0
    if [[ "$dry" == 1 ]]; then
        echo "dry run: CUDA tests not run" >"$log/tests.txt"
    else
        (cd "$root" && timeout 90 "$py" -m pytest -q -m cuda -p no:cacheprovider tests) >"$log/tests.txt" 2>&1 \
            || tests_rc=$?
    fi
    tail -n 3 "$log/tests.txt"

    local run_rc=0 cap=450 flag=""
    [[ "$dry" == 1 ]] && cap=1500 flag=--dry-run  # the CPU dry run is not held to the GPU's 10 minutes
    timeout "$cap" "$py" "$here/gpu_check.py" run $flag \
        --rounds "${ROUNDS:-3}" --steps "${STEPS:-3}" >"$log/run.json" 2>"$log/run.txt" || run_rc=$?
    tail -n 12 "$log/run.txt"

    "$py" - "$log" "$tests_rc" "$run_rc" "$(($(date +%s) - t0))" <<'EOF'
import json, sys
from pathlib import Path

log, tests_rc, run_rc, seconds = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
summary = [line for line in (log / "tests.txt").read_text().splitlines() if " passed" in line or " failed" in line
           or " skipped" in line or "error" in line.lower() or "dry run" in line]
lines = [line for line in (log / "run.json").read_text().splitlines() if line.startswith("{")]
out = {"cuda_tests_rc": tests_rc, "cuda_tests": summary[-1] if summary else None, "run_rc": run_rc,
       **(json.loads(lines[-1]) if lines else {}), "total_seconds": seconds}
print(json.dumps(out))
EOF
}

case "${1:-check}" in
    pack) pack ;;
    check) check 0 ;;
    dry-run) check 1 ;;
    *) echo "usage: bench/gpu_check.sh [pack|check|dry-run]" >&2; exit 2 ;;
esac
