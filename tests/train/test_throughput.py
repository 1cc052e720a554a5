import torch

from syllabus.train.throughput import PeakEstimate, matmul_peak_flops


def test_peak_is_measured_again_when_mfu_exceeds_one():
    peak = PeakEstimate(torch.float32, "cpu")
    peak.flops = 1.0  # as if the first reading had been taken on a machine too busy to count
    assert peak.mfu(1e6, 1e3) <= 1.5  # 1e9 FLOP/s against a real reading, not against 1 FLOP/s
    assert peak.flops >= 0.5 * matmul_peak_flops(torch.float32, "cpu")
