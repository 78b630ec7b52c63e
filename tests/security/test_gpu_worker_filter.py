"""The seccomp filter of a GPU worker that shares the host's mounts (no bubblewrap: the
``basic`` sandbox, and every node-gpu container under Docker's default profile).

CUDA makes a Unix socket while it initialises and fails without one (error 304, seen on
an H200 node), so such a worker may make Unix stream sockets. It must still reach no
host service: no connect (a socket file or an abstract name), no datagram socket (which
sends to a socket file without connecting), no other family. Each attack runs in a real
process that applied the worker's own sandbox code; CI has no GPU, so the layers are
applied with ``gpu=True`` directly.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from fedward.node.jobs.seccomp import seccomp_available

pytestmark = pytest.mark.skipif(not seccomp_available(), reason="libseccomp is missing")

_WORKER = textwrap.dedent(
    """
    import errno, socket, sys
    from pathlib import Path
    from fedward.node.jobs.sandbox import SelfSandbox, apply_sandbox
    work = Path(sys.argv[1])
    apply_sandbox(SelfSandbox(landlock=True, seccomp="strict", read=(work,), write=(work,),
                              gpu=True))

    def attempt(name, action):
        try:
            action()
        except OSError as exc:
            print(name, errno.errorcode.get(exc.errno, exc.errno))
        else:
            print(name, "ALLOWED")

    def connect(address):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(address)

    def datagram():
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"x", sys.argv[2])

    def inet():
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()

    def stream():
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close()

    def pair():
        a, b = socket.socketpair()
        a.sendall(b"x"); assert b.recv(1) == b"x"

    attempt("connect_path", lambda: connect(sys.argv[2]))
    attempt("connect_abstract", lambda: connect("\\0" + sys.argv[3]))
    attempt("datagram", datagram)
    attempt("inet", inet)
    attempt("stream_socket", stream)
    attempt("socketpair", pair)
    """
)


@pytest.fixture
def host_services(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A Unix stream service on a socket file and one on an abstract name."""
    path = str(tmp_path / "service.sock")
    abstract = f"fedward-gpu-filter-{tmp_path.name}"  # bound with a leading NUL
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as on_file,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as on_name,
    ):
        on_file.bind(path)
        on_file.listen()
        on_name.bind("\0" + abstract)
        on_name.listen()
        yield path, abstract


def test_a_gpu_worker_makes_unix_sockets_but_reaches_no_host_service(
    tmp_path: Path, host_services: tuple[str, str]
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path, abstract = host_services
    result = subprocess.run(
        [sys.executable, "-c", _WORKER, str(work), path, abstract],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcomes = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert outcomes == {
        "connect_path": "ENOENT",  # what CUDA hears when no MPS daemon listens
        "connect_abstract": "ENOENT",
        "datagram": "EACCES",
        "inet": "EACCES",
        "stream_socket": "ALLOWED",  # what CUDA needs
        "socketpair": "ALLOWED",  # multiprocessing and torch's data loaders
    }
