"""Dense spec-sheet matmul peaks of NVIDIA GPUs, the denominator torchtitan, nanoGPT and papers report MFU against.

Figures are tensor-core FLOP/s **without** structured sparsity (datasheets print the sparse figure, twice the
dense one, with an asterisk: those are halved here), per precision: ``bf16`` and ``fp16`` (FP32 accumulate),
``tf32`` (what fp32 matmuls run at when TF32 is allowed) and ``fp32`` (plain CUDA cores). A precision the
device has no tensor-core path for (bf16 before Ampere) is absent. Sources, each the vendor's own sheet:

- H100 SXM5 / PCIe: "NVIDIA H100 Tensor Core GPU Architecture" whitepaper (2022), table of H100 SXM5 and PCIe
  peak rates (dense figures as printed there); H100 NVL and H200 (SXM, NVL): the NVIDIA H100 and H200
  datasheets (sparse figures halved). GH200: its Hopper GPU is the H100 SXM5 part (GH200 datasheet).
- A100 SXM4 and PCIe (40 and 80 GB): "NVIDIA A100 Tensor Core GPU" datasheet (both form factors list the same
  peaks). A40, A10: their NVIDIA datasheets. A10G: AWS publishes no sheet for this A10 variant (EC2 G5); the A10
  sheet's figures are used, and the measured burst peak printed beside them shows any gap.
- L40S, L40, L4: the NVIDIA L40S, L40 and L4 datasheets (sparse figures halved).
- V100 SXM2 / PCIe / V100S: "NVIDIA Tesla V100" datasheets (tensor-core fp16 and CUDA-core fp32 only).
- T4: "NVIDIA T4" datasheet (mixed-precision fp16 65 TFLOPS, fp32 8.1).
- GeForce RTX 4090: "NVIDIA Ada GPU Architecture" whitepaper, appendix table (FP16/BF16 tensor with FP32
  accumulate 165.2 dense); RTX 3090: "NVIDIA Ampere GA102 GPU Architecture" whitepaper (FP32 accumulate: 71).

Names are matched against ``torch.cuda.get_device_name()`` (e.g. ``NVIDIA H100 80GB HBM3`` for the SXM part,
``NVIDIA H100 PCIe``, ``NVIDIA A100-SXM4-80GB``, ``Tesla V100-SXM2-16GB``), first match wins.
"""

from __future__ import annotations

import re

T = 1e12
# (pattern searched in the device name, label, TFLOP/s per precision), most specific first.
SPEC_SHEET: tuple[tuple[str, str, dict[str, float]], ...] = (
    (r"H100.*NVL|H200.*NVL", "H100/H200 NVL", {"bf16": 835.5, "fp16": 835.5, "tf32": 417.5, "fp32": 60.0}),
    (r"H100.*PCIE", "H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    (r"H100|H200|GH200", "H100/H200 SXM", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    (r"A100", "A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
    (r"L40S", "L40S", {"bf16": 362.05, "fp16": 362.05, "tf32": 183.0, "fp32": 91.6}),
    (r"L40\b", "L40", {"bf16": 181.05, "fp16": 181.05, "tf32": 90.5, "fp32": 90.5}),
    (r"\bL4\b", "L4", {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3}),
    (r"A40\b", "A40", {"bf16": 149.7, "fp16": 149.7, "tf32": 74.8, "fp32": 37.4}),
    (r"A10G?\b", "A10/A10G", {"bf16": 125.0, "fp16": 125.0, "tf32": 62.5, "fp32": 31.2}),
    (r"V100S", "V100S PCIe", {"fp16": 130.0, "fp32": 16.4}),
    (r"V100.*PCIE", "V100 PCIe", {"fp16": 112.0, "fp32": 14.0}),
    (r"V100", "V100 SXM2", {"fp16": 125.0, "fp32": 15.7}),
    (r"\bT4\b", "T4", {"fp16": 65.0, "fp32": 8.1}),
    (r"RTX 4090", "GeForce RTX 4090", {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6}),
    (r"RTX 3090", "GeForce RTX 3090", {"bf16": 71.0, "fp16": 71.0, "tf32": 35.6, "fp32": 35.6}),
)


def spec_peaks(device_name: str, *, tf32: bool) -> tuple[str, dict[str, float]] | None:
    """``(label, {precision: FLOP/s})`` for a CUDA device name, or None for a device not in ``SPEC_SHEET``.

    The keys are the run's precision names (``bf16``, ``fp16``, ``fp32``); ``fp32`` is the TF32 tensor-core
    peak when ``tf32`` (fp32 matmuls allowed to run in TF32, ``torch.get_float32_matmul_precision() !=
    "highest"``), else the plain fp32 one."""
    for pattern, label, figures in SPEC_SHEET:
        if re.search(pattern, device_name, flags=re.IGNORECASE):
            peaks = {name: figures[name] * T for name in ("bf16", "fp16") if name in figures}
            peaks["fp32"] = figures.get("tf32", figures["fp32"]) * T if tf32 else figures["fp32"] * T
            return label, peaks
    return None


def device_spec_peaks(device_type: str) -> tuple[str, dict[str, float]] | None:
    """``spec_peaks`` of the current CUDA device (None on a CPU, or a GPU not in the table)."""
    if device_type != "cuda":
        return None
    import torch

    return spec_peaks(torch.cuda.get_device_name(), tf32=torch.get_float32_matmul_precision() != "highest")
