"""Who Mosquitto runs as, and the copy of its files that this account can read.

Started by root, Mosquitto switches to the account its ``user`` option names *before* it
reads its password and ACL files, and reads them again as that account on every reload.
A broker rendered under ``sudo`` used to name ``root`` there, so it never dropped root. It
now names the ``mosquitto`` account (Debian's package creates it), or ``nobody``.

That account cannot read the rendered files where they are: an enrolment folder copied to
``/root``, a lab under pytest's root-only temporary folder, a ``config_peers`` folder with
mode 0700. So, as root, whoever starts or reloads the broker first copies the three files
into a runtime folder that belongs to the account, with a ``mosquitto.conf`` that points
there, and starts Mosquitto on that copy:

    /run/fedward/broker-<hash of the config folder>/   0700, owned by the broker's account
        mosquitto.conf  passwords  acl                   0600

The rendered folder stays the one source of truth: ``fedward broker reload`` (and the VPN
server, through it) copies again before it signals the broker.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import pwd
import shutil
from pathlib import Path

from fedward.broker.render import BrokerFiles, read_broker_settings, render_mosquitto_conf
from fedward.errors import ConfigError
from fedward.storage.atomic import atomic_write_text

RUNTIME_ROOT = Path("/run/fedward")
BROKER_ACCOUNTS = ("mosquitto", "nobody")


def default_broker_user() -> str:
    """The ``user`` of a rendered ``mosquitto.conf``: the broker's own account when root
    renders it, else whoever renders it (Mosquitto ignores ``user`` when not started as
    root, and that user owns the 0600 files)."""
    if os.geteuid() != 0:
        return getpass.getuser()
    for name in BROKER_ACCOUNTS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise ConfigError(
        "neither a 'mosquitto' nor a 'nobody' account exists for the broker to run as",
        hint="install the mosquitto package, or pass --run-as USER",
    )


def needs_copy(user: str | None) -> bool:
    """Whether Mosquitto started by this process would drop to another account."""
    return os.geteuid() == 0 and user not in (None, "root")


def runtime_dir_of(files: BrokerFiles) -> Path:
    folder = str(files.conf.parent.resolve())
    return RUNTIME_ROOT / f"broker-{hashlib.sha256(folder.encode()).hexdigest()[:16]}"


def copy_for_account(files: BrokerFiles) -> BrokerFiles:
    """Copy ``files`` where the account named in their ``mosquitto.conf`` can read them;
    return the copy (start Mosquitto on its ``conf``). Only for root (``needs_copy``)."""
    settings = read_broker_settings(files.conf)
    if settings.user is None:
        raise ConfigError(f"{files.conf} names no 'user' for the broker to run as")
    try:
        account = pwd.getpwnam(settings.user)
    except KeyError as exc:
        raise ConfigError(
            f"{files.conf} runs the broker as {settings.user!r}, an account this machine lacks",
            hint="install the mosquitto package, or render again with --run-as USER",
        ) from exc
    target_dir = runtime_dir_of(files)
    RUNTIME_ROOT.mkdir(mode=0o755, exist_ok=True)
    target_dir.mkdir(mode=0o700, exist_ok=True)
    os.chown(target_dir, account.pw_uid, account.pw_gid)
    target = BrokerFiles.in_dir(target_dir)
    for source, copy in (
        (settings.password_file, target.passwords),
        (settings.acl_file, target.acl),
    ):
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {source}: {exc.strerror}") from exc
        _write_owned(copy, text, account)
    conf = render_mosquitto_conf(
        target, settings.host, settings.port, settings.message_size_limit, settings.user
    )
    _write_owned(target.conf, conf, account)
    return target


def remove_copy(files: BrokerFiles) -> None:
    shutil.rmtree(runtime_dir_of(files), ignore_errors=True)


def _write_owned(path: Path, text: str, account: pwd.struct_passwd) -> None:
    atomic_write_text(path, text, mode=0o600)
    os.chown(path, account.pw_uid, account.pw_gid)
