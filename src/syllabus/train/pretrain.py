"""``PreTrainer(config).train()``: one stage from a ``PreTrainingConfig`` — sources, tokenizer, model, loop.

This is what ``syllabus pretrain`` runs. The run folder gets ``run_config.yaml`` (with the precision that
``mixed_precision`` resolved to), ``tokenizer.json`` (trained on the data when none is given),
``metrics.jsonl`` and ``checkpoints/``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import yaml

from syllabus.config.errors import ConfigError
from syllabus.config.pretrain import PreTrainingConfig
from syllabus.config.source import SourceSpec
from syllabus.model import Transformer
from syllabus.train import checkpoint as ckpt
from syllabus.train.distributed import DistContext
from syllabus.model.kernels import KernelChoice
from syllabus.train.precision import PrecisionChoice
from syllabus.train.run_lock import RunLock
from syllabus.train.sharded_init import build_model
from syllabus.train.stops import StopRequest
from syllabus.train.trainer import Trainer, TrainResult

log = logging.getLogger("syllabus")


class PreTrainer:
    """``PreTrainer(config).train()``: one stage of training from a ``PreTrainingConfig``.

    ``train()`` returns a ``TrainResult`` (step, tokens_seen, final checkpoint, what stopped it). Side effects:
    joins the ``torchrun`` process group when the environment has one (and leaves it on return or error);
    installs SIGINT/SIGTERM handlers for the run (a first signal finishes the step and saves, a second stops
    at once) and restores the previous ones; takes an advisory lock on ``out_dir/.lock``; on CPU sets glibc's
    malloc to keep freed memory (``host_memory``); writes ``run_config.yaml`` (with a ``precision`` block once
    it is resolved, see ``write_run_config``), ``tokenizer.json`` (trained on the data when none is given),
    ``metrics.jsonl`` and ``checkpoints/`` under ``out_dir``. Raises
    ``ConfigError`` (bad setting, a refused checkpoint, a folder in use) and ``RunHalted`` (the run stopped
    itself, its newest checkpoint intact)."""

    def __init__(self, config: PreTrainingConfig):
        self.config = config
        self.out_dir = Path(config.out_dir)
        self.checkpoint_dir = Path(config.checkpoint_dir or self.out_dir / "checkpoints")

    def train(self) -> TrainResult:
        cfg = self.config
        check_data(cfg)  # the data first: before a warning, a tokenizer or a file in out_dir
        dist = DistContext.from_env(cfg.device, cfg.strategy, cfg.dist_timeout_seconds)
        if not dist.is_main:  # one voice: rank 0 logs; the others only warn and fail
            log.setLevel(max(log.level, logging.WARNING))
        else:
            for warning in cfg.schedule_warnings():
                log.warning("%s", warning)
        try:
            return self._train(dist)
        except BaseException as err:
            if dist.world_size > 1:
                log.error("rank %d of %d failed: %s: %s", dist.rank, dist.world_size, type(err).__name__, err)
            raise
        finally:
            dist.close()  # every rank, on success, error or signal

    def _train(self, dist: DistContext) -> TrainResult:
        from syllabus.data import iter_eval_batches, open_batches

        cfg = self.config = local_init_from(self.config, dist)
        sources, weights = resolve_sources(cfg)
        with StopRequest() as stop, RunLock(self.out_dir, rank=dist.rank):
            if dist.is_main:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                write_run_config(self.out_dir, cfg)
            tokenizer = obtain_tokenizer(cfg, sources, self.out_dir, dist)
            torch.manual_seed(cfg.seed)  # the same on every rank: every rank builds the same model
            model = start_model(cfg, tokenizer.get_vocab_size(), dist)
            batches = open_batches(sources, weights, tokenizer, seed=cfg.seed, rank=dist.rank,
                                   world_size=dist.world_size, doc_attention=cfg.doc_attention,
                                   num_workers=cfg.num_workers, packed=cfg.packing)
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
                try:
                    trainer.restore(start)
                except ckpt.CheckpointError as err:  # refused (e.g. holds code): nothing was run, say so plainly
                    raise ConfigError(f"resume: {err}") from None
            if dist.is_main:
                write_run_config(self.out_dir, cfg, trainer.precision, trainer.kernels)  # as resolved (and kept)
                log.info("model: %.2fM parameters; %d tokens per step; %d rank(s), %s; run folder %s",
                         model.num_parameters() / 1e6, cfg.tokens_per_step * dist.world_size, dist.world_size,
                         dist.strategy, self.out_dir)
            try:
                return trainer.train()
            finally:
                trainer.metrics.close()


def check_data(cfg: PreTrainingConfig) -> None:
    """Refuse, in one line per source, data that is not there (``ConfigError``), before anything else runs."""
    from syllabus.data.sources import missing_sources

    sources, _ = resolve_sources(cfg)
    field = "data_sources" if cfg.data_sources else "data_dir"
    problems = missing_sources({f"{field} {name}" if len(sources) > 1 else field: spec.path
                                for name, spec in sources.items()})
    if problems:
        raise ConfigError(problems)


def write_run_config(out_dir: Path, cfg: PreTrainingConfig, precision: PrecisionChoice | None = None,
                     kernels: KernelChoice | None = None) -> None:
    """Write ``out_dir/run_config.yaml``: every field of ``cfg`` as given (``mixed_precision: auto`` stays
    ``auto``), then, once the trainer has resolved it, a ``precision`` block: ``requested``, ``chosen`` (fp32,
    bf16, fp16), ``reason`` and ``peaks`` (the measured matmul peaks, FLOP/s), as in a checkpoint's
    ``run_config.json``, and a ``kernels`` block (``KernelChoice.to_dict()``: the attention path and loss group
    measured fastest on this machine). The file still reads back as ``--config``: the config drops both blocks
    (see ``PreTrainingConfig``). Replaces the file; the caller is the main rank."""
    data = cfg.model_dump()
    if precision is not None:
        data["precision"] = precision.to_dict()
    if kernels is not None:
        data["kernels"] = kernels.to_dict()
    (out_dir / "run_config.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def resolve_sources(cfg: PreTrainingConfig) -> tuple[dict[str, SourceSpec], dict[str, float]]:
    """Name → source of every source (with the config's record options), and their weights (equal when none
    are given). A name in ``data_sources`` resolves under ``data_dir`` first (a folder ``NAME/`` or a file
    ``NAME.jsonl``, ``NAME.parquet``, …), then as a path; a name that matches nothing is a ``ConfigError``
    listing what ``data_dir`` holds."""
    paths = [_resolve_under(cfg.data_dir, name) for name in cfg.data_sources] or \
        ([cfg.data_dir] if cfg.data_dir else [])
    if not paths:
        raise ConfigError("data_dir: give a data folder (or data_sources: a list of paths)")
    options = cfg.record_options()
    sources: dict[str, SourceSpec] = {}
    for path in paths:
        name = Path(path.rstrip("/")).name.split(".")[0] or "data"
        while name in sources:
            name += "_"
        sources[name] = SourceSpec(path=path, **options)
    weights = cfg.data_mix_weights or [1.0 / len(paths)] * len(paths)
    return sources, dict(zip(sources, weights))


DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".ndjson", ".parquet", ".txt")


def _resolve_under(data_dir: str | None, name: str) -> str:
    if name.startswith("hf:"):
        return name
    if data_dir:
        base = Path(data_dir)
        for candidate in [base / name] + [base / f"{name}{suffix}" for suffix in DATA_SUFFIXES]:
            if candidate.exists():
                return str(candidate)
    if Path(name).exists() or any(ch in name for ch in "*?[/") or Path(name).suffix:
        return name  # a path: the reader names it if it is missing
    if data_dir and Path(data_dir).is_dir():
        held = sorted(p.name + ("/" if p.is_dir() else "") for p in Path(data_dir).iterdir()
                      if not p.name.startswith("."))
        raise ConfigError(f"data_sources: '{name}' is neither a folder nor a data file in data_dir {data_dir} "
                          f"(it holds: {', '.join(held[:20]) or 'nothing'}) nor a path")
    raise ConfigError(f"data_sources: '{name}' not found" + (f" (data_dir {data_dir} does not exist)"
                                                             if data_dir else ""))


def obtain_tokenizer(cfg: PreTrainingConfig, sources: dict[str, str], out_dir: Path, dist: DistContext):
    """The given tokenizer; else the run folder's (a resumed run); else the shards'; else train one."""
    from syllabus.data import load_tokenizer, save_tokenizer, train_tokenizer
    from syllabus.data.tokenizer import training_sample

    candidates = [cfg.tokenizer] if cfg.tokenizer else []
    candidates += [out_dir / "tokenizer.json"] + ([Path(cfg.init_from) / "tokenizer.json"] if cfg.init_from else [])
    candidates += [Path(s.path) / "tokenizer.json" for s in sources.values()]
    for path in candidates:
        if Path(path).is_file():
            return load_tokenizer(path)
    if cfg.tokenizer:
        raise ConfigError(f"tokenizer: {cfg.tokenizer} does not exist")
    if dist.is_main:
        log.info("training a %d-token BPE tokenizer on the data", cfg.vocab_size)
        save_tokenizer(train_tokenizer(training_sample(list(sources.values())), cfg.vocab_size),
                       out_dir / "tokenizer.json")
    dist.barrier()
    return load_tokenizer(out_dir / "tokenizer.json")


def local_init_from(cfg: PreTrainingConfig, dist: DistContext) -> PreTrainingConfig:
    """``cfg`` with ``init_from`` a checked local folder (``hf:`` ids downloaded by the main rank first, the others
    then read the cache); ``cfg`` itself without one. Raises ``ConfigError`` for an unsupported checkpoint, a
    ``max_seq_length`` beyond its context or its sliding window."""
    if cfg.init_from is None:
        return cfg
    from syllabus.hf.architectures import check_sliding_window
    from syllabus.hf.folder import read_hf_config, resolve_hf_folder

    folder = resolve_hf_folder(cfg.init_from, "init_from") if dist.is_main else None
    dist.barrier()
    folder = folder or resolve_hf_folder(cfg.init_from, "init_from")
    shape = read_hf_config(folder, "init_from")
    if cfg.max_seq_length > shape.max_position_embeddings:
        raise ConfigError(f"max_seq_length: {cfg.max_seq_length} exceeds the checkpoint's max_position_embeddings "
                          f"({shape.max_position_embeddings})")
    check_sliding_window(shape, cfg.max_seq_length, "init_from")
    return cfg.model_copy(update={"init_from": str(folder)})


def start_model(cfg: PreTrainingConfig, tokenizer_size: int, dist: DistContext) -> Transformer:
    """The model a run starts from (before any checkpoint is restored): the ``init_from`` checkpoint (under FSDP2
    a meta model each rank fills with its own slices; under DDP read by the main rank only, see
    ``hf/sharded.py``), else fresh weights of the configured shape with the tokenizer's size rounded up (under
    FSDP2 built on the meta device and initialised shard by shard, ``train/sharded_init.py``). Raises
    ``ConfigError`` when the tokenizer has more ids than the checkpoint's embedding."""
    if cfg.init_from is None:  # under FSDP2 on the meta device, sharded then initialised: no rank holds it all
        return build_model(cfg.model_shape(vocab_size=padded_vocab_size(tokenizer_size)), sharded=dist.sharded)
    from syllabus.hf.sharded import start_from_hf

    model = start_from_hf(cfg.init_from, sharded=dist.sharded, reads=dist.is_main)
    if tokenizer_size > model.config.vocab_size:
        raise ConfigError(f"tokenizer: {tokenizer_size} ids do not fit the checkpoint's {model.config.vocab_size} "
                          f"embedding rows (use the checkpoint's own tokenizer, or a plan's special_tokens)")
    return model


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

