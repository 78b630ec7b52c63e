from __future__ import annotations

from pathlib import Path

import pytest

from fedward.config.loader import load_node_config, load_researcher_config, parse_bool
from fedward.config.model import GpuPolicy, Secret
from fedward.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


NODE_TOML = """
node_id = "hospital-a"
state_dir = "/var/lib/fedward/a"
data_root = "/data"

[broker]
host = "10.220.0.2"
port = 1883
username = "hospital-a"
password_file = "broker.pass"

[uploads]
url = "http://10.220.0.3:8000"
token_file = "uploads.token"

[training]
approval_required = true
allow_default_plans = false
digest_algorithm = "sha3_256"

[jobs]
memory_mb = 2048
cpu_s = 60
idle_worker_s = 5.5
"""


@pytest.fixture
def node_toml(tmp_path: Path) -> Path:
    write(tmp_path / "broker.pass", "broker-secret-123\n")
    write(tmp_path / "uploads.token", "token-secret-456")
    return write(tmp_path / "node.toml", NODE_TOML)


# --- TOML -------------------------------------------------------------------------------


def test_a_node_config_is_read_from_toml(node_toml: Path) -> None:
    config = load_node_config(node_toml, env={})
    assert config.node_id == "hospital-a"
    assert config.state_dir == Path("/var/lib/fedward/a")
    assert config.data_root == Path("/data")
    assert config.broker.host == "10.220.0.2"
    assert config.broker.port == 1883
    assert config.broker.username == "hospital-a"
    assert config.uploads.url == "http://10.220.0.3:8000"
    assert config.approval_required is True
    assert config.allow_default_plans is False
    assert config.digest_algorithm == "sha3_256"
    assert (config.jobs.memory_mb, config.jobs.cpu_s, config.jobs.idle_worker_s) == (2048, 60, 5.5)


def test_secret_files_are_read_relative_to_the_config_file(node_toml: Path) -> None:
    config = load_node_config(node_toml, env={})
    assert config.broker.password is not None
    assert config.broker.password.reveal() == "broker-secret-123"  # trailing newline stripped
    assert config.uploads.token is not None
    assert config.uploads.token.reveal() == "token-secret-456"


def test_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_node_config(env={"NODE_ID": "n1", "FEDWARD_NODE_DIR": str(tmp_path)})
    assert config.broker.host == "127.0.0.1"
    assert config.broker.port == 1883
    assert config.broker.password is None
    assert config.uploads.url == "http://127.0.0.1:8000"
    assert config.state_dir == tmp_path
    assert config.approval_required is True
    assert config.allow_default_plans is True
    assert config.digest_algorithm == "sha256"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('node_id = "n"\nnode_idd = "typo"\n', "node_idd"),
        ('node_id = "n"\n[broker]\nhots = "x"\n', "[broker]"),
        ('node_id = "n"\n[uploads]\nurll = "x"\n', "[uploads]"),
        ('node_id = "n"\n[training]\napproval = false\n', "[training]"),
        ('node_id = "n"\n[jobs]\nmemory = 1\n', "[jobs]"),
        ('node_id = "n"\n[gpu]\nmodee = "only"\n', "[gpu]"),
    ],
    ids=["top", "broker", "uploads", "training", "jobs", "gpu"],
)
def test_unknown_keys_are_refused_and_named(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(ConfigError, match="unknown key") as caught:
        load_node_config(write(tmp_path / "node.toml", text), env={})
    assert where in str(caught.value)


def test_the_gpu_table_is_honoured(tmp_path: Path) -> None:
    text = 'node_id = "n"\n[gpu]\nmode = "only"\ndevice_index = 1\n'
    config = load_node_config(write(tmp_path / "node.toml", text), env={})
    assert config.gpu == GpuPolicy(mode="only", device_index=1)


def test_unknown_researcher_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "r.toml", 'researcher_id = "r"\nnode_id = "oops"\n')
    with pytest.raises(ConfigError, match=r"unknown key 'node_id'"):
        load_researcher_config(path, env={})


def test_a_misspelt_key_is_answered_with_the_closest_valid_one(tmp_path: Path) -> None:
    path = write(tmp_path / "node.toml", 'node_id = "n"\n[jobs]\nmemory_mbs = 512\n')
    with pytest.raises(ConfigError, match="did you mean 'memory_mb'"):
        load_node_config(path, env={})


