"""Export: checkpoints to formats other tools load (Hugging Face ``transformers``)."""

from syllabus.export.hf import export_checkpoint, export_hf

__all__ = ["export_checkpoint", "export_hf"]
