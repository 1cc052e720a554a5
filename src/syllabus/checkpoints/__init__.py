"""Checkpoint folders as they lie on disk: their layout, their manifest, and reading them back.

This package sits below ``train``, ``evaluate`` and ``export``: evaluating or exporting a trained model reads
a checkpoint through it without importing the training code. Writing checkpoints stays in
``syllabus.train.checkpoint`` (single folder) and ``syllabus.train.sharded_checkpoint`` (FSDP2).
"""

from syllabus.checkpoints.folder import (MANIFEST, MODEL_FILE, SHARDED_DIR, STATE_FILE, CheckpointError,
                                         latest_valid_checkpoint, list_checkpoints, resolve_checkpoint,
                                         verify_checkpoint)
from syllabus.checkpoints.load import (is_sharded, load_full_model_state, load_model, load_model_state,
                                       load_trainer_state, load_weights)

__all__ = ["MANIFEST", "MODEL_FILE", "SHARDED_DIR", "STATE_FILE", "CheckpointError", "is_sharded",
           "latest_valid_checkpoint", "list_checkpoints", "load_full_model_state", "load_model",
           "load_model_state", "load_trainer_state", "load_weights", "resolve_checkpoint", "verify_checkpoint"]
