"""Two machines, simulated: the seed's "build here, run there".

The server side (vpnserver, mqtt, restful, and the researcher) is one compose project of
docker-compose.yml; a hospital site (node, gui) is another, of docker-compose.node.yml, with
its own networks. The only way between them is the hub's published UDP port, reached at the
host's address as a remote site would reach the server's. The site's images go through
`docker save | docker load`, as for a site without the sources.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.compose.compose import (
    EXPERIMENT,
    MAIN,
    RESEARCHER_PYTHON,
    SITE,
    Project,
    add_digits,
    run,
    write_env,
)

UID = 4321


def host_address() -> str:
    """The host's own address on its way out: what a remote site would dial."""
    route = run(["ip", "-o", "route", "get", "1.1.1.1"]).stdout.split()
    return route[route.index("src") + 1]


@pytest.fixture(scope="module")
def machines(
    tmp_path_factory: pytest.TempPathFactory, base_image: str, stopwatch
) -> Iterator[tuple[Project, Project, Path]]:
    root = tmp_path_factory.mktemp("two-machines")
    common = {"BASE_IMAGE": base_image, "CONTAINER_UID": str(UID), "CONTAINER_GID": str(UID)}
    server = Project(
        "fedward-ct-server",
        write_env(
            root / "server.env",
            RUN_MOUNTS=str(root / "server"),
            VPN_SERVER_PUBLIC_ADDR=host_address(),
            FEDWARD_ENROL_NODES="",
            **common,
        ),
        [MAIN],
    )
    site_mounts = root / "site"
    site = Project(
        "fedward-ct-site",
        write_env(
            root / "site.env",
            RUN_MOUNTS=str(site_mounts),
            VPN_SERVER_PUBLIC_ADDR=host_address(),
            **common,
        ),
        [SITE],
    )
    with stopwatch("two machines: build (cached), docker save and docker load of the site images"):
        server.compose("build", "vpnserver", "mqtt", "restful", "researcher", timeout=1800)
        site.compose("build", "node", "gui", timeout=1800)
        archive = root / "fedward-site.tar"
        run(
            [
                "docker",
                "image",
                "save",
                "-o",
                str(archive),
                "fedward/node:local",
                "fedward/gui:local",
            ]
        )
        run(["docker", "image", "rm", "fedward/node:local", "fedward/gui:local"])
        run(["docker", "image", "load", "-i", str(archive)])
        archive.unlink()
    try:
        with stopwatch("two machines: server side up"):
            server.compose(
                "up",
                "-d",
                "--wait",
                "--wait-timeout",
                "600",
                "vpnserver",
                "mqtt",
                "restful",
                "researcher",
                timeout=900,
            )
        # Enrol the hospital on the server and hand its folder over (the seed's copy).
        server.exec("vpnserver", "fedward", "vpn", "genconf", "--with-key", "node", "hospital-a")
        folder = root / "server" / "vpnserver" / "config_peers" / "node" / "hospital-a"
        shutil.copytree(folder, site_mounts / "node" / "enrolment")
        # The broker takes new accounts within seconds; a site's folder takes longer to
        # travel. Started sooner, the node is refused once and its container restarts.
        server.wait_for(
            "the broker knows hospital-a",
            lambda: (
                server.exec(
                    "mqtt",
                    "grep",
                    "-q",
                    "^hospital-a:",
                    "/run/fedward/broker/passwords",
                    check=False,
                ).returncode
                == 0
            ),
            timeout_s=60,
        )
        with stopwatch("two machines: site up (loaded images)"):
            site.compose(
                "up",
                "-d",
                "--wait",
                "--wait-timeout",
                "600",
                "--no-build",
                "node",
                "gui",
                timeout=900,
            )
    except AssertionError as error:
        # What the containers said, not only compose's verdict; then the cleaning below.
        failed = f"{error}\n--- site\n{site.logs()}\n--- server\n{server.logs()}"
    else:
        failed = ""
    try:
        if failed:
            raise AssertionError(failed)
        yield server, site, site_mounts
    finally:
        for project in (site, server):
            project.compose("--profile", "gpu", "down", "-v", "--remove-orphans", check=False)
        run(["rm", "-rf", str(root / "server"), str(site_mounts)], check=False)


def test_the_site_is_a_separate_project_joined_only_through_the_udp_port(machines) -> None:
    server, site, _ = machines
    assert set(site.health()) == {"node", "gui"} and set(site.health().values()) == {"healthy"}
    assert set(server.health()) == {"vpnserver", "mqtt", "restful", "researcher"}
    networks = json.loads(
        run(["docker", "network", "ls", "--format", "{{json .Name}}"])
        .stdout.replace("\n", ",")
        .rstrip(",")
        .join("[]")
    )
    site_networks = {n for n in networks if n.startswith("fedward-ct-site_")}
    server_networks = {n for n in networks if n.startswith("fedward-ct-server_")}
    assert site_networks and server_networks and not site_networks & server_networks
    # The node reaches the broker through the tunnel only.
    site.exec("node", "ping", "-c", "1", "-W", "3", "10.220.0.2")


def test_an_experiment_trains_on_the_site(machines) -> None:
    server, site, site_mounts = machines
    add_digits(site, site_mounts, seed=1)
    try:
        out = server.exec(
            "researcher",
            *RESEARCHER_PYTHON,
            user="4321",
            input=EXPERIMENT.format(experiment_id="two-machines"),
            timeout=900,
        ).stdout
    except AssertionError:
        print(site.logs())
        raise
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    assert {node for _, node in result} == {"hospital-a"} and len({r for r, _ in result}) == 2, out
    assert subprocess.run(["true"]).returncode == 0
