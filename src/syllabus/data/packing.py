"""Rows of token ids -> the batch dict the trainer reads.

A packed row holds ``seq_len + 1`` consecutive tokens of a stream: ``input_ids = row[:-1]``,
``labels = row[1:]``. Documents inside a row are separated by EOS. ``doc_ids[t]`` counts the EOS
tokens strictly before position ``t`` in the row, so the EOS closing a document belongs to it and
the next token starts a new document id; attention restricted to equal ``doc_ids`` keeps every
document to itself. Labels are masked (``-100``) only for tokens stored negative (``loss_on: assistant``:
tokens outside assistant turns) and, in padded (unpacked) batches, on padding.
"""

from __future__ import annotations

import numpy as np
import torch

IGNORE_INDEX = -100


def rows_to_batch(rows: list[np.ndarray], *, eos_id: int, doc_attention: bool = False) -> dict[str, torch.Tensor]:
    """Stack packed rows (each ``seq_len + 1`` tokens) into ``input_ids``/``labels`` [/``doc_ids``]; a negative
    entry ``-(id + 1)`` (not trained on, see :func:`pad_documents`) is input ``id`` with label -100."""
    data = torch.from_numpy(np.stack(rows).astype(np.int64))
    ids = torch.where(data < 0, -data - 1, data)
    labels = torch.where(data[:, 1:] < 0, IGNORE_INDEX, ids[:, 1:])
    batch = {"input_ids": ids[:, :-1].contiguous(), "labels": labels.contiguous()}
    if doc_attention:
        batch["doc_ids"] = doc_ids_of(batch["input_ids"], eos_id)
    return batch


def doc_ids_of(input_ids: torch.Tensor, eos_id: int) -> torch.Tensor:
    is_eos = (input_ids == eos_id).to(torch.int32)
    return (torch.cumsum(is_eos, dim=1, dtype=torch.int32) - is_eos).to(torch.int32)


def pad_documents(docs: list[np.ndarray], *, pad_id: int, doc_attention: bool = False) -> dict[str, torch.Tensor]:
    """Whole documents (each ending in EOS, at most ``seq_len + 1`` tokens) padded to the longest.

    A negative entry ``-(id + 1)`` is token ``id`` that is not trained on (``loss_on: assistant``): it is an
    input as usual, and its label is -100."""
    width = max(len(d) for d in docs) - 1
    input_ids = torch.full((len(docs), max(width, 1)), pad_id, dtype=torch.int64)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for i, doc in enumerate(docs):
        t = torch.from_numpy(np.asarray(doc, dtype=np.int64))
        ids = torch.where(t < 0, -t - 1, t)
        input_ids[i, : len(t) - 1] = ids[:-1]
        labels[i, : len(t) - 1] = torch.where(t[1:] < 0, IGNORE_INDEX, ids[1:])
    batch = {"input_ids": input_ids, "labels": labels}
    if doc_attention:
        batch["doc_ids"] = torch.zeros_like(input_ids, dtype=torch.int32)
    return batch
