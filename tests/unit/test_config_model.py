from __future__ import annotations

import logging
from pathlib import Path

import pytest

from fedward.config.loader import load_node_config
from fedward.config.model import (
    BrokerEndpoint,
    NodeConfig,
    ResearcherConfig,
    Secret,
    UploadsEndpoint,
)
from fedward.errors import ConfigError

VALUE = "s3cr3t-value-that-must-not-leak"


def test_a_secret_never_shows_its_value() -> None:
    secret = Secret(VALUE)
    shown_forms = [repr(secret), str(secret), f"{secret}", f"{secret!r}"]
    shown_forms.append("%s" % (secret,))  # noqa: UP031 - logging formats this way
    for shown in shown_forms:
        assert VALUE not in shown
        assert "****" in shown
    assert secret.reveal() == VALUE


def test_a_secret_stays_hidden_inside_the_configs_that_hold_it(tmp_path: Path) -> None:
    config = NodeConfig(
        node_id="n",
        state_dir=tmp_path,
        broker=BrokerEndpoint(password=Secret(VALUE)),
        uploads=UploadsEndpoint(token=Secret(VALUE)),
    )
    assert VALUE not in repr(config)
    assert VALUE not in str(config)
    assert VALUE not in repr(ResearcherConfig("r", tmp_path, broker=config.broker))


def test_a_secret_stays_hidden_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info(
            "endpoint %s, %r", BrokerEndpoint(password=Secret(VALUE)), Secret(VALUE)
        )
    assert VALUE not in caplog.text


def test_a_secret_loaded_from_a_file_stays_hidden(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(VALUE + "\n")
    config = load_node_config(
        env={"NODE_ID": "n", "FEDWARD_BROKER_PASSWORD_FILE": str(tmp_path / "pw")}
    )
    assert VALUE not in repr(config)
    assert config.broker.password is not None and config.broker.password.reveal() == VALUE


def test_secrets_compare_by_value_without_showing_it() -> None:
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert len({Secret("a"), Secret("a")}) == 1


def test_a_secret_file_that_cannot_be_read_is_a_config_error_without_its_content(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError, match="cannot read secret file"):
        Secret.from_file(tmp_path / "absent")


@pytest.mark.parametrize("port", [0, -1, 65536, "1883"])
def test_broker_ports_outside_the_valid_range_are_refused(port: object) -> None:
    with pytest.raises(ConfigError, match="port must be 1-65535"):
        BrokerEndpoint(port=port)  # type: ignore[arg-type]


def test_upload_urls_must_be_http_or_https() -> None:
    with pytest.raises(ConfigError, match="must start with http"):
        UploadsEndpoint(url="10.220.0.3:8000")


def test_a_node_config_refuses_a_bad_id_and_an_unknown_digest_algorithm(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="node id"):
        NodeConfig(node_id="a b", state_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown digest algorithm 'md5'"):
        NodeConfig(node_id="n", state_dir=tmp_path, digest_algorithm="md5")


def test_node_paths_derive_from_the_state_dir(tmp_path: Path) -> None:
    config = NodeConfig(node_id="n", state_dir=tmp_path)
    assert config.database_path.parent == tmp_path
    assert config.jobs_dir.parent == tmp_path


def test_configs_are_frozen(tmp_path: Path) -> None:
    config = NodeConfig(node_id="n", state_dir=tmp_path)
    with pytest.raises(AttributeError):
        config.node_id = "other"  # type: ignore[misc]