def test_job_isolation_settings_are_read_and_checked(tmp_path: Path) -> None:
    text = 'node_id = "n"\n[jobs]\nsandbox = "basic"\nrequire = ["no_network", "memory_tree"]\n'
    config = load_node_config(write(tmp_path / "node.toml", text), env={})
    assert config.jobs.sandbox == "basic"
    assert config.jobs.require == ("no_network", "memory_tree")
    bad = 'node_id = "n"\n[jobs]\nrequire = ["no_netwrk"]\n'
    with pytest.raises(ConfigError, match="did you mean 'no_network'"):
        load_node_config(write(tmp_path / "bad.toml", bad), env={})


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_node_config(tmp_path / "absent.toml", env={})


def test_invalid_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "node.toml", "node_id = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as caught:
        load_node_config(path, env={})
    assert str(path) in str(caught.value)


def test_a_section_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[broker\] must be a table"):
        load_node_config(write(tmp_path / "n.toml", 'node_id = "n"\nbroker = "x"\n'), env={})


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('node_id = "n"\n[jobs]\nmemory_mb = "lots"\n', "memory_mb"),
        ('node_id = "n"\n[jobs]\nidle_worker_s = "soon"\n', "idle_worker_s"),
        ('node_id = "n"\n[broker]\nport = "x"\n', "MQTT_BROKER_PORT"),
        ('node_id = "n"\n[broker]\nport = 70000\n', "port must be 1-65535"),
        ('node_id = "n"\n[broker]\nkeepalive_s = 1\n', "keepalive"),
        ('node_id = "n"\n[training]\ndigest_algorithm = "md5"\n', "md5"),
        ('node_id = "n"\n[training]\napproval_required = "perhaps"\n', "approval_required"),
        ('node_id = "../etc"\n', "node id"),
        ('node_id = "n"\n[uploads]\nurl = "ftp://x"\n', "http://"),
    ],
)
def test_bad_values_are_config_errors_naming_the_setting(
    tmp_path: Path, text: str, says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_node_config(write(tmp_path / "node.toml", text), env={})
    assert says in str(caught.value)


def test_a_node_needs_an_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no node id") as caught:
        load_node_config(env={})
    assert caught.value.hint is not None and "NODE_ID" in caught.value.hint


def test_a_missing_secret_file_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path / "n.toml", 'node_id = "n"\n[broker]\npassword_file = "nope"\n')
    with pytest.raises(ConfigError, match="cannot read secret file"):
        load_node_config(path, env={})


# --- the seed's environment variables ---------------------------------------------------


def test_seed_environment_overrides_the_file(node_toml: Path) -> None:
    env = {
        "NODE_ID": "hospital-b",
        "MQTT_BROKER": "10.220.0.9",
        "MQTT_BROKER_PORT": "8883",
        "UPLOADS_URL": "https://10.220.0.3:8443",
    }
    config = load_node_config(node_toml, env=env)
    assert config.node_id == "hospital-b"
    assert config.broker.host == "10.220.0.9"
    assert config.broker.port == 8883
    assert config.uploads.url == "https://10.220.0.3:8443"


def test_the_seeds_upload_url_form_is_accepted_and_trimmed() -> None:
    env = {"NODE_ID": "n", "UPLOADS_URL": "http://10.220.0.3:8000/upload/"}
    config = load_node_config(env=env, state_dir=Path("/tmp/x"))
    assert config.uploads.base_url == "http://10.220.0.3:8000"
    for url in ("http://h:8000/upload", "http://h:8000/", "http://h:8000"):
        config = load_node_config(env={"NODE_ID": "n", "UPLOADS_URL": url}, state_dir=Path("/x"))
        assert config.uploads.base_url == "http://h:8000"


def test_a_broker_port_that_is_not_a_number_is_named() -> None:
    with pytest.raises(ConfigError, match="MQTT_BROKER_PORT must be an integer, got 'abc'"):
        load_node_config(env={"NODE_ID": "n", "MQTT_BROKER_PORT": "abc"})


def test_plan_approval_is_on_by_default_unlike_the_seed() -> None:
    assert load_node_config(env={"NODE_ID": "n"}).approval_required is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        (" on ", True),
    ],
)
def test_enable_training_plan_approval_is_read_from_the_environment(
    value: str, expected: bool
) -> None:
    env = {"NODE_ID": "n", "ENABLE_TRAINING_PLAN_APPROVAL": value}
    assert load_node_config(env=env).approval_required is expected


def test_the_environment_can_turn_approval_off_over_the_file(node_toml: Path) -> None:
    config = load_node_config(node_toml, env={"ENABLE_TRAINING_PLAN_APPROVAL": "false"})
    assert config.approval_required is False


