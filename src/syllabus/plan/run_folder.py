"""Which checkpoint a path names, and which sources that checkpoint was trained on.

``syllabus eval | export | generate`` accept any of: a checkpoint folder (``step_N``, ``final``), a
``checkpoints`` folder or a single-stage run folder (its newest valid checkpoint), or a plan run folder
(``runs/<plan>``: the last finished stage's ``final`` checkpoint; ``stage=`` picks another stage, whose
``final`` or, while it is unfinished, newest valid checkpoint is taken). Every failure is a
``ConfigError`` with one line saying what is missing and what exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from syllabus.config.errors import ConfigError
from syllabus.config.load import validate
from syllabus.config.plan import PlanConfig


def is_plan_run(path: Path) -> bool:
    return (path / "stages").is_dir() and (path / "plan.yaml").is_file()


def stage_folders(run_dir: Path) -> dict[str, Path]:
    """Stage name → ``stages/<n>-<name>`` folder, in stage order."""
    found = []
    for folder in (run_dir / "stages").iterdir():
        number, _, name = folder.name.partition("-")
        if folder.is_dir() and number.isdigit() and name:
            found.append((int(number), name, folder))
    return {name: folder for _, name, folder in sorted(found)}


def find_checkpoint(path: str | Path, stage: str | None = None) -> Path:
    """The checkpoint folder ``path`` names (see the module docstring); raises ``ConfigError``."""
    from syllabus.train.checkpoint import (CheckpointError, latest_valid_checkpoint, resolve_checkpoint,
                                           verify_checkpoint)

    path = Path(path)
    if not path.exists():
        raise ConfigError(f"checkpoint: {path} does not exist")
    if not is_plan_run(path):
        if stage is not None:
            raise ConfigError(f"--stage: {path} is not a plan run folder (no stages/ and plan.yaml)")
        try:
            return resolve_checkpoint(path)
        except CheckpointError as err:
            raise ConfigError(f"checkpoint: {err}") from None
    folders = stage_folders(path)
    if stage is not None:
        if stage not in folders:
            raise ConfigError(f"--stage: '{stage}' has not started in {path} "
                              f"(started: {', '.join(folders) or 'none'})")
        names = [stage]
    else:
        completed = json.loads((path / "run_state.json").read_text()).get("completed", []) \
            if (path / "run_state.json").exists() else []
        names = [n for n in reversed(completed) if n in folders][:1]
        if not names:
            raise ConfigError(f"checkpoint: no stage of {path} has finished (started: {', '.join(folders) or 'none'}); "
                              f"pick one with --stage NAME")
    checkpoints = folders[names[0]] / "checkpoints"
    final = checkpoints / "final"
    if final.is_dir() and verify_checkpoint(final) is None:
        return final
    newest = latest_valid_checkpoint(checkpoints)
    if newest is None:
        raise ConfigError(f"checkpoint: stage '{names[0]}' of {path} has no valid checkpoint under {checkpoints}")
    return newest


def trained_sources(checkpoint: str | Path) -> dict[str, str]:
    """Domain → source path of the data ``checkpoint`` was trained on (replay included), for held-out ppl.

    A plan stage's checkpoint reads its run folder's ``plan.yaml``; a single-stage checkpoint its
    ``run_config.json`` (``data_sources``, else ``data_dir``). Raises ``ConfigError`` when neither says.
    """
    from syllabus.plan.stages import stage_weights

    checkpoint = Path(checkpoint).resolve()
    stage_folder = checkpoint.parent.parent
    run_dir = stage_folder.parent.parent
    if stage_folder.parent.name == "stages" and is_plan_run(run_dir):
        plan = validate(PlanConfig, yaml.safe_load((run_dir / "plan.yaml").read_text()))
        name = stage_folder.name.partition("-")[2]
        index = next((i for i, s in enumerate(plan.stages) if s.name == name), None)
        if index is None:
            raise ConfigError(f"checkpoint: stage '{name}' is not in {run_dir / 'plan.yaml'}")
        return {source: plan.sources[source] for source in stage_weights(plan, index)}
    config_file = checkpoint / "run_config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else {}
    if config.get("data_sources"):
        return {Path(p).stem or Path(p).name: p for p in config["data_sources"]}
    if config.get("data_dir"):
        return {Path(config["data_dir"]).name: config["data_dir"]}
    raise ConfigError(f"--data: {checkpoint} does not record the data it was trained on; "
                      f"give held-out data as --data DOMAIN=PATH")
