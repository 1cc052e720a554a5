"""``syllabus corpus demo OUT``: build the four-domain demo corpus from installed packages."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=["demo"], help="which corpus to build")
    parser.add_argument("out", help="output folder (gets wiki/ reasoning/ math/ code/ and SOURCES.md)")


def run(args: argparse.Namespace) -> int:
    from syllabus.data.corpus import build_demo_corpus

    build_demo_corpus(args.out)
    return 0
