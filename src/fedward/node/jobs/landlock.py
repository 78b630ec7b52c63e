"""Landlock (Linux >= 5.13): an unprivileged process takes file and network rights away
from itself, for good.

The ruleset handles every right the running kernel knows (its ABI version), so a newer
kernel closes more: ABI 2 cross-directory renames and links, ABI 3 truncation, ABI 4 TCP
bind/connect (all refused: a plan has no reason to open a connection, and every one is a
way out for data), ABI 6 signals and abstract Unix sockets to processes outside the
sandbox (a plan cannot kill or talk to the daemon). Device ioctls (ABI 5) are left
unhandled: CUDA needs them, and opening a device already takes a file right.

Landlock also stops a sandboxed process from ptrace-ing anything outside its domain, so
``/proc/<daemon>/mem`` and ``/proc/<daemon>/environ`` stay closed even though ``/proc``
is readable.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable
from pathlib import Path

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_REFER, _TRUNCATE = 1 << 13, 1 << 14
_ABI1_FS = (1 << 13) - 1
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | _TRUNCATE
READ = EXECUTE | READ_FILE | READ_DIR
# Truncation too: opening with O_TRUNC ("w" mode) needs it, even for /dev/null.
READ_WRITE_FILE = READ_FILE | WRITE_FILE | _TRUNCATE

_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when it has none (or this is not Linux)."""
    if sys.platform != "linux":
        return 0
    version = _libc().syscall(_SYS_CREATE_RULESET, None, 0, _CREATE_RULESET_VERSION)
    return max(0, int(version))


def handled_fs_rights(abi: int) -> int:
    rights = _ABI1_FS
    if abi >= 2:
        rights |= _REFER
    if abi >= 3:
        rights |= _TRUNCATE
    return rights


def _ruleset_attr(abi: int) -> tuple[_RulesetAttr, int]:
    """The attribute and the size to pass: older kernels refuse fields they do not know."""
    attr = _RulesetAttr(handled_fs_rights(abi), 0, 0)
    size = 8
    if abi >= 4:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP
        size = 16
    if abi >= 6:
        attr.scoped = _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL
        size = 24
    return attr, size


def restrict_self(
    readable: Iterable[Path], writable: Iterable[Path], read_write_files: Iterable[Path] = ()
) -> int:
    """From now on this process may only read ``readable``, read and write ``writable``
    (directories: everything beneath) and open ``read_write_files`` (devices) for reading
    and writing. Returns the ABI applied; 0 (and nothing changed) without Landlock.
    """
    abi = landlock_abi()
    if abi < 1:
        return 0
    libc = _libc()
    attr, size = _ruleset_attr(abi)
    ruleset = libc.syscall(_SYS_CREATE_RULESET, ctypes.byref(attr), size, 0)
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    handled = attr.handled_access_fs
    try:
        rules = [(Path(p), READ) for p in readable]
        rules += [(Path(p), handled) for p in writable]
        rules += [(Path(p), READ_WRITE_FILE) for p in read_write_files]
        for path, access in rules:
            _add_rule(libc, ruleset, path, access & handled)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(NO_NEW_PRIVS) failed")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)
    return abi


def _add_rule(libc: ctypes.CDLL, ruleset: int, path: Path, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist on this system needs no rule
    try:
        if not path.is_dir():
            access &= _FILE_RIGHTS  # directory-only rights are refused on files
        rule = _PathBeneath(access, fd)
        if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, ctypes.byref(rule), 0) != 0:
            raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
    finally:
        os.close(fd)
