from types import SimpleNamespace

import pytest
import torch

from syllabus.train import peaks
from syllabus.train.precision import PrecisionChoice
from syllabus.train.spec_peaks import device_spec_peaks, spec_peaks
from syllabus.train.throughput import PeakEstimate, describe_mfu
from syllabus.train.trainer import Trainer


def test_peak_is_measured_again_when_mfu_exceeds_one():
    """A real calibration (this suite's own cache): a peak read as 1 FLOP/s is replaced by a measured one."""
    estimate = PeakEstimate(PrecisionChoice("fp32", "fp32", "", {"fp32": 1.0}), "cpu")
    figures = estimate.figures(1e6, 1e3)  # 1 GFLOP/s against a real reading, not against 1 FLOP/s
    assert figures["mfu"] <= 1.5 and figures["peak_flops"] > 1e9


def never(name, device):
    raise AssertionError(f"{name} re-measured")


@pytest.mark.parametrize("name, label, bf16_tflops", [
    ("NVIDIA H100 80GB HBM3", "H100/H200 SXM", 989.4), ("NVIDIA H100 PCIe", "H100 PCIe", 756.0),
    ("NVIDIA H100 NVL", "H100/H200 NVL", 835.5), ("NVIDIA H200", "H100/H200 SXM", 989.4),
    ("NVIDIA A100-SXM4-80GB", "A100", 312.0), ("NVIDIA A100 80GB PCIe", "A100", 312.0),
    ("NVIDIA L40S", "L40S", 362.05), ("NVIDIA L40", "L40", 181.05), ("NVIDIA L4", "L4", 121.0),
    ("NVIDIA A10G", "A10/A10G", 125.0), ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090", 165.2)])
def test_spec_sheet_peaks_by_device_name(name, label, bf16_tflops):
    found, figures = spec_peaks(name, tf32=False)
    assert found == label and figures["bf16"] == pytest.approx(bf16_tflops * 1e12)
    assert spec_peaks(name, tf32=True)[1]["fp32"] >= figures["fp32"]  # TF32 tensor cores, never slower


def test_pre_ampere_gpus_have_no_bf16_spec_and_unknown_ones_none():
    assert spec_peaks("Tesla V100-SXM2-16GB", tf32=True) == ("V100 SXM2", {"fp16": 125e12, "fp32": 15.7e12})
    assert spec_peaks("Tesla V100-PCIE-32GB", tf32=False)[0] == "V100 PCIe"
    assert spec_peaks("Tesla T4", tf32=False)[1]["fp16"] == 65e12
    assert spec_peaks("NVIDIA Imaginary 9000", tf32=True) is None
    assert spec_peaks("NVIDIA RTX A4000", tf32=True) is None  # not the A40


def test_cuda_mfu_is_against_the_spec_peak_with_the_measured_one_beside():
    choice = PrecisionChoice("auto", "bf16", "", {"fp32": 50e12, "bf16": 700e12})
    estimate = PeakEstimate(choice, "cuda", remeasure=never, spec=spec_peaks("NVIDIA H100 80GB HBM3", tf32=False))
    figures = estimate.figures(1e9, 400e3)  # 400 TFLOP/s achieved on this device
    assert figures == pytest.approx({"mfu": 400 / 989.4, "precision_mfu": 400 / 989.4, "peak_flops": 989.4e12,
                                     "precision_peak_flops": 989.4e12, "measured_mfu": 400 / 700,
                                     "measured_peak_flops": 700e12, "peak_source": "spec: H100/H200 SXM"})
    line = describe_mfu(figures, "bf16")
    assert line == "mfu 40.4% of 989,400 GFLOP/s (spec: H100/H200 SXM; 57.1% of the measured 700,000)"


def test_an_unknown_gpu_falls_back_to_the_measured_peak_and_says_so():
    choice = PrecisionChoice("auto", "bf16", "", {"fp32": 50e12, "bf16": 500e12})
    figures = PeakEstimate(choice, "cuda", remeasure=never, spec=None).figures(1e9, 100e3)
    assert figures["peak_source"] == "measured" and figures["peak_flops"] == 500e12 and figures["mfu"] == 0.2
    assert describe_mfu(figures, "bf16") == ("mfu 20.0% of 500,000 GFLOP/s (measured peak: this GPU is not in "
                                             "the spec table)")


def test_the_cpu_progress_line_is_unchanged():
    figures = PeakEstimate(PrecisionChoice("fp32", "fp32", "", {"fp32": 100e9, "bf16": 300e9}), "cpu",
                           remeasure=never).figures(1e6, 50e3)
    assert set(figures) == {"mfu", "precision_mfu", "peak_flops", "precision_peak_flops"}
    assert describe_mfu(figures, "fp32") == "mfu 16.7% of 300 GFLOP/s (fp32 50%)"


def test_only_a_single_process_measures_a_peak_again():
    """On many ranks the main rank alone would measure while the others wait at the next collective."""
    choice = PrecisionChoice("fp32", "fp32", "", {"fp32": 1e9})
    for world, expected in ((1, peaks.remeasure), (2, None)):
        trainer = SimpleNamespace(dist=SimpleNamespace(device=torch.device("cpu"), world_size=world),
                                  precision=choice)
        estimate = Trainer._peak_estimate(trainer)
        assert estimate._remeasure is expected and estimate.spec == {}
    assert PeakEstimate(choice, "cpu", remeasure=None).figures(1e6, 1e4)["mfu"] == 10.0  # above 1, left as read


def test_the_current_gpu_is_looked_up_by_its_name(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "high")  # TF32 allowed
    label, figures = device_spec_peaks("cuda")
    assert label == "H100/H200 SXM" and figures["fp32"] == pytest.approx(494.7e12)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA Mystery GPU")
    assert device_spec_peaks("cuda") is None and device_spec_peaks("cpu") is None
