"""Two processes (the daemon and the GUI, say) writing the same node database at once."""

from __future__ import annotations

import multiprocessing
from multiprocessing.synchronize import Barrier
from pathlib import Path

from fedward.errors import DatasetError
from fedward.node.services import open_node_services

ROUNDS = 15


def _write_datasets_and_jobs(database: str, csv_path: str, worker: int, barrier: Barrier) -> None:
    services = open_node_services(Path(database), None)
    barrier.wait()
    for index in range(ROUNDS):
        record = services.datasets.add(
            "csv", csv_path, f"w{worker}-{index}", [f"w{worker}-{index}"]
        )
        job_id = services.jobs.start(f"exp-{worker}", index, "researcher", record.dataset_id, "x:1")
        services.jobs.finish(job_id, "succeeded", metrics={"index": float(index)})
    services.close()


def _add_contested_dataset(
    database: str, csv_path: str, worker: int, barrier: Barrier, results: multiprocessing.Queue
) -> None:
    services = open_node_services(Path(database), None)
    barrier.wait()
    try:
        services.datasets.add("csv", csv_path, f"contender {worker}", ["shared", "tags"])
        results.put("added")
    except DatasetError:
        results.put("refused")
    services.close()


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    path.write_text("x,y\n1,0\n2,1\n3,0\n")
    return path


def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    database = tmp_path / "state" / "node.sqlite3"
    barrier = context.Barrier(2)
    workers = [
        context.Process(
            target=_write_datasets_and_jobs, args=(str(database), str(_csv(tmp_path)), n, barrier)
        )
        for n in range(2)
    ]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=120)
    assert [process.exitcode for process in workers] == [0, 0]

    services = open_node_services(database, None)
    assert len(services.datasets.list()) == 2 * ROUNDS
    jobs = services.jobs.list(limit=1000)
    assert len(jobs) == 2 * ROUNDS
    assert {job.outcome for job in jobs} == {"succeeded"}
    # One event per dataset added, job started and job finished.
    assert len(services.audit.list_events(limit=1000)) == 3 * 2 * ROUNDS
    services.close()


def test_a_tag_conflict_race_lets_exactly_one_dataset_in(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    database = tmp_path / "node.sqlite3"
    open_node_services(database, None).close()  # both workers then open an existing file
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [
        context.Process(
            target=_add_contested_dataset,
            args=(str(database), str(_csv(tmp_path)), n, barrier, results),
        )
        for n in range(2)
    ]
    for process in workers:
        process.start()
    outcomes = sorted(results.get(timeout=120) for _ in workers)
    for process in workers:
        process.join(timeout=60)
    assert outcomes == ["added", "refused"]
    services = open_node_services(database, None)
    assert len(services.datasets.list()) == 1
    services.close()
