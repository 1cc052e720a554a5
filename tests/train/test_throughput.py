from syllabus.train.precision import PrecisionChoice
from syllabus.train.throughput import PeakEstimate


def test_peak_is_measured_again_when_mfu_exceeds_one():
    """A real calibration (this suite's own cache): a peak read as 1 FLOP/s is replaced by a measured one."""
    estimate = PeakEstimate(PrecisionChoice("fp32", "fp32", "", {"fp32": 1.0}), "cpu")
    figures = estimate.figures(1e6, 1e3)  # 1 GFLOP/s against a real reading, not against 1 FLOP/s
    assert figures["mfu"] <= 1.5 and figures["peak_flops"] > 1e9
