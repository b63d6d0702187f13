"""Which runtime embeds with the primary model: the `[matching] backend` setting.

"auto" (the default) picks the fastest backend that holds ranking quality on this machine:

- **torch-bf16**: sentence-transformers on torch, every matrix product in bfloat16 under
  `torch.autocast` (layer norms and softmax stay float32). On a CPU with AMX (Intel Xeon 4th
  generation and later: the `amx_bf16` flag) it ran 2.3x faster than float32 torch on news
  passages, with cosine to float32 vectors >= 0.9999. Without AMX the same code is slower than
  float32 (measured: 1.8x slower with AVX-512 BF16 alone, 10x with neither), so "auto" only
  takes it where the flag is present.
- **onnx** otherwise: float32 ONNX Runtime, torch's vectors to float rounding (see
  monitor.matching.onnx_embedder).

bfloat16 vectors stay within float rounding of the model's own for matching purposes, so
they keep the model's id: switching between "torch", "torch-bf16" and "onnx" re-embeds nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("monitor.matching.backends")

AUTO = "auto"
BACKENDS = (AUTO, "torch-bf16", "onnx", "onnx-int8", "torch")
CPUINFO = Path("/proc/cpuinfo")


def resolve(backend: str, cpuinfo: Path = CPUINFO) -> str:
    """The backend that runs: `backend` itself, or for "auto" what this CPU runs fastest."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "torch-bf16" and not has_amx_bf16(cpuinfo):
        log.warning("backend torch-bf16 on a CPU without AMX: bfloat16 is emulated and slower than "
                    "float32; \"auto\" or \"onnx\" would be faster", extra={"cpuinfo": str(cpuinfo)})
    if backend != AUTO:
        return backend
    return "torch-bf16" if has_amx_bf16(cpuinfo) else "onnx"


def has_amx_bf16(cpuinfo: Path = CPUINFO) -> bool:
    """Whether the CPU multiplies bfloat16 matrices in hardware (Linux; False where unknown)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return "amx_bf16" in line.partition(":")[2].split()
    return False
