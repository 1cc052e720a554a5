"""Data: sources, cleaning, tokenizer, token shards, packed streams, mixtures with replay.

The trainer's contract is :func:`open_batches` (-> :class:`Batches`), :func:`iter_eval_batches` and
:func:`epoch_tokens`. Nothing here knows about models or optimizers.
"""

from syllabus.data.batches import Batches, epoch_tokens, iter_eval_batches, open_batches, open_source
from syllabus.data.mixture import DataExhausted, MixedDomainDataset, with_replay
from syllabus.data.shard_stream import ShardRowStream
from syllabus.data.text_stream import TextStreamDataset
from syllabus.data.tokenizer import (EOS, PAD, add_special_tokens, eos_id, load_tokenizer, pad_id, save_tokenizer,
                                     tokenizer_fingerprint, train_tokenizer)

__all__ = [
    "Batches", "DataExhausted", "EOS", "MixedDomainDataset", "PAD", "ShardRowStream", "TextStreamDataset",
    "add_special_tokens", "create_sample_pretraining_data", "eos_id", "epoch_tokens", "iter_eval_batches",
    "load_tokenizer", "open_batches", "open_source", "pad_id", "prepare_shards", "save_tokenizer",
    "tokenizer_fingerprint", "train_tokenizer", "with_replay", "build_demo_corpus",
]


def __getattr__(name: str):  # heavier entry points load on first use
    if name == "prepare_shards":
        from syllabus.data.prepare import prepare_shards

        return prepare_shards
    if name == "create_sample_pretraining_data":
        from syllabus.data.samples import create_sample_pretraining_data

        return create_sample_pretraining_data
    if name == "build_demo_corpus":
        from syllabus.data.corpus import build_demo_corpus

        return build_demo_corpus
    raise AttributeError(name)
