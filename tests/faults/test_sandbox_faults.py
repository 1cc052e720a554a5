"""Model-written code in HumanEval-style evaluation that loops, forks, allocates, writes files or opens sockets is
contained by ``syllabus.evaluate.sandbox.run_python`` (via ``check_completions``, the path evaluation uses): each
fails, nothing escapes or lingers, and the evaluation goes on to score a correct completion as a pass. The
sandbox's own layer-by-layer tests are in ``tests/evaluate/test_sandbox.py``."""

import socket

from syllabus.evaluate import benchmark_files
from syllabus.evaluate.humaneval import check_completions
from syllabus.evaluate.sandbox import Limits
from tests.evaluate.test_sandbox import descendants, sandbox_processes


def test_hostile_completions_are_contained_and_the_evaluation_goes_on(tmp_path):
    problem = benchmark_files.humaneval_problems()[0]
    escaped = tmp_path / "escaped.txt"
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    hostile = {
        "loops": "    while True:\n        pass\n",
        "forks": "    import os\n    while True:\n        os.fork()\n",
        "allocates": "    x = bytearray(10 * 1024 ** 3)\n    return len(x) > 0\n",
        "writes files": f"    open({str(escaped)!r}, 'w').write('x')\n    return True\n",
        "opens sockets": f"    import socket\n    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                         f"    return True\n",
    }
    results = check_completions(problem, [*hostile.values(), problem["canonical_solution"]], Limits(timeout=2.0))
    assert dict(zip([*hostile, "canonical"], results)) == {**{name: False for name in hostile}, "canonical": True}
    assert not escaped.exists()
    try:
        server.accept()
        connected = True
    except BlockingIOError:
        connected = False
    server.close()
    assert not connected
    assert descendants() == [] and sandbox_processes() == []
