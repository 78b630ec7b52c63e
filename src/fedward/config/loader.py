"""Read configuration: a TOML file, then the environment, validated once at start.

The seed's variable names keep working: ``NODE_ID``, ``RESEARCHER_ID``, ``MQTT_BROKER``,
``MQTT_BROKER_PORT``, ``UPLOADS_URL``, ``ENABLE_TRAINING_PLAN_APPROVAL``,
``ALLOW_DEFAULT_TRAINING_PLANS``. Secrets come from files (``FEDWARD_BROKER_PASSWORD_FILE``,
``FEDWARD_UPLOADS_TOKEN_FILE`` or the ``*_file`` keys of the TOML), never from a flag.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fedward.config.model import (
    BrokerEndpoint,
    GpuPolicy,
    JobLimits,
    NodeConfig,
    NodeRetention,
    PrivacyPolicy,
    ResearcherConfig,
    Secret,
    UploadsEndpoint,
)
from fedward.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be true or false, got {value!r}")
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with Path(path).open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition
        raise ConfigError(f"configuration file {path} is not UTF-8 (byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc


def _section(data: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table")
    return value


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(allowed), n=1)
        raise ConfigError(
            f"unknown key {unknown[0]!r} in {where}",
            hint=f"did you mean {close[0]!r}?"
            if close
            else "valid keys: " + ", ".join(sorted(allowed)),
        )


def _secret(
    section: Mapping[str, Any], key: str, env: Mapping[str, str], env_name: str, base: Path
) -> Secret | None:
    if env.get(env_name):
        return Secret.from_file(Path(env[env_name]))
    if section.get(f"{key}_file"):
        return Secret.from_file(base / _text(section[f"{key}_file"], f"{key}_file"))
    return None


def _int(value: Any, name: str) -> int:
    # From TOML an int; from the environment a string of digits. A float would be
    # truncated without a word, and int() of an infinite one overflows.
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise ConfigError(f"{name} must be an integer, got {_shown(value)}")


def _float(value: Any, name: str) -> float:
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"{name} must be a number, got {_shown(value)}")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{name} must be a string, got {_shown(value)}")
    return value


def _optional_text(value: Any, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def broker_endpoint(
    section: Mapping[str, Any], env: Mapping[str, str], base: Path
) -> BrokerEndpoint:
    _check_keys(section, {"host", "port", "username", "password_file", "keepalive_s"}, "[broker]")
    return BrokerEndpoint(
        host=env.get("MQTT_BROKER") or _text(section.get("host", "127.0.0.1"), "[broker] host"),
        port=_int(env.get("MQTT_BROKER_PORT") or section.get("port", 1883), "MQTT_BROKER_PORT"),
        username=env.get("FEDWARD_BROKER_USERNAME")
        or _optional_text(section.get("username"), "[broker] username"),
        password=_secret(section, "password", env, "FEDWARD_BROKER_PASSWORD_FILE", base),
        keepalive_s=_int(section.get("keepalive_s", 30), "keepalive_s"),
    )


def uploads_endpoint(
    section: Mapping[str, Any], env: Mapping[str, str], base: Path
) -> UploadsEndpoint:
    _check_keys(section, {"url", "token_file"}, "[uploads]")
    return UploadsEndpoint(
        url=env.get("UPLOADS_URL")
        or _text(section.get("url", "http://127.0.0.1:8000"), "[uploads] url"),
        token=_secret(section, "token", env, "FEDWARD_UPLOADS_TOKEN_FILE", base),
    )


def enrolment_folder(env: Mapping[str, str] | None = None) -> Path | None:
    """The VPN enrolment folder these settings come from: its ``fedward.env`` points the
    secret files into it. None where they are not set (the demo, a hand-made config)."""
    env = os.environ if env is None else env
    secret = env.get("FEDWARD_BROKER_PASSWORD_FILE") or env.get("FEDWARD_UPLOADS_TOKEN_FILE")
    return Path(secret).parent if secret else None


def _path_text(value: Any, name: str) -> str | Path:
    return value if isinstance(value, Path) else _text(value, name)


def load_node_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> NodeConfig:
    """Node configuration from ``path`` (optional), the environment, then ``overrides``."""
    env = os.environ if env is None else env
    data = read_toml(path)
    base = Path(path).parent if path else Path.cwd()
    _check_keys(
        data,
        {
            "node_id",
            "state_dir",
            "data_root",
            "broker",
            "uploads",
            "training",
            "jobs",
            "gpu",
            "privacy",
            "retention",
        },
        str(path),
    )
    training = _section(data, "training")
    _check_keys(
        training,
        {"approval_required", "allow_default_plans", "digest_algorithm", "max_message_bytes"},
        "[training]",
    )
    jobs = _section(data, "jobs")
    _check_keys(
        jobs,
        {
            "memory_mb",
            "cpu_s",
            "idle_worker_s",
            "disk_mb",
            "pids_max",
            "max_parallel",
            "threads",
            "sandbox",
            "require",
        },
        "[jobs]",
    )
    node_id = overrides.pop("node_id", None) or env.get("NODE_ID") or data.get("node_id")
    if not node_id:
        raise ConfigError("no node id", hint="set node_id in the config file or NODE_ID")
    node_id = _text(node_id, "node_id")
    state_dir = (
        overrides.pop("state_dir", None) or env.get("FEDWARD_NODE_DIR") or data.get("state_dir")
    )
    if not state_dir:
        state_dir = Path.home() / ".fedward" / "nodes" / node_id
    data_root = env.get("FEDWARD_DATA_ROOT") or data.get("data_root")
    approval = training.get("approval_required", True)
    if "ENABLE_TRAINING_PLAN_APPROVAL" in env:
        approval = parse_bool(env["ENABLE_TRAINING_PLAN_APPROVAL"], "ENABLE_TRAINING_PLAN_APPROVAL")
    defaults = training.get("allow_default_plans", True)
    if "ALLOW_DEFAULT_TRAINING_PLANS" in env:
        defaults = parse_bool(env["ALLOW_DEFAULT_TRAINING_PLANS"], "ALLOW_DEFAULT_TRAINING_PLANS")
    fields: dict[str, Any] = {
        "node_id": node_id,
        "state_dir": Path(_path_text(state_dir, "state_dir")),
        "data_root": Path(_text(data_root, "data_root")) if data_root else None,
        "broker": broker_endpoint(_section(data, "broker"), env, base),
        "uploads": uploads_endpoint(_section(data, "uploads"), env, base),
        "approval_required": parse_bool(approval, "approval_required"),
        "allow_default_plans": parse_bool(defaults, "allow_default_plans"),
        "digest_algorithm": _text(training.get("digest_algorithm", "sha256"), "digest_algorithm"),
        "max_message_bytes": _int(training.get("max_message_bytes", 1 << 20), "max_message_bytes"),
        "jobs": _job_limits(jobs, env),
        "gpu": _gpu_policy(_section(data, "gpu")),
        "privacy": _privacy_policy(_section(data, "privacy")),
        "retention": _node_retention(_section(data, "retention")),
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return NodeConfig(**fields)


def _job_limits(jobs: Mapping[str, Any], env: Mapping[str, str]) -> JobLimits:
    defaults = JobLimits()
    require = jobs.get("require", list(defaults.require))
    if not isinstance(require, list) or not all(isinstance(g, str) for g in require):
        raise ConfigError("[jobs] require must be a list of protection names")
    return JobLimits(
        memory_mb=_int(jobs.get("memory_mb", defaults.memory_mb), "memory_mb"),
        cpu_s=_int(jobs.get("cpu_s", defaults.cpu_s), "cpu_s"),
        idle_worker_s=_float(jobs.get("idle_worker_s", defaults.idle_worker_s), "idle_worker_s"),
        disk_mb=_int(jobs.get("disk_mb", defaults.disk_mb), "disk_mb"),
        pids_max=_int(jobs.get("pids_max", defaults.pids_max), "pids_max"),
        max_parallel=_int(jobs.get("max_parallel", defaults.max_parallel), "max_parallel"),
        threads=_threads(jobs.get("threads", "auto")),
        sandbox=_text(  # type: ignore[arg-type]
            env.get("FEDWARD_JOB_SANDBOX") or jobs.get("sandbox", defaults.sandbox), "sandbox"
        ),
        require=tuple(require),
    )


def _threads(value: Any) -> int | None:
    """``[jobs] threads``: a number, or "auto" (the default: CPUs / max_parallel)."""
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return None
        if value.strip().isdigit():
            hint = f"write the number without quotes: threads = {value.strip()}"
        elif difflib.get_close_matches(value.strip().lower(), ["auto"], n=1, cutoff=0.5):
            hint = "did you mean 'auto'?"
        else:
            hint = "for example threads = 2, or threads = 'auto'"
        raise ConfigError(
            f"[jobs] threads must be a whole number of at least 1, or 'auto', got {_shown(value)}",
            hint=hint,
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return value  # JobLimits checks the range
    raise ConfigError(
        f"[jobs] threads must be a whole number of at least 1, or 'auto', got {_shown(value)}"
    )


def _privacy_policy(section: Mapping[str, Any]) -> PrivacyPolicy:
    floats = {"min_noise_multiplier", "max_epsilon_per_experiment", "epsilon_budget", "delta"}
    _check_keys(
        section, floats | {"require_secure_aggregation", "min_nodes_per_round"}, "[privacy]"
    )
    values: dict[str, Any] = {name: _float(section[name], name) for name in floats & set(section)}
    if "require_secure_aggregation" in section:
        values["require_secure_aggregation"] = parse_bool(
            section["require_secure_aggregation"], "require_secure_aggregation"
        )
    if "min_nodes_per_round" in section:
        values["min_nodes_per_round"] = _int(section["min_nodes_per_round"], "min_nodes_per_round")
    return PrivacyPolicy(**values)


def _gpu_policy(section: Mapping[str, Any]) -> GpuPolicy:
    _check_keys(section, {"mode", "device_index"}, "[gpu]")
    mode = _text(section.get("mode", "off"), "[gpu] mode")
    if mode not in ("off", "allowed", "only"):
        raise ConfigError(f"[gpu] mode must be off, allowed or only, got {mode!r}")
    return GpuPolicy(mode=mode, device_index=_int(section.get("device_index", 0), "device_index"))  # type: ignore[arg-type]


def _node_retention(section: Mapping[str, Any]) -> NodeRetention:
    _check_keys(section, {"keep_job_folders_h", "collect_every_s"}, "[retention]")
    defaults = NodeRetention()
    return NodeRetention(
        keep_job_folders_h=_float(
            section.get("keep_job_folders_h", defaults.keep_job_folders_h), "keep_job_folders_h"
        ),
        collect_every_s=_float(
            section.get("collect_every_s", defaults.collect_every_s), "collect_every_s"
        ),
    )


def load_researcher_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> ResearcherConfig:
    env = os.environ if env is None else env
    data = read_toml(path)
    base = Path(path).parent if path else Path.cwd()
    _check_keys(data, {"researcher_id", "state_dir", "broker", "uploads"}, str(path))
    researcher_id = (
        overrides.pop("researcher_id", None)
        or env.get("RESEARCHER_ID")
        or data.get("researcher_id")
    )
    if not researcher_id:
        raise ConfigError(
            "no researcher id", hint="set researcher_id in the config file or RESEARCHER_ID"
        )
    state_dir = (
        overrides.pop("state_dir", None)
        or env.get("FEDWARD_RESEARCHER_DIR")
        or data.get("state_dir")
    )
    fields: dict[str, Any] = {
        "researcher_id": _text(researcher_id, "researcher_id"),
        "state_dir": Path(_path_text(state_dir, "state_dir"))
        if state_dir
        else Path.cwd() / ".fedward-researcher",
        "broker": broker_endpoint(_section(data, "broker"), env, base),
        "uploads": uploads_endpoint(_section(data, "uploads"), env, base),
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return ResearcherConfig(**fields)
