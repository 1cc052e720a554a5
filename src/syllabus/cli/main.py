"""The `syllabus` command: one sub-command per module in this package.

Each sub-command module defines ``add_arguments(parser)`` and ``run(args) -> int`` and holds no
logic of its own beyond turning arguments into one call.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# name -> (module, one-line help); the order is the order `syllabus --help` lists them in.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("syllabus.cli.run", "run a multi-stage plan (again: continue it)"),
    "status": ("syllabus.cli.status", "show how far a plan run has got"),
    "compare": ("syllabus.cli.compare", "compare plan runs side by side, aligned by tokens seen"),
    "mix": ("syllabus.cli.mix", "search a stage's data mixture with short proxy runs"),
    "demo": ("syllabus.cli.demo", "build the demo corpus if needed and run plans/demo.yaml on the CPU"),
    "pretrain": ("syllabus.cli.pretrain", "train one stage from a config or flags"),
    "prepare": ("syllabus.cli.prepare", "clean and tokenize raw text into token shards"),
    "corpus": ("syllabus.cli.corpus", "build the four-domain demo corpus from installed packages"),
    "eval": ("syllabus.cli.eval", "evaluate a checkpoint: perplexity and benchmark tasks"),
    "generate": ("syllabus.cli.generate", "stream a completion from a checkpoint"),
    "export": ("syllabus.cli.export", "export a checkpoint to a Hugging Face folder"),
}


# What `main` returns; shown at the end of every --help.
EXIT_CODES = """exit codes:
  0    done, or stopped by SIGINT/SIGTERM after saving a checkpoint (run again to continue)
  1    the run stopped itself for a stated reason; its newest checkpoint is intact
  2    bad arguments or configuration (the line names the field and what is allowed)
  130  interrupted before a checkpoint could be saved"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syllabus", description="Multi-stage language-model pre-training.",
                                     epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = sub.add_parser(name, help=help_text, description=help_text, epilog=EXIT_CODES,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


# The oldest torch with every API syllabus uses (pyproject.toml's floor, kept equal by a test): 2.6 made
# ``fully_shard``/``MixedPrecisionPolicy`` public in ``torch.distributed.fsdp`` and added
# ``torch.nn.utils.get_total_norm``/``clip_grads_with_norm_``; SDPA's ``enable_gqa`` is 2.5, ``F.rms_norm`` 2.4.
TORCH_FLOOR = (2, 6)


def torch_too_old(version: str | None = None) -> str | None:
    """One line naming the installed torch (``version``, else its package metadata) when it is older than
    ``TORCH_FLOOR``, else None. Read without importing torch, so an old one is refused at the door."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        version = version or installed("torch")
    except PackageNotFoundError:
        return None  # a source build without metadata: the imports decide
    parts = tuple(int(p) for p in version.split("+")[0].split(".")[:2] if p.isdigit())
    if len(parts) == 2 and parts < TORCH_FLOOR:
        floor = ".".join(map(str, TORCH_FLOOR))
        return f"torch {version} is installed; syllabus needs torch>={floor} (pip install 'torch>={floor}')"
    return None


def main(argv: list[str] | None = None) -> int:
    if (old := torch_too_old()) is not None:
        print(f"syllabus: {old}", file=sys.stderr)
        return 2
    from syllabus.config.errors import ConfigError
    from syllabus.train.launch import is_main_process
    from syllabus.train.stops import RunHalted

    # Under torchrun only rank 0 speaks; the other ranks still report warnings and errors.
    logging.basicConfig(level=logging.INFO if is_main_process() else logging.WARNING, format="%(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ConfigError as err:
        print(f"syllabus {args.command}: {err}", file=sys.stderr)
        return 2
    except RunHalted as err:  # the run stopped itself for a stated reason; its newest checkpoint is intact
        print(f"syllabus {args.command}: stopped: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
