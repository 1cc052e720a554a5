"""``PreTrainer(config).train()``: one stage from a ``PreTrainingConfig`` — sources, tokenizer, model, loop.

This is what ``syllabus pretrain`` runs. The run folder gets ``run_config.yaml``, ``tokenizer.json``
(trained on the data when none is given), ``metrics.jsonl`` and ``checkpoints/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import yaml

from syllabus.config.errors import ConfigError
from syllabus.config.pretrain import PreTrainingConfig
from syllabus.model import Transformer
from syllabus.train import checkpoint as ckpt
from syllabus.train.distributed import DistContext
from syllabus.train.run_lock import RunLock
from syllabus.train.stops import StopRequest
from syllabus.train.trainer import Trainer, TrainResult

log = logging.getLogger("syllabus")

TOKENIZER_SAMPLE_CHARS = 20_000_000  # text read to train a tokenizer when none is given


class PreTrainer:
    def __init__(self, config: PreTrainingConfig):
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.checkpoint_dir = Path(config.checkpoint_dir or self.out_dir / "checkpoints")

    def train(self) -> TrainResult:
        from syllabus.data import iter_eval_batches, open_batches

        cfg = self.config
        dist = DistContext.from_env(cfg.device)
        sources, weights = resolve_sources(cfg)
        with StopRequest() as stop, RunLock(self.out_dir, enabled=dist.is_main):
            if dist.is_main:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / "run_config.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
            tokenizer = obtain_tokenizer(cfg, sources, self.out_dir, dist)
            torch.manual_seed(cfg.seed)
            model = Transformer(cfg.model_shape(vocab_size=padded_vocab_size(tokenizer.get_vocab_size())))
            batches = open_batches(sources, weights, tokenizer, seed=cfg.seed, rank=dist.rank,
                                   world_size=dist.world_size, doc_attention=cfg.doc_attention,
                                   num_workers=cfg.num_workers)
            eval_batches = {
                name: (lambda path=path: iter_eval_batches(path, tokenizer, seq_len=cfg.max_seq_length,
                                                           batch_size=cfg.micro_batch_size,
                                                           max_batches=cfg.eval_batches))
                for name, path in sources.items()
            }
            trainer = Trainer(cfg, model, tokenizer, batches, out_dir=self.out_dir,
                              checkpoint_dir=self.checkpoint_dir, eval_batches=eval_batches, dist=dist,
                              stop=stop)
            start = find_resume_point(cfg.resume, self.checkpoint_dir)
            if start is not None:
                trainer.restore(start)
            if dist.is_main:
                log.info("model: %.2fM parameters; %d tokens per step; run folder %s",
                         model.num_parameters() / 1e6, cfg.tokens_per_step * dist.world_size, self.out_dir)
            try:
                return trainer.train()
            finally:
                if trainer.metrics is not None:
                    trainer.metrics.close()


def resolve_sources(cfg: PreTrainingConfig) -> tuple[dict[str, str], dict[str, float]]:
    """Name → path of every source, and their weights (equal when none are given)."""
    paths = list(cfg.data_sources) or ([cfg.data_dir] if cfg.data_dir else [])
    if not paths:
        raise ConfigError("data_dir: give a data folder (or data_sources: a list of paths)")
    sources: dict[str, str] = {}
    for path in paths:
        name = Path(path.rstrip("/")).stem or "data"
        while name in sources:
            name += "_"
        sources[name] = path
    weights = cfg.data_mix_weights or [1.0 / len(paths)] * len(paths)
    return sources, dict(zip(sources, weights))


def obtain_tokenizer(cfg: PreTrainingConfig, sources: dict[str, str], out_dir: Path, dist: DistContext):
    """The given tokenizer; else the run folder's (a resumed run); else the shards'; else train one."""
    from syllabus.data import load_tokenizer, save_tokenizer, train_tokenizer
    from syllabus.data.sources import read_documents

    candidates = [cfg.tokenizer] if cfg.tokenizer else []
    candidates += [out_dir / "tokenizer.json"] + [Path(p) / "tokenizer.json" for p in sources.values()]
    for path in candidates:
        if Path(path).is_file():
            return load_tokenizer(path)
    if cfg.tokenizer:
        raise ConfigError(f"tokenizer: {cfg.tokenizer} does not exist")
    if dist.is_main:
        budget = TOKENIZER_SAMPLE_CHARS // len(sources)
        log.info("training a %d-token BPE tokenizer on the data", cfg.vocab_size)
        texts = (t for path in sources.values() for t in _chars_upto(read_documents(path), budget))
        save_tokenizer(train_tokenizer(texts, cfg.vocab_size), out_dir / "tokenizer.json")
    dist.barrier()
    return load_tokenizer(out_dir / "tokenizer.json")


def _chars_upto(texts, budget: int):
    used = 0
    for text in texts:
        if used >= budget:
            return
        used += len(text)
        yield text


def padded_vocab_size(n: int, multiple: int = 64) -> int:
    """Embedding rows: the tokenizer's size rounded up (faster matmuls; room for special tokens)."""
    return -(-n // multiple) * multiple


def find_resume_point(resume: str | None, checkpoint_dir: Path) -> Path | None:
    if resume is None:
        return None
    if resume == "auto":
        found = ckpt.latest_valid_checkpoint(checkpoint_dir)
        if found is None:
            log.info("no checkpoint in %s yet; starting fresh", checkpoint_dir)
        return found
    try:
        return ckpt.resolve_checkpoint(resume)
    except ckpt.CheckpointError as err:
        raise ConfigError(f"resume: {err}") from None

