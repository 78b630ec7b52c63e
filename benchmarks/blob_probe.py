"""One timed blob transfer through ``HttpBlobStore``, as a peer; prints one JSON line.

Run by ``benchmarks.tunnel`` on loopback and inside the lab's network namespaces
(``ip netns exec NS python -m benchmarks.blob_probe ...``)::

    put (--env-file F | --url U --token-file T) --size-mb 100 --reader node1 --seed 0
        {"blob_id": ..., "seconds": ..., "bytes": ...}
    get (--env-file F | --url U --token-file T) BLOB_ID
        {"seconds": ..., "bytes": ...}

``--env-file`` is a peer's ``fedward.env`` (the lab writes one per peer).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from fedward.config.loader import uploads_endpoint
from fedward.transport.http_blobs import HttpBlobStore


def _store(args: argparse.Namespace) -> HttpBlobStore:
    if args.env_file is not None:
        lines = Path(args.env_file).read_text().splitlines()
        env = dict(line.split("=", 1) for line in lines if "=" in line and line[0] != "#")
        endpoint = uploads_endpoint({}, env, Path(args.env_file).parent)
        if endpoint.token is None:
            raise SystemExit(f"no upload token in {args.env_file}")
        return HttpBlobStore(endpoint.base_url, endpoint.token.reveal())
    return HttpBlobStore(args.url, Path(args.token_file).read_text().strip())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.blob_probe")
    parser.add_argument("action", choices=["put", "get"])
    parser.add_argument("blob_id", nargs="?")
    parser.add_argument("--env-file", type=Path)
    parser.add_argument("--url")
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--reader", action="append", default=[])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with _store(args) as store:
        if args.action == "put":
            data = np.random.default_rng(args.seed).bytes(args.size_mb * 1_000_000)
            started = time.perf_counter()
            blob_id = store.put_bytes(data, readers=args.reader)
            seconds = time.perf_counter() - started
            print(json.dumps({"blob_id": blob_id, "seconds": seconds, "bytes": len(data)}))
        else:
            with tempfile.TemporaryDirectory() as scratch:
                started = time.perf_counter()
                path = store.get_file(args.blob_id, Path(scratch) / "blob")
                seconds = time.perf_counter() - started
                size = path.stat().st_size
            print(json.dumps({"seconds": seconds, "bytes": size}))


if __name__ == "__main__":
    main()
