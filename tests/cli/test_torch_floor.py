"""The torch floor: pyproject.toml's and the door's are the same, and an older torch is refused in one line."""

import re
from pathlib import Path

from syllabus.cli.main import TORCH_FLOOR, main, torch_too_old


def test_the_pyproject_floor_is_the_one_the_door_checks():
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    (floor,) = re.findall(r'"torch>=([0-9.]+)"', text)
    assert tuple(int(p) for p in floor.split(".")) == TORCH_FLOOR


def test_an_older_torch_is_refused_at_the_door(monkeypatch, capsys):
    assert torch_too_old("2.5.1+cu124") == ("torch 2.5.1+cu124 is installed; syllabus needs torch>=2.6 "
                                            "(pip install 'torch>=2.6')")
    assert torch_too_old("2.6.0") is None and torch_too_old("2.13.0+cpu") is None and torch_too_old("3.0") is None
    monkeypatch.setattr("syllabus.cli.main.torch_too_old", lambda: "torch 2.4.0 is installed; syllabus needs more")
    assert main(["status", "nowhere"]) == 2
    assert capsys.readouterr().err == "syllabus: torch 2.4.0 is installed; syllabus needs more\n"
