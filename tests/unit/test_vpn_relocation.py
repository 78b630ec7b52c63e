"""An enrolment folder keeps working after it is copied to the site."""

from __future__ import annotations

import shutil
from pathlib import Path

from fedward.broker.render import BrokerFiles, read_broker_settings
from fedward.vpn.app_credentials import read_app_env, relocated_app_env
from fedward.vpn.enrolment import VpnServer
from fedward.vpn.layout import PeerFolder
from fedward.vpn.services import relocate_broker_config


def test_fedward_env_points_at_the_copied_folder(tmp_path: Path) -> None:
    server = VpnServer(tmp_path / "vpn")
    server.init({"VPN_SERVER_PUBLIC_ADDR": "192.0.2.1"})
    server.genconf("researcher", "alice")
    site = tmp_path / "site" / "alice"
    shutil.copytree(tmp_path / "vpn" / "config_peers" / "researcher" / "alice", site)
    text = relocated_app_env("researcher", "alice", PeerFolder(site))
    assert text is not None
    site.joinpath("fedward.env").write_text(text)
    env = read_app_env(PeerFolder(site))
    assert env["FEDWARD_BROKER_PASSWORD_FILE"] == str(site / "broker_password")
    assert env["FEDWARD_UPLOADS_TOKEN_FILE"] == str(site / "uploads_token")
    assert env["MQTT_BROKER"] == "10.220.0.2"
    assert env["RESEARCHER_ID"] == "alice"


def test_management_peers_have_no_application_settings(tmp_path: Path) -> None:
    server = VpnServer(tmp_path / "vpn")
    server.init({"VPN_SERVER_PUBLIC_ADDR": "192.0.2.1"})
    folder = PeerFolder(tmp_path / "vpn" / "config_peers" / "management" / "restful")
    assert relocated_app_env("management", "restful", folder) is None


def test_the_broker_config_follows_the_mqtt_folder(tmp_path: Path) -> None:
    server = VpnServer(tmp_path / "vpn")
    server.init({"VPN_SERVER_PUBLIC_ADDR": "192.0.2.1"})
    server.genconf("node", "node1")
    site = tmp_path / "network-machine" / "mqtt"
    shutil.copytree(tmp_path / "vpn" / "config_peers" / "management" / "mqtt", site)
    assert relocate_broker_config(site / "broker")
    settings = read_broker_settings(site / "broker" / "mosquitto.conf")
    files = BrokerFiles.in_dir(site / "broker")
    assert (settings.password_file, settings.acl_file) == (files.passwords, files.acl)
    assert (settings.host, settings.port) == ("10.220.0.2", 1883)
    assert not relocate_broker_config(site / "broker")  # already in place: untouched
