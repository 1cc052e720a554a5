"""Byte-level BPE tokenizer: train on the user's text, save, load, fingerprint, grow.

Invariants kept here:
- digits are split one per token (``Digits(individual_digits=True)`` before ``ByteLevel``), so
  "342 + 567 = 909" keeps its place-value structure;
- ``decode(encode(s)) == s`` for any text (byte-level pre-tokenizer and decoder, no prefix space,
  no normalizer);
- ``EOS`` has id 0 and ``PAD`` id 1 in tokenizers trained here; no BOS is added automatically;
- what a sequence starts with (its BOS) is decided in one place, :func:`sequence_start_ids`, from the
  tokenizer itself; text is encoded without special tokens (:func:`encode_text`) and that start put in front
  once, so evaluation, scoring and generation see one BOS whatever the tokenizer's post-processor adds;
- a tokenizer brought along (a Hugging Face model's) keeps its own rule: documents start with BOS exactly when
  its post-processor puts one in front (:func:`bos_id`), and end with its own end-of-text token;
- :func:`add_special_tokens` appends new ids at the end, so existing ids (and embeddings) stay.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from syllabus.config.errors import ConfigError

EOS = "<|endoftext|>"
PAD = "<|pad|>"

# Names under which existing tokenizers (GPT-2, LLaMA, BERT-style, ...) keep their end token.
EOS_NAMES = (EOS, "</s>", "<eos>", "[EOS]", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>", "[SEP]")
PAD_NAMES = (PAD, "<pad>", "[PAD]", "<|padding|>")


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE tokenizer with ``vocab_size`` entries (special tokens included)."""
    if vocab_size < 256 + 2:
        raise ConfigError(f"vocab_size: must be at least 258 (256 bytes + EOS + PAD), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def save_tokenizer(tok: Tokenizer, path: str | Path) -> Path:
    """Write ``tokenizer.json`` (``path`` may be the file or a folder to put it in)."""
    path = Path(path)
    if path.suffix != ".json":
        path = path / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a ``tokenizer.json`` (ours or any other, e.g. GPT-2's); it must have an end-of-text token."""
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"tokenizer: file not found: {path}")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as err:  # the Rust side raises a plain Exception with its own message
        raise ConfigError(f"tokenizer: cannot read {path}: {err}") from err
    if _first_id(tok, EOS_NAMES) is None:
        raise ConfigError(f"tokenizer: {path} has no end-of-text token (looked for {', '.join(EOS_NAMES)})")
    return tok


def as_tokenizer(tokenizer: Tokenizer | str | Path) -> Tokenizer:
    """Accept a loaded tokenizer or a path to one."""
    return tokenizer if isinstance(tokenizer, Tokenizer) else load_tokenizer(tokenizer)


def _first_id(tok: Tokenizer, names: Iterable[str]) -> int | None:
    for name in names:
        token_id = tok.token_to_id(name)
        if token_id is not None:
            return token_id
    return None


def eos_id(tok: Tokenizer) -> int:
    token_id = _first_id(tok, EOS_NAMES)
    if token_id is None:
        raise ConfigError(f"tokenizer has no end-of-text token (looked for {', '.join(EOS_NAMES)})")
    return token_id


def bos_id(tok: Tokenizer) -> int | None:
    """The id the tokenizer's post-processor puts in front of every encoded text (Llama 2's ``<s>``, Llama 3's
    ``<|begin_of_text|>``), or None when it puts nothing there (GPT-2, Qwen, tokenizers trained here).

    Decided by encoding a probe with and without special tokens, so any post-processor kind (template, BERT,
    RoBERTa, a sequence of them) answers the same way. Training documents are ``[BOS] text EOS`` with such a
    tokenizer, as the model saw them, and ``text EOS`` without one."""
    plain = tok.encode("a", add_special_tokens=False).ids
    full = tok.encode("a").ids
    if len(full) > len(plain) and full[1:1 + len(plain)] == plain:
        return full[0]
    return None


def special_token_names(tok: Tokenizer) -> dict[str, str | None]:
    """The tokenizer's own ``bos``, ``eos``, ``unk`` and ``pad`` token strings (None where it has no such token;
    a tokenizer without a padding token pads with its end-of-text, as :func:`pad_id` does)."""
    bos = bos_id(tok)
    unk = json.loads(tok.to_str()).get("model", {}).get("unk_token")
    return {"bos": None if bos is None else tok.id_to_token(bos), "eos": tok.id_to_token(eos_id(tok)),
            "unk": unk if unk is not None and tok.token_to_id(unk) is not None else None,
            "pad": tok.id_to_token(pad_id(tok))}


def pad_id(tok: Tokenizer) -> int:
    """The padding id; tokenizers without one (GPT-2) pad with EOS (padding is masked anyway)."""
    token_id = _first_id(tok, PAD_NAMES)
    return eos_id(tok) if token_id is None else token_id


def sequence_start_ids(tok: Tokenizer) -> list[int]:
    """The token ids a sequence starts with when the model reads a document from its beginning: the one place
    evaluation, scoring and generation take their BOS from.

    Decided from the tokenizer alone: the token its post-processor puts before the text (:func:`bos_id`: a
    Llama tokenizer's ``<s>``, the ``<|endoftext|>`` of syllabus's Hugging Face export), else syllabus's own
    convention for tokenizers that add nothing (those trained here, GPT-2's, Qwen's): the end-of-text token, the
    document separator every training document follows. Returns ``[]`` for a tokenizer that adds nothing and
    has no end-of-text token. Pure; a few microseconds (two encodes of a one-character probe).

    Use it with :func:`encode_text` (never ``encode`` with special tokens on, which would add the start a
    second time): ``sequence_start_ids(tok) + encode_text(tok, text)``."""
    bos = bos_id(tok)
    if bos is not None:
        return [bos]
    eos = _first_id(tok, EOS_NAMES)
    return [] if eos is None else [eos]


def encode_text(tok: Tokenizer, text: str) -> list[int]:
    """The ids of ``text`` with no special token added (how training encodes documents); a special token
    written in the text (``<think>``) is still one id."""
    return tok.encode(text, add_special_tokens=False).ids


def vocab_size(tok: Tokenizer) -> int:
    return tok.get_vocab_size(with_added_tokens=True)


def tokenizer_fingerprint(tok: Tokenizer) -> str:
    """A stable hash of everything that decides token ids (model, pre-tokenizer, added tokens)."""
    canonical = json.dumps(json.loads(tok.to_str()), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def add_special_tokens(tok: Tokenizer, tokens: list[str]) -> list[int]:
    """Add ``tokens`` as single special tokens with new ids at the end; return the ids of all of them.

    A token the tokenizer already has (Qwen's ``<think>``) keeps its id and row: it is reused, not duplicated, so
    ids at or above the old size are exactly the new ones. Raises ``ConfigError`` for a token listed twice."""
    repeated = sorted({t for t in tokens if tokens.count(t) > 1})
    if repeated:
        raise ConfigError([f"special token {t!r} is listed more than once" for t in repeated])
    tok.add_special_tokens([t for t in tokens if tok.token_to_id(t) is None])
    return [tok.token_to_id(t) for t in tokens]


def training_sample(paths: list, max_chars: int = 20_000_000) -> Iterator[str]:
    """Documents of the sources' training splits (paths or ``SourceSpec``s, rendered with their record
    options), about ``max_chars`` in all, shared evenly between them."""
    from syllabus.config.source import as_source_spec
    from syllabus.data.records import RecordRenderer
    from syllabus.data.hub import read_hub
    from syllabus.data.sources import files_for_split, is_hub_spec, read_documents, resolve_files

    budget = max_chars // max(1, len(paths))
    for path in paths:
        spec = as_source_spec(path)
        renderer = RecordRenderer(spec)
        if is_hub_spec(spec.path):
            texts = read_hub(spec.path, Counter(), renderer=renderer)
        else:
            files, _ = files_for_split(resolve_files(spec.path), "train")
            texts = (text for file in files for text in read_documents(file, renderer=renderer))
        used = 0
        for text in texts:
            if used >= budget:
                break
            used += len(text)
            yield text
