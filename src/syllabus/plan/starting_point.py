"""``model: {from: ...}`` resolved at the door: the Hugging Face folder a plan's first stage starts from.

Done once, before any stage is resolved: ``hf:owner/name[@revision]`` is downloaded (by the main rank first; the
others then find it in the cache), the folder's config is read and checked against the plan (architecture,
context, sliding window against the longest ``seq_len``), and chat sources that set no ``chat_template`` get the
model's own. The plan returned names the local folder, so nothing downstream touches the network.
"""

from __future__ import annotations

import json
from pathlib import Path

from syllabus.config.errors import ConfigError
from syllabus.config.plan import PlanConfig
from syllabus.hf.architectures import check_sliding_window
from syllabus.hf.folder import read_hf_config, resolve_hf_folder
from syllabus.train.distributed import DistContext


def resolve_starting_point(plan: PlanConfig, dist: DistContext) -> PlanConfig:
    """``plan`` with ``model.from`` a checked local folder and the model's chat template on chat sources that
    set none (``loss_on: assistant`` keeps the default rendering); ``plan`` itself when it has no ``model.from``.
    Raises ``ConfigError`` (one line) for an unreadable or unsupported checkpoint or a shape the plan exceeds."""
    source = plan.model.from_
    if source is None:
        return plan
    if dist.is_main:
        folder = resolve_hf_folder(source)
    dist.barrier()
    if not dist.is_main:
        folder = resolve_hf_folder(source)
    config = read_hf_config(folder)
    longest = max(plan.training_config(i).max_seq_length for i in range(len(plan.stages)))
    if longest > config.max_position_embeddings:
        raise ConfigError(f"model.from: the longest seq_len {longest} exceeds the checkpoint's "
                          f"max_position_embeddings ({config.max_position_embeddings})")
    check_sliding_window(config, longest)
    sources = dict(plan.sources)
    if _has_chat_template(folder):
        for name in sources:
            spec = plan.source_spec(name)
            if spec.format == "chat" and spec.chat_template is None and spec.loss_on == "all":
                sources[name] = spec.model_copy(update={"chat_template": str(_template_file(folder))})
    model = plan.model.model_copy(update={"from_": str(folder)})
    return plan.model_copy(update={"model": model, "sources": sources})


def _template_file(folder: Path) -> Path:
    """The file a source's ``chat_template`` option names (``data/records.py`` reads its ``chat_template``)."""
    return Path(folder) / "tokenizer_config.json"


def _has_chat_template(folder: Path) -> bool:
    file = _template_file(folder)
    return file.is_file() and bool(json.loads(file.read_text()).get("chat_template"))
