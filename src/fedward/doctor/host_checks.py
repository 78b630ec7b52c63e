"""Rows about this machine: disk space, datasets the job worker can read, isolation, GPU."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from fedward.config.model import NodeConfig
from fedward.doctor.outcome import Check, Outcome, failed, passed

MIN_FREE_BYTES = 1 << 30  # room for a few model files, checkpoints and a job's scratch space


def disk_check(what: str, folder: Path) -> Check:
    return Check(f"disk space ({what})", lambda: _free_space(Path(folder)))


def _free_space(folder: Path) -> Outcome:
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent  # it will be created on this file system
    free = shutil.disk_usage(existing).free
    shown = f"{free / (1 << 30):.1f} GiB free for {folder}"
    if free < MIN_FREE_BYTES:
        return failed(
            f"{shown} (less than {MIN_FREE_BYTES >> 30} GiB)",
            f"free space on the file system of {existing}, or move the folder elsewhere",
        )
    return passed(shown)


def node_host_checks(config: NodeConfig, *, gpu: bool) -> list[Check]:
    checks = [
        Check("datasets", lambda: _datasets(config)),
        Check("job isolation", lambda: job_isolation(config)),
        disk_check("node state", config.state_dir),
    ]
    if gpu:
        checks.insert(2, Check("gpu", lambda: _gpu(config)))
    return checks


# -- datasets ------------------------------------------------------------------------------


def _worker_identity() -> tuple[int, int]:
    """Whom the job workers run as: the node's user, or ``nobody`` where the sandbox drops
    root (a kernel without Landlock)."""
    from fedward.node.jobs.isolation import WorkerIsolation

    try:
        run_as = WorkerIsolation.for_host().run_as
    except ValueError:
        run_as = None  # the isolation row reports it
    return run_as if run_as is not None else (os.geteuid(), os.getegid())


def worker_can_read(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` may read ``path`` (and list it, for a folder), by the mode
    bits of the path and every folder above it; root reads everything."""
    try:
        path = path.resolve(strict=True)
        if uid == 0:
            return os.access(path, os.R_OK)
        needs = [(p, 0o1) for p in reversed(path.parents)]
        needs.append((path, 0o5 if path.is_dir() else 0o4))
        return all(_allows(p.stat(), bits, uid, gid) for p, bits in needs)
    except OSError:
        return False


def _allows(info: os.stat_result, bits: int, uid: int, gid: int) -> bool:
    mode = stat.S_IMODE(info.st_mode)
    if info.st_uid == uid:
        return mode & (bits << 6) == bits << 6
    if info.st_gid == gid:
        return mode & (bits << 3) == bits << 3
    return mode & bits == bits


def _datasets(config: NodeConfig) -> Outcome:
    from fedward.node.services import open_node_services

    add = "fedward node dataset add --type csv --path FILE --name NAME --tags TAGS"
    if not config.database_path.exists():
        return failed(f"no node database in {config.state_dir} yet: no dataset", add)
    services = open_node_services(config.database_path, config.data_root)
    try:
        records = services.datasets.list()
    finally:
        services.close()
    if not records:
        return failed("this node offers no dataset", add)
    uid, gid = _worker_identity()
    unreadable = [r for r in records if not worker_can_read(Path(r.path), uid, gid)]
    if unreadable:
        first = unreadable[0]
        names = ", ".join(
            f"{r.dataset_id} ({r.path}{'' if Path(r.path).exists() else ': missing'})"
            for r in unreadable
        )
        return failed(
            f"the job worker (uid {uid}) cannot read {names}",
            f"make {first.path} readable by uid {uid} (and its folders searchable), or "
            f"register it again from where it now is: fedward node dataset delete "
            f"{first.dataset_id}, then add",
        )
    return passed(f"{len(records)} dataset(s), all readable by the job worker (uid {uid})")


# -- isolation -----------------------------------------------------------------------------


def job_isolation(config: NodeConfig) -> Outcome:
    """The isolation row: the layers this host gives the node's job workers, and whether
    the guarantees the node requires (``[jobs] require``) hold — else it runs no plan."""
    from fedward.node.jobs.isolation import WorkerIsolation
    from fedward.node.jobs.sealed_results import sealing_unavailable
    from fedward.node.jobs.threads import ThreadBudget

    # raises ConfigError with its own hint (sandbox = 'bubblewrap' where it cannot run)
    isolation = WorkerIsolation.for_host(config.jobs.sandbox, config.jobs.require)
    active = ", ".join(name for name, on, _ in isolation.layers() if on) or "none"
    refusal = isolation.refusal() or sealing_unavailable()
    if refusal is not None:
        return failed(f"layers: {active}; {refusal}", refusal.split("(", 1)[-1].rstrip(")"))
    held = ", ".join(sorted(isolation.guarantees()))
    threads = ThreadBudget.for_limits(config.jobs).describe()
    return passed(f"layers: {active}; guarantees: {held}; {threads}")


# -- GPU -----------------------------------------------------------------------------------


def _gpu(config: NodeConfig) -> Outcome:
    from fedward.node.gpu import cuda_device_count

    count = cuda_device_count()
    if count == 0:
        return failed(
            "no CUDA device is visible to this node",
            "install the NVIDIA driver and a CUDA build of torch (pip install 'fedward[torch]'), "
            "and check CUDA_VISIBLE_DEVICES; or start the node without --gpu",
        )
    index = config.gpu.device_index
    if index >= count:
        return failed(
            f"device {index} does not exist ({count} visible); jobs would use device 0",
            f"pass --gpu-num between 0 and {count - 1}",
        )
    return passed(f"{count} CUDA device(s); jobs use device {index}")
