"""The tokenizer's training text: a bounded, seeded sample spread over the whole input.

The input's parts are cut into small *sample units* (1 MB byte ranges of uncompressed JSONL, single Parquet row
groups, whole other files, hub shards); a ``random.Random(seed)`` permutation of all units is read in order until
``sample_bytes`` of cleaned training text (UTF-8) is collected. So the sample reaches every region of the input,
is the same on every run, machine and task with the same seed, and costs at most ``sample_bytes`` (plus the one
document that crosses the bound) of reading: ``prepare`` reads the corpus once in full, not twice.

Default size (``DEFAULT_SAMPLE_BYTES``, 1 GB): Reddy et al., "How Much is Enough? The Diminishing Returns of
Tokenization Training Data" (2025) train BPE tokenizers on 1 GB to 900 GB of English and find that quality
saturates around 150 GB, with diminishing returns all along; 1 GB is the low end of the range they study and
what the BPE trainer of ``tokenizers`` (which keeps a count per distinct pre-token in memory) trains in minutes
on a workstation. A production tokenizer may well use more: ``--tokenizer-sample-bytes``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

from syllabus.config.source import SourceSpec
from syllabus.data.cleaning import clean_latex, quality_problem
from syllabus.data.part_writer import PartJob, content_hash, iter_piece
from syllabus.data.parts import Part, Piece
from syllabus.data.records import RecordRenderer
from syllabus.data.sources import is_hub_spec, is_jsonl, split_of_text

DEFAULT_SAMPLE_BYTES = 1 << 30
SAMPLE_UNIT_BYTES = 1 << 20
DEFAULT_SAMPLE_SEED = 0


def sample_units(parts: list[Part], unit_bytes: int | None = None) -> list[Piece]:
    """The parts' pieces cut into sample units (see the module docstring), in input order."""
    unit_bytes = unit_bytes or SAMPLE_UNIT_BYTES
    units: list[Piece] = []
    for part in parts:
        for p in part.pieces:
            path = p.path.lower()
            if not is_hub_spec(p.path) and is_jsonl(p.path) and not path.endswith((".gz", ".zst")):
                units += [Piece(p.path, s, min(s + unit_bytes, p.stop), p.split, min(unit_bytes, p.stop - s))
                          for s in range(p.start, p.stop, unit_bytes)]
            elif path.endswith(".parquet") and p.stop - p.start > 1:
                units += [Piece(p.path, g, g + 1, p.split, p.bytes // (p.stop - p.start))
                          for g in range(p.start, p.stop)]
            else:
                units.append(p)
    return units


def sample_texts(parts: list[Part], job: PartJob, sample_bytes: int = DEFAULT_SAMPLE_BYTES,
                 seed: int = DEFAULT_SAMPLE_SEED) -> Iterator[str]:
    """Cleaned, deduplicated training documents from a seeded permutation of the sample units, until
    ``sample_bytes`` of text (UTF-8 bytes) has been yielded."""
    units = sample_units(parts)
    random.Random(seed).shuffle(units)
    renderer = RecordRenderer(SourceSpec.model_validate({"path": "-", **job.spec}))
    opts = job.cleaning
    seen: set[bytes] = set()
    total = 0
    for unit in units:
        for text in iter_piece(unit, Counter(), renderer, job.max_doc_bytes, Counter(), opts.code_languages):
            if opts.latex:
                text = clean_latex(text)
            if quality_problem(text, opts) or (unit.split or split_of_text(text, job.val_fraction)) != "train":
                continue
            digest = content_hash(text)
            if digest in seen:
                continue
            seen.add(digest)
            yield text
            total += len(text.encode("utf-8", "surrogatepass"))
            if total >= sample_bytes:
                return
