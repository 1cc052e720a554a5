"""A Hugging Face model folder as a starting point: where it is, its config, its tokenizer's settings.

``resolve_hf_folder`` turns ``hf:owner/name[@revision]`` into a local snapshot through ``huggingface_hub``
(network, cached under its usual cache folder) and checks a local folder has what a start needs.
"""

from __future__ import annotations

import json
from pathlib import Path

from syllabus.config.errors import ConfigError
from syllabus.config.model import ModelConfig
from syllabus.hf.architectures import model_config_from_hf

HUB_PREFIX = "hf:"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")


def resolve_hf_folder(source: str | Path, where: str = "model.from") -> Path:
    """The local folder of ``source``: a path, or ``hf:owner/name[@revision]`` downloaded (config, safetensors,
    tokenizer files only) with ``huggingface_hub.snapshot_download``. Raises ``ConfigError`` naming ``where``
    when the folder lacks ``config.json``, the weights or ``tokenizer.json``, or the download fails."""
    text = str(source)
    if text.startswith(HUB_PREFIX):
        repo, _, revision = text[len(HUB_PREFIX):].partition("@")
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(repo, revision=revision or None, allow_patterns=[
                "config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json", "generation_config.json", "chat_template.*"]))
        except Exception as err:  # noqa: BLE001 - offline, missing repo, gated model: one line either way
            raise ConfigError(f"{where}: cannot download {text}: {type(err).__name__}: "
                              f"{(str(err).splitlines() or [''])[0]}") from None
    else:
        folder = Path(text)
    if not folder.is_dir():
        raise ConfigError(f"{where}: {folder} is not a folder (a Hugging Face model folder or hf:owner/name)")
    missing = [name for name in ("config.json", "tokenizer.json") if not (folder / name).is_file()]
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise ConfigError(f"{where}: {folder} lacks {', '.join(missing)}")
    return folder


def read_hf_config(folder: str | Path, where: str = "model.from") -> ModelConfig:
    """The ``ModelConfig`` of ``folder/config.json`` (``ConfigError`` for an unsupported one)."""
    return model_config_from_hf(json.loads((Path(folder) / "config.json").read_text()), where)
