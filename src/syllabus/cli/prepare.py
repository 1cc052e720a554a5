"""``syllabus prepare INPUT... --out OUT``: clean and tokenize raw text into token shards."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", help="files, folders, globs or hf:owner/name[:config]")
    parser.add_argument("--out", required=True, help="output folder (gets train/ and val/)")
    tok = parser.add_mutually_exclusive_group(required=True)
    tok.add_argument("--tokenizer", help="path to a tokenizer.json")
    tok.add_argument("--vocab-size", type=int, help="train a tokenizer of this size, saved as OUT/tokenizer.json")
    parser.add_argument("--tokenizer-sample-mb", type=float, default=1024,
                        help="with --vocab-size: train on a seeded sample of this many MB spread over the input "
                             "(default: 1024)")
    records = parser.add_argument_group("records (recorded in the shards; a run asking for others is told)")
    records.add_argument("--text-field", default="text", help="JSONL/Parquet field holding the text (default: text)")
    records.add_argument("--format", choices=["text", "chat"], default="text",
                         help="chat: render messages / conversations turn by turn with their roles")
    records.add_argument("--template", help='fill {field} names from each record, e.g. '
                                            '"Question: {question}\nAnswer: {answer}"')
    records.add_argument("--calculator", choices=["keep", "tags", "strip"], default="keep",
                         help="GSM8K <<expr=value>> notes: keep, tags (<calculation>...</calculation>) or strip")
    records.add_argument("--steps", choices=["keep", "tags"], default="keep",
                         help="tags: wrap each answer/solution line in <step>...</step>")
    records.add_argument("--languages", default="", help="comma list: keep only records/files of these languages")
    records.add_argument("--chat-template", help="tokenizer_config.json whose chat_template renders chat records")
    records.add_argument("--special-tokens", default="",
                         help="comma list, e.g. '<think>,</think>': the plan's stage tokens up to the stage that trains "
                              "on this source, in the plan's order; tags in the text become single ids")
    work = parser.add_argument_group("parts, workers, tasks (see docs/data.md)")
    work.add_argument("--workers", type=int, default=2,
                      help="processes on this machine, one core each, each preparing whole parts (default: 2)")
    work.add_argument("--task", type=int, default=0, help="prepare only the parts with index %% TASKS == TASK")
    work.add_argument("--tasks", type=int, default=1,
                      help="number of tasks sharing the input (e.g. a Slurm job array); the task that finds every "
                           "part done writes the headers")
    work.add_argument("--final", action="store_true",
                      help="prepare nothing: write the headers once every task's parts are done")
    work.add_argument("--restart", action="store_true",
                      help="prepare again the parts OUT holds from a run with other options (default: refuse)")
    work.add_argument("--part-mb", type=float, default=64, help="input megabytes per part (default: 64)")
    parser.add_argument("--val-fraction", type=float, default=0.01,
                        help="share of documents held out by content hash when inputs have no val file")
    clean = parser.add_argument_group("cleaning")
    clean.add_argument("--latex", action="store_true", help="strip LaTeX comments, preamble and bibliography")
    clean.add_argument("--no-dedup", action="store_true", help="keep exact duplicates")
    clean.add_argument("--near-dedup", type=float, metavar="JACCARD", help="drop MinHash near-duplicates above this")
    clean.add_argument("--min-chars", type=int, default=0)
    clean.add_argument("--max-chars", type=int)
    clean.add_argument("--max-symbol-ratio", type=float)
    clean.add_argument("--max-repeated-lines", type=float)
    clean.add_argument("--code-languages", default="", help="comma list, e.g. python,c: keep only those code files")


def run(args: argparse.Namespace) -> int:
    from syllabus.data.cleaning import CleaningOptions
    from syllabus.data.prepare import prepare_shards

    cleaning = CleaningOptions(
        latex=args.latex, exact_dedup=not args.no_dedup, near_dedup=args.near_dedup, min_chars=args.min_chars,
        max_chars=args.max_chars, max_symbol_ratio=args.max_symbol_ratio,
        max_repeated_lines=args.max_repeated_lines,
        code_languages=[s.strip() for s in args.code_languages.split(",") if s.strip()],
    )
    from pydantic import ValidationError

    from syllabus.config.errors import ConfigError
    from syllabus.config.load import describe_error
    from syllabus.config.source import SourceSpec

    given = {"format": args.format, "template": args.template, "calculator": args.calculator, "steps": args.steps,
             "languages": [s.strip() for s in args.languages.split(",") if s.strip()],
             "chat_template": args.chat_template}
    try:
        SourceSpec.model_validate({"path": "-", "text_field": args.text_field, **given})
    except ValidationError as err:
        raise ConfigError([describe_error(SourceSpec, e) for e in err.errors()]) from None
    for name in ("workers", "tasks", "part_mb", "tokenizer_sample_mb"):
        if getattr(args, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')}: must be positive (got {getattr(args, name)})")
    prepare_shards(args.inputs, args.tokenizer, args.out, workers=args.workers, text_field=args.text_field,
                   val_fraction=args.val_fraction, cleaning=cleaning, vocab_size_to_train=args.vocab_size,
                   records=given, special_tokens=[t.strip() for t in args.special_tokens.split(",") if t.strip()],
                   task=args.task, tasks=args.tasks, final=args.final, restart=args.restart,
                   part_bytes=int(args.part_mb * 1e6), tokenizer_sample_bytes=int(args.tokenizer_sample_mb * 1e6))
    return 0
