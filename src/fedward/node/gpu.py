"""GPU policy (REFERENCE): CUDA only if available and (the researcher asked and the node
allows ``--gpu``) or the node forces ``--gpu-only``; ``--gpu-num`` picks the device.

The probe is injected so the policy is tested on machines without a GPU.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

from fedward.config.model import GpuPolicy

DeviceProbe = Callable[[], int]
"""Returns the number of CUDA devices usable here (0 when none)."""


def cuda_device_count() -> int:
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def choose_device(
    policy: GpuPolicy, researcher_wants_gpu: bool, probe: DeviceProbe = cuda_device_count
) -> str:
    if policy.mode == "off":
        return "cpu"
    if policy.mode == "allowed" and not researcher_wants_gpu:
        return "cpu"
    count = probe()
    if count == 0:
        return "cpu"
    return f"cuda:{min(policy.device_index, count - 1)}"
