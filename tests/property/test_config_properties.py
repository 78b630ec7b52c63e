"""Properties of configuration read from files: ``config.env`` and the TOML configs.

- An env file that ``render_env`` wrote reads back to the same values; any text gives
  values or a ``ValidationError``, and the values it gives are ones ``render_env``
  accepts (no value that would need a shell to read it).
- A TOML config, valid or not, gives a config or a ``ConfigError``/``ValidationError``:
  whatever types a key holds, whatever bytes the file has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fedward.config.loader import load_node_config, load_researcher_config
from fedward.errors import ConfigError, ValidationError
from fedward.vpn.envfile import parse_env, render_env
from tests.fuzz.targets import env_file, toml_config

KEYS = ["VPN_IP", "MQTT_BROKER", "UPLOADS_URL", "NODE_ID"]
safe_values = st.from_regex(r"\A[A-Za-z0-9_.:/+=@\[\]-]*\Z")


@given(st.dictionaries(st.sampled_from(KEYS), safe_values), st.text(max_size=40))
def test_a_rendered_env_file_reads_back_the_same(values: dict[str, str], header: str) -> None:
    text = render_env(values, header=header.replace("\r", ""))
    assert parse_env(text, source="f", required=values, optional=KEYS) == values


@given(st.text(max_size=300))
def test_any_text_is_an_env_file_or_a_validation_error(text: str) -> None:
    env_file(text.encode("utf-8", "surrogatepass"))


@given(
    st.lists(
        st.tuples(
            st.sampled_from([*KEYS, "lower", "9X"]),
            st.sampled_from(["=", " = ", "", "=="]),
            st.text(max_size=12),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_lines_close_to_valid_are_read_strictly(
    lines: list[tuple[str, str, str]], export: bool
) -> None:
    prefix = "export " if export else ""
    text = "".join(f"{prefix}{key}{sep}{value}\n" for key, sep, value in lines)
    try:
        values = parse_env(text, source="f", required=(), optional=KEYS)
    except ValidationError:
        return
    render_env(values)  # every value read is one that may be written back


# --- TOML ----------------------------------------------------------------------------------

scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=2),
)
NODE_KEYS = ["node_id", "state_dir", "data_root"]
SECTIONS = {
    "broker": ["host", "port", "username", "keepalive_s"],
    "uploads": ["url"],
    "training": ["approval_required", "allow_default_plans", "digest_algorithm"],
    "jobs": ["memory_mb", "cpu_s", "idle_worker_s", "sandbox", "require", "max_parallel"],
    "gpu": ["mode", "device_index"],
}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return '"' + "".join(c if c.isalnum() or c in " ._-/" else "_" for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


@st.composite
def toml_configs(draw: st.DrawFn) -> str:
    lines = [
        f"{key} = {toml_value(draw(scalars))}" for key in draw(st.sets(st.sampled_from(NODE_KEYS)))
    ]
    for section in draw(st.sets(st.sampled_from(sorted(SECTIONS)))):
        lines.append(f"[{section}]")
        for key in draw(st.sets(st.sampled_from(SECTIONS[section]))):
            lines.append(f"{key} = {toml_value(draw(scalars))}")
    return "\n".join(lines) + "\n"


@given(text=toml_configs())
def test_a_toml_config_with_any_value_types_loads_or_says_what_is_wrong(
    text: str, tmp_path: Path
) -> None:
    path = tmp_path / "node.toml"
    path.write_text(text)
    for load in (load_node_config, load_researcher_config):
        try:
            load(path, env={})
        except (ConfigError, ValidationError) as exc:
            assert str(exc)


@given(st.binary(max_size=400))
def test_any_bytes_are_a_toml_config_or_a_config_error(data: bytes) -> None:
    toml_config(data)


@given(port=st.integers(1, 65535), keepalive=st.integers(5, 3600))
def test_integers_in_range_are_kept_exactly(port: int, keepalive: int, tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(f'researcher_id = "r"\n[broker]\nport = {port}\nkeepalive_s = {keepalive}\n')
    config = load_researcher_config(path, env={})
    assert (config.broker.port, config.broker.keepalive_s) == (port, keepalive)
