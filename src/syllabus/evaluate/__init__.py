"""Evaluation: perplexity per domain, generation, benchmark tasks, code execution in a sandbox.

The plan runner's entry point is :func:`run_tasks` (model + tokenizer in, flat ``{metric: float}``
out); :func:`evaluate_checkpoint` does the same from a checkpoint path. Nothing here trains.
"""

from syllabus.evaluate.generation import Sampling, generate, stream_text
from syllabus.evaluate.perplexity import perplexity, perplexity_by_domain
from syllabus.evaluate.tasks import TASK_NAMES, evaluate_checkpoint, results_table, run_tasks

__all__ = ["Sampling", "TASK_NAMES", "evaluate_checkpoint", "generate", "perplexity", "perplexity_by_domain",
           "results_table", "run_tasks", "stream_text"]
