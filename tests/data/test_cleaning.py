from collections import Counter

from syllabus.data import prepare_shards
from syllabus.data.cleaning import CleaningOptions, clean_latex, language_of, quality_problem
from syllabus.data.dedup import NearDedup
from syllabus.data.part_writer import PartJob, iter_part_documents
from syllabus.data.parts import plan_parts

PAPER = r"""\documentclass[11pt]{article}
\usepackage{amsmath} % for align
%\usepackage{secret-draft}
\title{On Sums}
\begin{document}
\maketitle
% TODO: rewrite the intro
We prove that $\sum_{k=1}^{n} k = \frac{n(n+1)}{2}$ for all $n$, a 100\% classic.
\begin{align}
  S_n &= 1 + 2 + \dots + n \\ % a comment after math
  2 S_n &= n(n+1)
\end{align}
\begin{comment}
An abandoned paragraph.
\end{comment}
\bibliographystyle{plain}
\begin{thebibliography}{9}
\bibitem{gauss} C. F. Gauss, Disquisitiones.
\end{thebibliography}
\end{document}
"""


def test_clean_latex_keeps_math_drops_the_rest():
    body = clean_latex(PAPER)
    assert "\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}" in body and "100\\% classic" in body
    assert "\\begin{align}" in body and "2 S_n &= n(n+1)" in body
    for gone in ("TODO", "usepackage", "documentclass", "\\begin{document}", "\\end{document}", "Gauss",
                 "a comment after math", "abandoned", "bibliographystyle", "secret-draft"):
        assert gone not in body, gone


def test_near_duplicates_are_found(real_text):
    paras = [p for p in real_text.splitlines() if len(p) > 800][:20]
    near = NearDedup(0.7)
    assert not any(near.is_duplicate(p) for p in paras)
    edited = paras[3].replace(" the ", " a ", 2) + " Reporting by our staff."
    assert near.is_duplicate(edited)
    assert not near.is_duplicate("A completely different text about rivers, mountains and the sea " * 5)


def test_quality_filters():
    opts = CleaningOptions(min_chars=20, max_chars=5000, max_symbol_ratio=0.3, max_repeated_lines=0.5)
    assert quality_problem("short", opts) == "too_short"
    assert quality_problem("#$%^&*(){}[]<>|~" * 10, opts) == "symbol_ratio"
    assert quality_problem("click here to subscribe\n" * 10 + "real line\n", opts) == "repeated_lines"
    assert quality_problem("A normal paragraph of reasonable prose, with a few words.", opts) is None
    assert quality_problem("x" * 6000, opts) == "too_long"


def test_code_language_filter_on_a_mixed_folder(tmp_path, tok):
    repo = tmp_path / "repo"
    files = {"app.py": "def main():\n    print('hi')\n", "lib/util.c": "int add(int a, int b) { return a + b; }\n",
             "web/index.js": "export const f = (x) => x * 2;\n", "notes.md": "# repo\nSome notes.\n",
             "lib/tool.pyi": "def add(a: int, b: int) -> int: ...\n", "script.sh": "#!/bin/sh\necho hi\n"}
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    assert language_of("a/b.PY") == "python" and language_of("notes.md") is None
    removed = Counter()
    job = PartJob("-", "", 0, "uint16", {"text_field": "text"}, CleaningOptions(code_languages=["python", "c"]), 0.0,
                  1 << 20, "", {})
    kept = [(s, t) for part in plan_parts([str(repo)]) for s, t, _ in iter_part_documents(part, job, Counter(), removed, [0])]
    assert sorted(t for _, t in kept) == sorted([files["app.py"], files["lib/util.c"], files["lib/tool.pyi"]])
    assert removed == {"language": 3}


def test_prepare_reports_each_cleaner(tmp_path, tok, real_text):
    paras = [p for p in real_text.splitlines() if len(p) > 300][:30]
    docs = paras + [paras[0], paras[1].replace(" and ", " & ", 1), "tiny", PAPER]
    folder = tmp_path / "in"
    folder.mkdir()
    for i, d in enumerate(docs):
        (folder / f"doc{i:02d}.tex").write_text(d)
    report = prepare_shards([str(folder)], tok, tmp_path / "out", workers=1, val_fraction=0,
                            cleaning=CleaningOptions(latex=True, near_dedup=0.8, min_chars=50), echo=lambda s: None)
    assert report["removed"] == {"exact_duplicate": 1, "near_duplicate": 1, "too_short": 1}
    assert report["splits"]["train"]["docs"] == 31