def test_allow_default_training_plans_defaults_on_and_reads_the_environment() -> None:
    assert load_node_config(env={"NODE_ID": "n"}).allow_default_plans is True
    env = {"NODE_ID": "n", "ALLOW_DEFAULT_TRAINING_PLANS": "false"}
    assert load_node_config(env=env).allow_default_plans is False
    env = {"NODE_ID": "n", "ALLOW_DEFAULT_TRAINING_PLANS": "True"}
    assert load_node_config(env=env).allow_default_plans is True


def test_a_boolean_variable_that_is_not_a_boolean_is_refused_by_name() -> None:
    env = {"NODE_ID": "n", "ENABLE_TRAINING_PLAN_APPROVAL": "sometimes"}
    with pytest.raises(ConfigError, match="ENABLE_TRAINING_PLAN_APPROVAL must be true or false"):
        load_node_config(env=env)


def test_secret_files_can_come_from_the_environment(tmp_path: Path) -> None:
    env = {
        "NODE_ID": "n",
        "FEDWARD_BROKER_USERNAME": "n",
        "FEDWARD_BROKER_PASSWORD_FILE": str(write(tmp_path / "p", "pw")),
        "FEDWARD_UPLOADS_TOKEN_FILE": str(write(tmp_path / "t", "tok")),
    }
    config = load_node_config(env=env)
    assert config.broker.username == "n"
    assert config.broker.password == Secret("pw")
    assert config.uploads.token == Secret("tok")


def test_the_data_root_from_the_environment_overrides_the_file(node_toml: Path) -> None:
    # "TOML file, then environment overrides", like every other setting.
    config = load_node_config(node_toml, env={"FEDWARD_DATA_ROOT": "/mnt/other"})
    assert config.data_root == Path("/mnt/other")


def test_explicit_overrides_win_over_environment_and_file(node_toml: Path) -> None:
    config = load_node_config(node_toml, env={"NODE_ID": "env-node"}, node_id="flag-node")
    assert config.node_id == "flag-node"


def test_a_researcher_config_reads_the_same_broker_and_upload_variables(tmp_path: Path) -> None:
    env = {
        "RESEARCHER_ID": "alice",
        "FEDWARD_RESEARCHER_DIR": str(tmp_path),
        "MQTT_BROKER": "10.220.0.2",
        "MQTT_BROKER_PORT": "1884",
        "UPLOADS_URL": "http://10.220.0.3:8000/upload/",
    }
    config = load_researcher_config(env=env)
    assert config.researcher_id == "alice"
    assert config.state_dir == tmp_path
    assert (config.broker.host, config.broker.port) == ("10.220.0.2", 1884)
    assert config.uploads.base_url == "http://10.220.0.3:8000"


def test_a_researcher_needs_a_valid_id() -> None:
    with pytest.raises(ConfigError, match="no researcher id"):
        load_researcher_config(env={})
    with pytest.raises(ConfigError, match="researcher id"):
        load_researcher_config(env={"RESEARCHER_ID": "a/b"})


@pytest.mark.parametrize("value", ["", "y", "2", "enabled"])
def test_parse_bool_refuses_anything_but_the_usual_spellings(value: str) -> None:
    with pytest.raises(ConfigError, match="SETTING must be true or false"):
        parse_bool(value, "SETTING")


def test_the_privacy_policy_is_read_and_checked(tmp_path: Path) -> None:
    text = (
        'node_id = "n"\n[privacy]\nrequire_secure_aggregation = true\nmin_nodes_per_round = 3\n'
        "min_noise_multiplier = 0.8\nepsilon_budget = 10\ndelta = 1e-6\n"
    )
    policy = load_node_config(write(tmp_path / "node.toml", text), env={}).privacy
    assert policy.require_secure_aggregation and policy.min_nodes_per_round == 3
    assert (policy.min_noise_multiplier, policy.epsilon_budget, policy.delta) == (0.8, 10, 1e-6)
    assert policy.max_epsilon_per_experiment is None
    assert (
        load_node_config(write(tmp_path / "none.toml", 'node_id = "n"\n'), env={}).privacy.rules()
        == []
    )
    bad = 'node_id = "n"\n[privacy]\nepsilon_budgt = 1\n'
    with pytest.raises(ConfigError, match="did you mean 'epsilon_budget'"):
        load_node_config(write(tmp_path / "bad.toml", bad), env={})
    with pytest.raises(ConfigError, match="delta"):
        load_node_config(
            write(tmp_path / "d.toml", 'node_id = "n"\n[privacy]\ndelta = 2\n'), env={}
        )
