"""`train.precision = "auto"`: mixed_bfloat16 where the hardware computes bfloat16 natively.

bfloat16 has float32's range (no loss scaling) and half its width, so where the processor
multiplies it natively a model trains faster in it; elsewhere it is emulated and slower. Native:
a CPU with AMX-BF16 or AVX512_BF16 (`/proc/cpuinfo` flags), a GPU of compute capability 8.0 or
more (Ampere on), a TPU. With GPUs, their capability decides (they run the model, not the CPU).
The accuracy measured both ways is in docs/performance-bench.md.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

CPU_FLAGS = ("amx_bf16", "avx512_bf16")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags (empty where the file does not exist, e.g. not Linux)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags")
            for flag in line.partition(":")[2].split()}


def gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capabilities of the visible GPUs ((0, 0) where TensorFlow does not say)."""
    return [tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
            for gpu in tf.config.list_physical_devices("GPU")]


def tpu_present() -> bool:
    return bool(tf.config.list_logical_devices("TPU"))


def native_bfloat16() -> str:
    """Why this host computes bfloat16 natively (e.g. "CPU flag avx512_bf16"), or "" if not."""
    if tpu_present():
        return "TPU"
    gpus = gpu_capabilities()
    if gpus:
        best = max(gpus)
        return f"GPU compute capability {best[0]}.{best[1]}" if best >= (8, 0) else ""
    flags = cpu_flags()
    return next((f"CPU flag {flag}" for flag in CPU_FLAGS if flag in flags), "")


def resolve_precision(precision: str) -> str:
    """`precision` itself, or for "auto" mixed_bfloat16 on native-bfloat16 hardware, else float32."""
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if native_bfloat16() else "float32"
