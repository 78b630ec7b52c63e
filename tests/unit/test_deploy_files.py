"""The Docker deployment (deploy/docker/), checked without a Docker engine.

CI has no engine, so no container starts here. What is checked instead:

- both compose files against the Compose Specification's JSON schema, then, after the variable
  interpolation compose does with ``.env.sample``: the services, what each may do (NET_ADMIN
  and the TUN device for VPN peers only), the ports and the addresses they are bound to, the
  mounts, and that no secret travels in an environment variable;
- the Dockerfile: base image, system packages, the targets the compose files build, and what
  its build context lets through;
- the entrypoint scripts: each service has one, each parses (their functions run for real in
  tests/unit/test_deploy_entrypoints.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
ENTRYPOINT = DOCKER / "entrypoint"
MAIN, SITE = DOCKER / "docker-compose.yml", DOCKER / "docker-compose.node.yml"
VPN_PEERS = {"vpnserver", "mqtt", "restful", "node", "node-gpu", "researcher"}


# --- compose files, as compose would read them -------------------------------------------------

# A default may itself hold a variable (${A:-${B:-x}/y}): the innermost is resolved first.
_VARIABLE = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}$]*))?\}")


class MissingVariable(Exception):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ``${VAR}``, ``${VAR:-x}``, ``${VAR-x}``, ``${VAR:?msg}`` and ``${VAR:+x}``."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def resolve(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        current = env.get(name)
        if op is None:
            return current or ""
        unset = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if unset else str(current)
        if op.endswith("?"):
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return str(current)
        return "" if unset else arg

    previous = None
    while previous != value:
        previous, value = value, _VARIABLE.sub(resolve, value)
    return value


def sample_env() -> dict[str, str]:
    env = {}
    for line in (DOCKER / ".env.sample").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def raw(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def services(path: Path, **overrides: str) -> dict[str, dict[str, Any]]:
    env = {**sample_env(), **overrides}
    return interpolate(raw(path), env)["services"]


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (host path, options)."""
    result = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        result[target] = (source, ",".join(options))
    return result


@pytest.mark.parametrize("path", [MAIN, SITE], ids=lambda p: p.name)
def test_compose_files_follow_the_compose_specification(path: Path) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.Draft202012Validator(schema).validate(raw(path))
    jsonschema.Draft202012Validator(schema).validate(interpolate(raw(path), sample_env()))


def test_the_main_file_runs_the_seed_services_and_the_site_file_a_node_site() -> None:
    assert set(services(MAIN)) == {"vpnserver", "mqtt", "restful", "node", "node-gpu"} | {
        "gui",
        "researcher",
    }
    assert set(services(SITE)) == {"node", "node-gpu", "gui"}
    for path in (MAIN, SITE):
        assert services(path)["node-gpu"]["profiles"] == ["gpu"]  # instead of node, not beside


def test_node_and_gui_are_defined_alike_in_both_files() -> None:
    for name in ("node", "node-gpu", "gui"):
        main, site = dict(services(MAIN)[name]), dict(services(SITE)[name])
        main.pop("depends_on", None)  # a site has no local broker to wait for
        main_mounts, site_mounts = mounts(main), mounts(site)
        for definition in (main, site):
            definition.pop("volumes")
        assert main == site, name
        assert main_mounts.keys() == site_mounts.keys()
        for target in main_mounts.keys() - {"/fedward/enrolment"}:
            assert main_mounts[target] == site_mounts[target], (name, target)
    assert mounts(services(SITE)["node"])["/fedward/enrolment"][0] == "./run_mounts/node/enrolment"


def test_only_vpn_peers_may_create_network_interfaces() -> None:
    for name, service in services(MAIN).items():
        if name in VPN_PEERS:
            assert service["cap_add"] == ["NET_ADMIN"], name
            assert service["devices"] == ["/dev/net/tun:/dev/net/tun"], name
            assert "/run/wireguard" in service["tmpfs"], name
        else:
            assert "cap_add" not in service and "devices" not in service, name
        assert "privileged" not in service and "network_mode" not in service, name
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["init"] is True and service["pull_policy"] == "never", name
    assert services(MAIN)["vpnserver"]["sysctls"] == {
        "net.ipv4.ip_forward": "1",
        # the hub forwards between peers on one interface: no ICMP redirects (lost pings)
        "net.ipv4.conf.all.send_redirects": "0",
        "net.ipv4.conf.default.send_redirects": "0",
    }


