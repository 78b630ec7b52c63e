"""The floor of a round: the same bytes serialised, hashed and moved, and nothing else.

For a round of N nodes fedward moves, through the upload server over loopback HTTP:
the global parameters up once, down N times, and N updates up and down once each. The
floor does exactly those transfers with ``HttpBlobStore`` against the same upload
server process, with no MQTT, no node daemon, no job worker, no aggregation:

1. the researcher serialises the global parameters (safetensors) and PUTs them
   (``put_bytes`` hashes them first);
2. every "node", on its own thread and its own connection, downloads them (hashed as
   they arrive, written to a file), serialises its update to a file and PUTs it
   (``put_file`` hashes it first);
3. the researcher downloads each update as soon as it is stored.

A node's update is the same tensors with its own metadata, so every upload is new
content (the server would otherwise skip storing a blob it already has).
The threads share this process's GIL where fedward uses separate processes; hashing,
socket I/O and file writes release it, so on two cores this costs little.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from benchmarks.stats import summary
from fedward.protocol.params_wire import params_to_bytes
from fedward.transport.http_blobs import HttpBlobStore


def floor_round(
    stores: Mapping[str, HttpBlobStore],
    researcher_id: str,
    node_ids: Sequence[str],
    params: Mapping[str, np.ndarray],
    scratch: Path,
    tag: str,
) -> float:
    """Seconds for one round's transfers (see the module docstring). ``stores`` holds one
    connected client per peer, made before the clock starts, as fedward's peers keep theirs."""
    stored: queue.Queue[tuple[str, str | BaseException]] = queue.Queue()
    started = time.perf_counter()
    global_id = stores[researcher_id].put_bytes(params_to_bytes(params), readers=node_ids)

    def node(node_id: str) -> None:
        try:
            store = stores[node_id]
            downloaded = store.get_file(global_id, scratch / f"{node_id}-in.safetensors")
            update = scratch / f"{node_id}-out.safetensors"
            save_file(dict(params), str(update), metadata={"node": node_id, "tag": tag})
            stored.put((node_id, store.put_file(update, readers=[researcher_id])))
            downloaded.unlink()
            update.unlink()
        except BaseException as exc:  # reported to the researcher thread below
            stored.put((node_id, exc))

    threads = [threading.Thread(target=node, args=(n,), daemon=True) for n in node_ids]
    for thread in threads:
        thread.start()
    for _ in node_ids:
        node_id, outcome = stored.get(timeout=600)
        if isinstance(outcome, BaseException):
            raise RuntimeError(f"floor transfer of {node_id} failed") from outcome
        path = stores[researcher_id].get_file(outcome, scratch / f"update-{node_id}")
        path.unlink()
    elapsed = time.perf_counter() - started
    for thread in threads:
        thread.join()
    return elapsed


def measure_floor(
    uploads_url: str,
    tokens: Mapping[str, str],
    researcher_id: str,
    node_ids: Sequence[str],
    params: Mapping[str, np.ndarray],
    repeats: int,
    workdir: Path,
    after_each: Any = None,
) -> dict[str, Any]:
    """``repeats`` floor rounds; their median and spread. ``after_each()`` runs between
    repeats, outside the clock (the caller removes the blobs from the server's store)."""
    times = []
    stores = {peer: HttpBlobStore(uploads_url, tokens[peer]) for peer in [researcher_id, *node_ids]}
    with tempfile.TemporaryDirectory(prefix="floor-", dir=workdir) as scratch:
        # One untimed transfer per client opens its connection (fedward's are open too).
        for peer, store in stores.items():
            store.put_bytes(f"warm-up {peer} {time.time_ns()}".encode(), readers=[])
        for repeat in range(repeats):
            times.append(
                floor_round(
                    stores,
                    researcher_id,
                    node_ids,
                    params,
                    Path(scratch),
                    tag=f"{time.time_ns()}-{repeat}",
                )
            )
            if after_each is not None:
                after_each()
    for store in stores.values():
        store.close()
    return {"seconds": summary(times), "samples": times}
