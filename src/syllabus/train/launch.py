"""What torchrun tells this process through its environment, read without importing torch (the command
line uses it before any heavy import)."""

from __future__ import annotations

import os


def is_main_process() -> bool:
    """True outside torchrun and on its rank 0 (``RANK``): the process that prints and logs progress."""
    return int(os.environ.get("RANK", "0")) == 0
