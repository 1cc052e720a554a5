"""Sharded checkpoints (FSDP2): ``torch.distributed.checkpoint`` (DCP) inside the usual checkpoint folder.

A sharded ``step_<N>/`` holds ``sharded/`` (DCP: ``.metadata`` plus one ``__<rank>_0.distcp`` per rank, with
the model under ``model.`` and the optimizer under ``optim.``, both keyed by parameter name) beside the
files every checkpoint has: ``trainer_state.pt`` (counters, RNG, data position — no optimizer),
``model_config.json``, ``run_config.json``, ``tokenizer.json`` and last ``manifest.json`` listing every file,
shards included. Like the single-file format it is written to a temporary folder and renamed into place, so
a torn save is detected by ``checkpoint.verify_checkpoint`` and skipped.

DCP reshards on load, so a checkpoint written by N ranks loads into M ranks under FSDP2, into DDP or a
single process (each rank then reads full tensors, no collectives), and into a bare model for export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

from syllabus.checkpoints.folder import MANIFEST, SHARDED_DIR, STATE_FILE, describe_file
from syllabus.checkpoints.load import is_sharded, load_full_model_state, read_sharded  # noqa: F401 (re-exported)
from syllabus.train import checkpoint as ckpt
from syllabus.train import faults
from syllabus.train.background_save import BackgroundSave


def save_sharded_checkpoint(root: str | Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                            trainer_state: dict, *, is_main: bool, json_files: dict[str, dict],
                            text_files: dict[str, str] | None = None) -> Path:
    """Collective: every rank writes its shards; the main rank writes the rest, the manifest, and renames."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    tmp, final = _begin(Path(root), step, is_main)
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp / SHARDED_DIR))
    if is_main:
        _finish(tmp, final, step, trainer_state, json_files, text_files)
    _barrier()
    return final


def save_sharded_checkpoint_async(root: str | Path, step: int, model: torch.nn.Module,
                                  optimizer: torch.optim.Optimizer, trainer_state: dict, *, is_main: bool,
                                  json_files: dict[str, dict], text_files: dict[str, str] | None,
                                  background: BackgroundSave, keep: int) -> Path:
    """Collective, returns once every rank's shards are staged in host memory: ``dcp.async_save`` writes them
    in the background (over a gloo group of its own, so the training collectives are not held up), then the
    main rank writes the rest, the manifest, renames and prunes to ``keep`` on ``background``'s thread.

    ``trainer_state`` must already be a host copy. Waits first for the save in flight (at most one)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict

    background.wait()
    root = Path(root)
    tmp, final = _begin(root, step, is_main)
    model_state, optim_state = get_state_dict(model, optimizer)
    response = dcp.async_save({"model": model_state, "optim": optim_state}, checkpoint_id=str(tmp / SHARDED_DIR),
                              process_group=_async_group())
    written = getattr(response, "upload_completion", response)  # a Future either way

    def finish() -> Path | None:
        written.result()  # this rank's shards are on disk; on the main rank, every rank's and the metadata too
        if not is_main:
            return None
        faults.slow_save(step)
        _finish(tmp, final, step, trainer_state, json_files, text_files)
        ckpt.prune_checkpoints(root, keep)
        return final

    background.start(step, finish)
    return final


def _begin(root: Path, step: int, is_main: bool) -> tuple[Path, Path]:
    """The temporary folder (made by the main rank, the same name on every rank) and the final one."""
    tmp = root / f".tmp-step_{step}-sharded"
    if is_main:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    _barrier()
    return tmp, root / f"step_{step}"


def _finish(tmp: Path, final: Path, step: int, trainer_state: dict, json_files: dict[str, dict],
            text_files: dict[str, str] | None) -> None:
    """Main rank, once every shard is written: the other files, the manifest last, then the rename."""
    torch.save(trainer_state, tmp / STATE_FILE)
    for name, payload in json_files.items():
        (tmp / name).write_text(json.dumps(payload, indent=2, sort_keys=True))
    for name, text in (text_files or {}).items():
        (tmp / name).write_text(text)
    files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    for name in files:
        ckpt._fsync_file(tmp / name)
    manifest = {"step": step, "format": "dcp", "files": {name: describe_file(tmp / name) for name in files}}
    ckpt._write_synced(tmp / MANIFEST, json.dumps(manifest, indent=2))
    ckpt._fsync_dir(tmp / SHARDED_DIR)
    ckpt._fsync_dir(tmp)
    ckpt._replace_dir(tmp, final)
    ckpt._fsync_dir(final.parent)


_GROUP: dict = {}


def _async_group():
    """A gloo process group for background checkpoint collectives, made (collectively) once per default group."""
    world = dist.group.WORLD
    if _GROUP.get("world") is not world:
        _GROUP.update(world=world, group=dist.new_group(backend="gloo"))
    return _GROUP["group"]


def load_sharded_into(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
                      collective: bool) -> None:
    """Load a sharded checkpoint into ``model`` and ``optimizer``, whatever their layout.

    ``collective`` is True under FSDP2 (every rank takes part and reads its own shards); otherwise each
    process reads full tensors on its own (one process, or each DDP rank)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optim": optim_state}
    read_sharded(state, path, collective)
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def load_full_into_sharded(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           model_state: dict[str, torch.Tensor], optimizer_state: dict) -> None:
    """Load a single-folder checkpoint (full weights, ``optimizer.state_dict()``) into an FSDP2 model.

    The saved optimizer state is keyed by position; positions are turned into parameter names through this
    optimizer's own parameter order, which ``build_optimizer`` makes the same for every run of a model."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    if getattr(model.config, "tie_word_embeddings", False) and "lm_head.weight" not in model_state:
        model_state = {**model_state, "lm_head.weight": model_state["model.embed_tokens.weight"]}
    names = {id(p): name for name, p in model.named_parameters()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    by_name = {"state": {order[i]: s for i, s in optimizer_state["state"].items()},
               "param_groups": [{**g, "params": [order[i] for i in g["params"]]}
                                for g in optimizer_state["param_groups"]]}
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=by_name,
                   options=StateDictOptions(full_state_dict=True))


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
