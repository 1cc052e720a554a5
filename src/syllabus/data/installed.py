"""Data files shipped inside installed Python packages (the demo corpus's sources, benchmark items)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def package_dir(name: str) -> Path | None:
    """The folder of the installed package ``name`` (an import name), or None when it is not installed.

    Nothing is imported: only the package's location is looked up."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])
