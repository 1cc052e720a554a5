import torch

from syllabus.config import PreTrainingConfig
from syllabus.config.model import model_config_for
from syllabus.model import Transformer
from syllabus.train.metrics import NullLog
from syllabus.train.schedule import Phase
from syllabus.train.trainer import Trainer


class RowBatches:
    """The same 8 rows every step, handed out in order in micro-batches of any size."""

    def __init__(self, rows: torch.Tensor):
        self.rows, self.cursor = rows, 0

    def next_batch(self, micro_batch_size, seq_len):
        take = self.rows[self.cursor:self.cursor + micro_batch_size, : seq_len + 1]
        self.cursor = (self.cursor + micro_batch_size) % len(self.rows)
        return {"input_ids": take[:, :-1], "labels": take[:, 1:]}


def gradients(micro_batch_size: int, accum: int, rows, tmp_path, batches=RowBatches):
    torch.manual_seed(0)
    model = Transformer(model_config_for("tiny", vocab_size=256, hidden_size=64, num_hidden_layers=2,
                                         num_attention_heads=2, intermediate_size=128))
    config = PreTrainingConfig(mixed_precision="fp32", out_dir=str(tmp_path))
    trainer = Trainer(config, model, tokenizer=None, batches=batches(rows), out_dir=tmp_path,
                      metrics=NullLog())
    loss = trainer.accumulate_gradients(Phase(0, 32, micro_batch_size, accum))
    return loss, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_two_by_four_equals_eight_by_one(tmp_path):
    rows = torch.randint(0, 256, (8, 33), generator=torch.Generator().manual_seed(1))
    loss_a, grads_a = gradients(8, 1, rows, tmp_path)
    loss_b, grads_b = gradients(4, 2, rows, tmp_path)
    loss_c, grads_c = gradients(2, 4, rows, tmp_path)
    assert torch.allclose(loss_a, loss_b, atol=1e-6) and torch.allclose(loss_a, loss_c, atol=1e-6)
    for name in grads_a:
        assert (grads_a[name] - grads_b[name]).abs().max() < 1e-6, name
        assert (grads_a[name] - grads_c[name]).abs().max() < 1e-6, name


class PaddedDocuments:
    """Eight documents of very different lengths, padded to the longest of each micro-batch (packing: false)."""

    def __init__(self, docs):
        from syllabus.data.packing import pad_documents

        self.docs, self.cursor, self.pad = docs, 0, pad_documents

    def next_batch(self, micro_batch_size, seq_len):
        take = self.docs[self.cursor:self.cursor + micro_batch_size]
        self.cursor = (self.cursor + micro_batch_size) % len(self.docs)
        return self.pad([d[: seq_len + 1] for d in take], pad_id=1)


def test_unpacked_documents_weigh_by_tokens_two_by_four_equals_eight_by_one(tmp_path):
    g = torch.Generator().manual_seed(2)
    lengths = [3, 33, 5, 20, 2, 33, 9, 4]
    docs = [torch.randint(2, 256, (n,), generator=g).numpy() for n in lengths]
    loss_a, grads_a = gradients(8, 1, docs, tmp_path, batches=PaddedDocuments)
    loss_c, grads_c = gradients(2, 4, docs, tmp_path, batches=PaddedDocuments)
    # the reference: one mean over every real target token of the eight documents
    assert torch.allclose(loss_a, loss_c, atol=1e-6)
    for name in grads_a:
        assert (grads_a[name] - grads_c[name]).abs().max() < 1e-6, name
