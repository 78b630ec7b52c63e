"""Drop a root job worker's Linux capabilities.

A node often runs as root (containers). Landlock confines files, but a root process keeps
powers that have nothing to do with files: CAP_NET_ADMIN reads the WireGuard private key
over netlink (``wg show``) and rewrites routes, CAP_SYS_BOOT reboots, CAP_SYS_MODULE loads
kernel modules, CAP_NET_RAW sends raw packets. A training plan needs none of them.

The worker keeps only CAP_DAC_READ_SEARCH, so that it reads its dataset as the daemon
does whatever the files' owner and mode (Landlock still decides *which* files), and empties
its bounding set so that no program it runs gets the others back.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from pathlib import Path

CAP_DAC_READ_SEARCH = 2
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_EINVAL = 22


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _last_capability() -> int:
    try:
        return int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        return 63


def drop_capabilities(keep: Iterable[int] = (CAP_DAC_READ_SEARCH,)) -> bool:
    """Keep only ``keep`` in this process's effective and permitted sets, and in its
    bounding set where allowed (that needs CAP_SETPCAP, which some containers withhold).
    Returns whether the bounding set was emptied too."""
    kept = set(keep)
    libc = ctypes.CDLL(None, use_errno=True)
    bounded = True
    for cap in range(_last_capability() + 1):
        if cap in kept:
            continue
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            if errno != _EINVAL:  # EINVAL: past the kernel's last capability
                bounded = False
            break
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    mask = [0, 0]
    for cap in kept:
        mask[cap // 32] |= 1 << (cap % 32)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)(*(_CapData(m, m, 0) for m in mask))
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    return bounded
