"""Job cgroups on both layouts. v1 is this project's CI (tested for real by the job runner
and tests/security); v2, what most hospitals run, is checked here on a folder laid out as
the kernel lays out /sys/fs/cgroup (the same files, written and read the same way)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from fedward.node.jobs.cgroups import CgroupHost, JobCgroup, _own_paths, join_command


def unified_tree(root: Path, own: str) -> Path:
    """A v2 hierarchy whose group ``own`` offers memory, pids and cpu to its children."""
    base = root / own.lstrip("/")
    base.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (base / "cgroup.controllers").write_text("cpu memory pids\n")
    (base / "cgroup.subtree_control").write_text("")
    return base


def test_proc_self_cgroup_is_read_for_both_layouts() -> None:
    assert _own_paths("0::/system.slice/fedward.service\n") == {"": "/system.slice/fedward.service"}
    v1 = _own_paths("4:memory:/a\n2:cpu,cpuacct:/b\n8:pids:/\n0::/\n")
    assert v1["memory"] == "/a" and v1["cpuacct"] == "/b" and v1["pids"] == "/"


def test_v2_node_group_delegates_controllers_and_moves_the_daemon_to_a_leaf(
    tmp_path: Path,
) -> None:
    base = unified_tree(tmp_path, "/system.slice/node.service")
    host = CgroupHost._v2(tmp_path, "/system.slice/node.service", "fedward-n1-1")
    node_dir = base / "fedward-n1-1"
    assert host.version == 2 and host.node_dirs == (node_dir,)
    assert (base / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (node_dir / "cgroup.subtree_control").read_text() == "+memory +pids +cpu"
    assert (node_dir / "daemon" / "cgroup.procs").read_text() == str(os.getpid())


def test_v2_job_group_gets_its_limits_and_reports_cpu_and_oom_kills(tmp_path: Path) -> None:
    unified_tree(tmp_path, "/n")
    host = CgroupHost._v2(tmp_path, "/n", "fedward-n1-1")
    group = host.new_group(memory_bytes=512 << 20, pids_max=64)
    (directory,) = group.dirs
    assert (directory / "memory.max").read_text() == str(512 << 20)
    assert (directory / "memory.swap.max").read_text() == "0"
    assert (directory / "pids.max").read_text() == "64"
    (directory / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\n")
    (directory / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert group.cpu_seconds() == 2.5
    assert group.oom_kills() == 1 and group.memory_failures() == 3
    assert group.procs_files() == [directory / "cgroup.procs"]


def test_v1_job_group_spans_the_memory_pids_and_cpuacct_trees(tmp_path: Path) -> None:
    dirs = tuple(tmp_path / c / "fedward-n1-1" / "worker-1" for c in ("memory", "pids", "cpuacct"))
    for directory in dirs:
        directory.mkdir(parents=True)
    group = JobCgroup(1, dirs)
    group.set_limits(256 << 20, 32)
    assert (dirs[0] / "memory.limit_in_bytes").read_text() == str(256 << 20)
    assert (dirs[1] / "pids.max").read_text() == "32"
    (dirs[2] / "cpuacct.usage").write_text("1500000000\n")
    (dirs[0] / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert group.cpu_seconds() == 1.5 and group.oom_kills() == 2


def test_a_command_joins_every_group_before_it_runs(tmp_path: Path) -> None:
    procs = [tmp_path / "a.procs", tmp_path / "b.procs"]
    argv = join_command(procs, ["/bin/sh", "-c", "echo $$ > " + str(tmp_path / "pid")])
    subprocess.run(argv, check=True)
    pid = (tmp_path / "pid").read_text().strip()
    assert [p.read_text().strip() for p in procs] == [pid, pid]  # the same process, exec'd
