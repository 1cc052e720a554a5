"""The package map holds in the code: no import circles (imports inside functions count too), and evaluation,
export and checkpoint reading never import the training code."""

import ast
from pathlib import Path

import pytest

import syllabus

SRC = Path(syllabus.__file__).parent


def module_name(file: Path) -> str:
    parts = ("syllabus",) + file.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module → modules it names in an ``import`` anywhere in its file (``from pkg import sub`` names both)."""
    modules = {module_name(f): f for f in SRC.rglob("*.py")}
    graph = {}
    for name, file in modules.items():
        package = name if file.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                edges.add(base)
                edges |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules}
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_module_imports_a_module_that_imports_it_back():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_sees_a_planted_circle():
    graph = import_graph()
    graph["syllabus.checkpoints.folder"] = graph["syllabus.checkpoints.folder"] | {"syllabus.checkpoints.load"}
    assert ["syllabus.checkpoints.folder", "syllabus.checkpoints.load"] in cycles(graph)


def test_evaluation_export_and_checkpoint_reading_do_not_import_training():
    graph = import_graph()
    for name, edges in graph.items():
        if name.startswith(("syllabus.evaluate", "syllabus.export", "syllabus.checkpoints")):
            assert not {e for e in edges if e.startswith("syllabus.train")}, name


def test_one_task_list_the_config_the_cli_and_the_evaluator_agree_on(capsys):
    from syllabus.cli.main import build_parser
    from syllabus.config.plan import BENCHMARK_TASKS
    from syllabus.evaluate.tasks import TASK_NAMES, TASKS

    assert list(TASKS) == list(BENCHMARK_TASKS)
    assert TASK_NAMES == ("ppl", *BENCHMARK_TASKS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["eval", "--help"])
    assert ",".join(("ppl", *BENCHMARK_TASKS)) in "".join(capsys.readouterr().out.split())
