"""A seccomp filter for job workers, built with libseccomp (through ``pyseccomp``).

Landlock and the namespaces decide *what* a worker can reach; this filter removes kernel
interfaces a training plan never needs and that are ways around the other layers:

- sockets: ``socket()`` of any family but AF_UNIX fails (EACCES) — TCP, UDP, MPTCP,
  raw, packet, netlink, vsock. Where the worker shares the host's mount and network
  namespaces (no bubblewrap), AF_UNIX is refused too, since a Unix socket file of a
  local service would be a way out (a GPU worker may make Unix sockets but never connect
  one: ``apply_filter``); ``socketpair`` always works (multiprocessing pipes);
- io_uring (its operations open sockets and files without passing through this filter);
- new namespaces (``unshare``, ``setns``, namespace flags to ``clone``; ``clone3`` says
  ENOSYS so that libc falls back to ``clone``, whose flags a filter can read);
- file handles (``open_by_handle_at``: with CAP_DAC_READ_SEARCH, which a root worker
  keeps to read its dataset, it opens any file of a file system by number, past every
  mount and path rule — the classic container escape);
- debugging and kernel state: ptrace, process_vm_*, bpf, perf_event_open, userfaultfd,
  keyrings, module loading, kexec, mount, swap, reboot, clock setting, acct, quotactl.

System calls of another architecture (the 32-bit ABI through ``int 0x80``) kill the
process: libseccomp's default for a foreign architecture.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

# Refused outright (EPERM), whatever their arguments.
REFUSED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "unshare",
    "setns",
    "open_by_handle_at",
    "name_to_handle_at",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "mount",
    "umount2",
    "pivot_root",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsmount",
    "swapon",
    "swapoff",
    "reboot",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "acct",
    "quotactl",
    "syslog",
    "iopl",
    "ioperm",
    "vhangup",
)
_NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)


def _library() -> Any | None:
    try:
        import pyseccomp
    except (ImportError, OSError):  # not installed, or libseccomp.so missing
        return None
    return pyseccomp


def seccomp_available() -> bool:
    """Whether this host can build and load the filter (libseccomp and the Python binding)."""
    library = _library()
    if library is None:
        return False
    try:
        library.SyscallFilter(library.ALLOW)
    except (OSError, RuntimeError, ValueError):
        return False
    return True


def apply_filter(*, allow_unix_sockets: bool, gpu: bool = False) -> None:
    """Load the filter into this process (inherited by every child, irrevocable).

    ``gpu`` without ``allow_unix_sockets`` (a GPU worker sharing the host's mounts): CUDA
    makes a Unix socket while it initialises and fails (error 304, "OS call failed") when
    it cannot (seen on an H200 node). Such a worker may make Unix stream and seqpacket
    sockets, never connect one (ENOENT, what CUDA hears when no MPS daemon runs), and no
    datagram socket, which could send to a host service's socket file without connecting.

    The caller must have set no_new_privs (Landlock does) or be privileged.
    """
    library = _library()
    if library is None:
        raise OSError("libseccomp is not available")
    sc = library
    rules = sc.SyscallFilter(sc.ALLOW)
    refuse = sc.ERRNO(errno.EPERM)
    for name in REFUSED_SYSCALLS:
        try:
            rules.add_rule(refuse, name)
        except (ValueError, RuntimeError, OSError):
            continue  # a call this kernel or libseccomp does not know cannot be made
    if allow_unix_sockets:
        rules.add_rule(sc.ERRNO(errno.EACCES), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
    elif gpu:
        rules.add_rule(sc.ERRNO(errno.EACCES), "socket", sc.Arg(0, sc.NE, socket.AF_UNIX))
        unix, dgram = (
            sc.Arg(0, sc.EQ, socket.AF_UNIX),
            sc.Arg(1, sc.MASKED_EQ, 0xF, socket.SOCK_DGRAM),
        )
        rules.add_rule(sc.ERRNO(errno.EACCES), "socket", unix, dgram)
        rules.add_rule(sc.ERRNO(errno.ENOENT), "connect")
    else:
        rules.add_rule(sc.ERRNO(errno.EACCES), "socket")
    rules.add_rule(sc.ERRNO(errno.EACCES), "socketpair", sc.Arg(0, sc.NE, socket.AF_UNIX))
    # One masked compare per namespace flag: any of them set refuses the call.
    for bit in range(64):
        flag = 1 << bit
        if _NAMESPACE_FLAGS & flag:
            rules.add_rule(refuse, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    rules.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    rules.load()
