"""The progress line: a tqdm bar with the trainer's figures on a terminal, plain lines in a log file."""

import io

from syllabus.train.metrics import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_tqdm_bar_carries_the_step_figures():
    out = Terminal()
    progress = Progress(10, start=2, label="code", stream=out)
    progress.update(3, "loss 2.5000 lr 1.00e-03 mfu 12.0%")
    progress.update(5, "loss 2.1000 lr 9.00e-04 mfu 12.5%")
    progress.close()
    text = out.getvalue()
    assert "\r" in text and "code:" in text and "5/10" in text  # redrawn in place, as tqdm does
    assert "loss 2.1000 lr 9.00e-04 mfu 12.5%" in text
    assert "step/s" in text or "s/step" in text


def test_in_a_log_file_one_plain_line_per_update():
    out = io.StringIO()
    progress = Progress(10, start=0, label="train", stream=out)
    progress.update(4, "loss 3.0000")
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("[train] step 4/10 loss 3.0000 eta ")
    assert "\r" not in out.getvalue()
