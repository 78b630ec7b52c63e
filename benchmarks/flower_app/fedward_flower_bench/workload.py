"""The model both frameworks move, built exactly as ``benchmarks/noop_plan.py`` builds it.

A copy (this app is packaged and shipped on its own, so it cannot import fedward's
benchmarks package): dense blocks of a 1024x1024 weight and a 1024 bias, then a last
tensor with the remainder, float32, ``default_rng(0)``.
"""

from __future__ import annotations

import numpy as np

STEP = np.float32(1e-6)


def layout(num_params: int) -> list[tuple[str, tuple[int, ...]]]:
    rows, cols = 1024, 1024
    per_block = rows * cols + cols
    shapes: list[tuple[str, tuple[int, ...]]] = []
    for index in range(num_params // per_block):
        shapes += [(f"block{index}.weight", (rows, cols)), (f"block{index}.bias", (cols,))]
    remainder = num_params - (num_params // per_block) * per_block
    if remainder:
        shapes.append(("head.weight", (remainder,)))
    return shapes


def initial_arrays(num_params: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.random(shape, dtype=np.float32) for _, shape in layout(num_params)]


def local_update(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """The no-op "training": every parameter moves by a tiny step (touches every byte)."""
    return [a + STEP for a in arrays]