def test_ports_are_published_where_intended() -> None:
    published = {name: s.get("ports", []) for name, s in services(MAIN).items()}
    assert published == {
        "vpnserver": ["51820:51820/udp"],  # WireGuard: the only thing open to the world
        "mqtt": [],  # the broker and the upload server listen on VPN addresses only
        "restful": [],
        "node": [],
        "node-gpu": [],
        "gui": ["127.0.0.1:8484:8484"],
        "researcher": ["127.0.0.1:8888:8888", "127.0.0.1:6006:6006"],
    }
    assert services(SITE)["gui"]["ports"] == ["127.0.0.1:8484:8484"]
    opened = services(MAIN, GUI_HOST="0.0.0.0", RESEARCHER_HOST="192.0.2.7")
    assert opened["gui"]["ports"] == ["0.0.0.0:8484:8484"]
    assert opened["researcher"]["ports"][0] == "192.0.2.7:8888:8888"
    assert services(MAIN, VPN_SERVER_PORT="4500")["vpnserver"]["ports"] == ["4500:4500/udp"]


def test_the_vpn_server_refuses_to_start_without_a_public_address() -> None:
    with pytest.raises(MissingVariable, match="VPN_SERVER_PUBLIC_ADDR"):
        services(MAIN, VPN_SERVER_PUBLIC_ADDR="")


def test_env_sample_names_exactly_the_variables_the_compose_files_use() -> None:
    used = set()
    for path in (MAIN, SITE):
        used |= set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", path.read_text()))
    assert used == set(sample_env())


def test_secrets_never_travel_in_environment_variables() -> None:
    secret_looking = re.compile(r"PASSWORD|TOKEN|SECRET|PSK|PRIVATE|_KEY")
    for path in (MAIN, SITE):
        for name, service in services(path).items():
            assert "env_file" not in service and "secrets" not in service, name
            for key, value in service.get("environment", {}).items():
                assert not secret_looking.search(key), (name, key)
                assert not re.fullmatch(r"[A-Za-z0-9+=_-]{32,}", str(value)), (name, key)


def test_each_peer_mounts_its_own_enrolment_folder_and_datasets_read_only() -> None:
    all_services = services(MAIN)
    server_dir = mounts(all_services["vpnserver"])["/fedward/vpn"][0]
    for name in ("mqtt", "restful"):  # the server's folder, at the server's path
        folder = all_services[name]["environment"]["FEDWARD_ENROLMENT_DIR"]
        relative = Path(folder).relative_to("/fedward/vpn")
        assert mounts(all_services[name])[folder] == (f"{server_dir}/{relative}", "")
    for name, peer in (("node", "node/node1"), ("researcher", "researcher/researcher1")):
        source, options = mounts(all_services[name])["/fedward/enrolment"]
        assert (source, options) == (f"{server_dir}/config_peers/{peer}", "")
    for name in ("node", "node-gpu", "gui"):
        assert mounts(all_services[name])["/data"][1] == "ro", name
        assert mounts(all_services[name])["/fedward/node"][0] == "./run_mounts/node/state"
    assert "/fedward/enrolment" not in mounts(all_services["gui"])


def test_the_gpu_node_reserves_the_nvidia_gpu() -> None:
    for path in (MAIN, SITE):
        node_gpu = services(path)["node-gpu"]
        devices = node_gpu["deploy"]["resources"]["reservations"]["devices"]
        assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
        assert node_gpu["environment"]["NODE_GPU"] == "allowed"
        assert services(path)["node"]["environment"]["NODE_GPU"] == "off"


# --- Dockerfile and build context --------------------------------------------------------------


def dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def test_the_dockerfile_builds_every_target_the_compose_files_name() -> None:
    text = dockerfile()
    targets = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)$", text, re.MULTILINE))
    for path in (MAIN, SITE):
        for name, service in services(path).items():
            assert service["build"]["target"] in targets, name
            assert service["build"]["context"] == "../.."
            assert (DOCKER / "../.." / service["build"]["dockerfile"]).resolve() == (
                DOCKER / "Dockerfile"
            )
            assert service["image"].startswith("fedward/") and service["image"].endswith(":local")
    assert "ARG BASE_IMAGE=python:3.11-slim" in text
    assert not text.startswith("# syntax=")  # fetching a frontend image needs a registry
    packages = re.search(r"apt-get install[^\n]*\\\n([^\n]*)", text)
    assert packages is not None
    assert set(packages[1].split()) >= {"wireguard-tools", "wireguard-go", "iproute2"} | {
        "iptables",
        "iputils-ping",
        "mosquitto",
    }
    for name in ("CONTAINER_UID", "CONTAINER_GID", "CONTAINER_USER", "CONTAINER_GROUP"):
        assert f"ARG {name}=" in text
    assert 'ENTRYPOINT ["/opt/fedward/entrypoint/entrypoint.sh"]' in text


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(table.get(part, re.escape(part)) for part in parts))


def in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    included = True
    for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        negated, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        if any(_glob_regex(pattern).fullmatch(prefix) for prefix in prefixes):
            included = negated
    return included


def test_the_build_context_holds_the_sources_and_nothing_else() -> None:
    copied = re.findall(r"^COPY(?:\s+--\S+)*\s+(\S+)\s+\S+$", dockerfile(), re.MULTILINE)
    assert set(copied) == {"deploy/docker/ca-certificates/", "deploy/docker/entrypoint/"}
    for optional in ("deploy/docker/wheelhouse/x.whl", "deploy/docker/requirements.py"):
        assert in_build_context(optional), optional
    for path in ["pyproject.toml", "README.md", "src/fedward/cli.py", *copied, "notebooks/x.ipynb"]:
        assert in_build_context(path.rstrip("/") + "/lib.sh" if path.endswith("/") else path)
    for path in [".venv/bin/python", ".git/config", "tests/unit/test_x.py", "benchmarks/r.json"]:
        assert not in_build_context(path), path
    assert not in_build_context("src/fedward/__pycache__/cli.cpython-311.pyc")
    assert not in_build_context("deploy/docker/run_mounts/vpnserver/server.key")


# --- entrypoint scripts ------------------------------------------------------------------------


def test_every_script_parses_and_every_service_has_one() -> None:
    dispatch = re.search(r"^(vpnserver [^)]*)\)$", (ENTRYPOINT / "entrypoint.sh").read_text(), re.M)
    assert dispatch is not None
    dispatched = {word.strip() for word in dispatch[1].split("|")}
    for script in ENTRYPOINT.glob("*.sh"):
        shell = "sh" if script.read_text().startswith("#!/bin/sh") else "bash"
        subprocess.run([shell, "-n", str(script)], check=True)
    for path in (MAIN, SITE):
        for name, service in services(path).items():
            (command,) = service["command"]
            assert os.access(ENTRYPOINT / f"{command}.sh", os.X_OK), name
            assert command in dispatched, name
            check = service["healthcheck"]["test"]
            assert check[:2] == ["CMD", "/opt/fedward/entrypoint/healthcheck.sh"], name
            assert f"\n{check[2]})" in (ENTRYPOINT / "healthcheck.sh").read_text()
    for executable in ("entrypoint.sh", "healthcheck.sh", "fedward-command.sh"):
        assert os.access(ENTRYPOINT / executable, os.X_OK)
    unknown = subprocess.run([str(ENTRYPOINT / "healthcheck.sh"), "x"], capture_output=True)
    assert unknown.returncode == 2


def test_the_docs_cover_every_service_setting_and_cleaning_level() -> None:
    docs = (REPO / "docs" / "docker.md").read_text()
    for name in services(MAIN):
        assert f"`{name}`" in docs, name
    for variable in sample_env():
        short = re.sub(r"_(MANAGEMENT|NODE|RESEARCHER)_IP_ASSIGN$", "_*_IP_ASSIGN", variable)
        assert variable in docs or short in docs, variable
    for level in ("level 1", "level 2", "level 3"):
        assert level in docs
    assert "make compose-test" in docs  # say how far this is tested
    assert "never run" not in docs and "CI has no Docker engine" not in docs
