"""The sandbox contains what model-written code is likely to do wrong or on purpose."""

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from syllabus.evaluate import benchmark_files
from syllabus.evaluate.humaneval import check_completions, pass_at_k, program_for
from syllabus.evaluate.sandbox import Limits, processes_of, run_python

LIMITS = Limits(timeout=3.0)


def descendants() -> list[int]:
    me, found = str(os.getpid()), []
    for entry in Path("/proc").iterdir():
        try:
            fields = dict(l.split(":", 1) for l in (entry / "status").read_text().splitlines() if ":" in l)
        except (OSError, ValueError):
            continue
        if fields.get("PPid", "").strip() == me and not fields["State"].strip().startswith("Z"):
            found.append(int(entry.name))
    return found


def sandbox_processes() -> list[int]:
    """Processes running under any sandbox uid (1_000_000 and up)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = dict(l.split(":", 1) for l in (entry / "status").read_text().splitlines() if ":" in l)
            if int(fields["Uid"].split()[0]) >= 1_000_000 and not fields["State"].strip().startswith("Z"):
                found.append(int(entry.name))
        except (OSError, ValueError, KeyError):
            continue
    return found


def contained(source: str, limits: Limits = LIMITS):
    outcome = run_python(source, limits)
    assert not outcome.passed, outcome
    assert outcome.seconds < limits.timeout + 2
    assert descendants() == [] and sandbox_processes() == []
    return outcome


def test_canonical_solutions_pass_and_wrong_ones_fail():
    problems = benchmark_files.humaneval_problems()
    assert len(problems) == 164
    for problem in problems[:3]:
        good, bad = check_completions(problem, [problem["canonical_solution"], "    return None\n"], LIMITS)
        assert good and not bad


def test_infinite_loop_times_out():
    outcome = contained("while True:\n    pass\n", Limits(timeout=1.5))
    assert outcome.status == "timeout"


def test_fork_bomb_is_stopped():
    contained("import os\nwhile True:\n    os.fork()\n")
    # Around the Python guard: the interpreter's own fork, re-imported.
    contained("import importlib, posix\nposix = importlib.reload(posix)\nwhile True:\n    posix.fork()\n")


def test_huge_allocation_fails():
    outcome = contained("x = bytearray(10 * 1024 ** 3)\n")
    assert "MemoryError" in outcome.stderr


def test_cannot_write_outside_its_folder(tmp_path):
    target = tmp_path / "escaped.txt"
    contained(f"open({str(target)!r}, 'w').write('x')\n")
    contained(f"import os\nfd = os.open({str(target)!r}, os.O_CREAT | os.O_WRONLY)\nos.write(fd, b'x')\n")
    contained("import os, pathlib\npathlib.Path('/tmp/syllabus-sandbox-escape.txt').write_text('x')\n")
    assert not target.exists() and not Path("/tmp/syllabus-sandbox-escape.txt").exists()
    inside = run_python("open('ok.txt', 'w').write('fine')\nassert open('ok.txt').read() == 'fine'\n", LIMITS)
    assert inside.passed, inside.stderr


def test_no_network():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(5)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(safe_accept(server)), daemon=True).start()
    contained(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n")
    contained(f"import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', {port}))\n")
    time.sleep(0.2)
    server.close()
    assert accepted in ([], [None])


def safe_accept(server):
    try:
        return server.accept()
    except OSError:
        return None


def test_caller_survives_and_sandbox_folder_is_removed():
    outcome = run_python("import os\nprint(os.getcwd(), os.environ['HOME'] == os.getcwd())\n", LIMITS)
    assert outcome.passed
    folder, same = outcome.stdout.split()
    assert same == "True" and not Path(folder).exists()


def test_pass_at_k_matches_the_combinatorial_definition():
    from math import comb

    for n, c, k in [(10, 3, 1), (10, 3, 5), (20, 0, 2), (5, 5, 3), (7, 2, 6)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)


def test_program_for_calls_check():
    problem = benchmark_files.humaneval_problems()[0]
    assert program_for(problem, "    pass\n").endswith(f"check({problem['entry_point']})\n")
