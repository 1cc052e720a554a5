"""keep_freed_memory: a freed large block is reused instead of page-faulted back in."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import resource, sys
    from syllabus.train.host_memory import keep_freed_memory
    applied = keep_freed_memory() if sys.argv[1] == "keep" else False
    def faults_of_one_cycle():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = bytearray(64 * 2**20)  # 64 MB from malloc, every page written, freed
        block[::4096] = bytes(len(block) // 4096)
        del block
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    faults_of_one_cycle()
    print(applied, min(faults_of_one_cycle() for _ in range(5)))
""")


def run(mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "LD_PRELOAD"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, check=True)
    applied, faults = out.stdout.split()
    return applied == "True", int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_freed_blocks_are_reused_instead_of_faulted_in_again():
    _, default_faults = run("default")
    assert default_faults > 10_000  # 64 MB / 4 KB pages, every time
    # A plain malloc'd block: torch's CPU allocator asks for 64-byte-aligned blocks (posix_memalign), and
    # one block freed and asked for again at the same size misses its old chunk by a few bytes in about
    # one process in five, depending on where small allocations landed (a training step's many buffers
    # do not hinge on one chunk: the benchmark counts 1-2 faults per step). malloc is what mallopt governs.
    applied, faults = run("keep")
    assert applied
    assert faults < 100


def test_left_alone_when_the_user_chose(monkeypatch):
    from syllabus.train.host_memory import keep_freed_memory
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert keep_freed_memory() is False
