"""GPU policy (REFERENCE, as in the seed): train on CUDA only if a device is available and
either the researcher asked for it (``use_gpu``) and the node allows it (``--gpu``), or
the node forces it (``--gpu-only``). ``--gpu-num N`` picks the device; a number the
machine does not have falls back to device 0, with a warning, as the seed did.

The probe is injected so that every case is tested on machines without a GPU; the real
one asks torch once per process (importing torch takes seconds) and only when the
policy could use a GPU.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable

from fedward.config.model import GpuPolicy

log = logging.getLogger("fedward.node")

DeviceProbe = Callable[[], int]
"""Returns the number of CUDA devices usable here (0 when none)."""


@functools.cache
def cuda_device_count() -> int:
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def choose_device(
    policy: GpuPolicy, researcher_wants_gpu: bool, probe: DeviceProbe = cuda_device_count
) -> str:
    """``"cpu"`` or ``"cuda:N"`` for one job."""
    if policy.mode == "off" or (policy.mode == "allowed" and not researcher_wants_gpu):
        if researcher_wants_gpu:
            log.info("the researcher asked for a GPU; this node trains on CPU (start --gpu)")
        return "cpu"
    count = probe()
    if count == 0:
        log.warning("the GPU policy allows CUDA but this machine has no usable CUDA device")
        return "cpu"
    if policy.device_index >= count:
        log.warning(
            "GPU number %d does not exist here (%d device(s)); using device 0",
            policy.device_index,
            count,
        )
        return "cuda:0"
    return f"cuda:{policy.device_index}"
