"""Bearer tokens of the upload server: one per peer, stored only as hashes.

The tokens file is JSON ``{"peer_id": "sha256:<hex of token>"}``, mode 0600, replaced
atomically on every change. A token is shown once, when it is made, and never stored
in clear. The server re-reads the file whenever it changes on disk, so removing a peer
(here, or by the VPN code rewriting the file) revokes it without a restart.

Tokens are long random strings, so one unsalted sha256 is enough: there is nothing to
brute-force, and a stolen file gives no token back.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
from pathlib import Path

from fedward.core.ids import validate_id
from fedward.errors import ConfigError, ValidationError
from fedward.storage.atomic import atomic_write_text
from fedward.storage.file_lock import exclusive_lock

log = logging.getLogger(__name__)

HASH_PREFIX = "sha256:"
_HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
# Header-safe characters only (RFC 6750 b64token), and long enough to be unguessable.
_TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9._~+/=-]{16,256}$")


def hash_token(token: str) -> str:
    return HASH_PREFIX + hashlib.sha256(token.encode("ascii")).hexdigest()


def read_token_hashes(tokens_file: Path) -> dict[str, str]:
    """Peer id -> token hash; an absent file holds no tokens. Raises ConfigError if malformed."""
    try:
        text = Path(tokens_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the uploads tokens file: {exc.strerror}") from exc
    try:
        data = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"uploads tokens file {tokens_file} is not valid JSON (line {exc.lineno})",
            hint="rewrite it with 'fedward uploads token add/remove'",
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"uploads tokens file {tokens_file} must hold a JSON object")
    for peer_id, token_hash in data.items():
        try:
            validate_id(peer_id, kind="peer id")
        except ValidationError as exc:
            raise ConfigError(f"uploads tokens file {tokens_file}: {exc}") from exc
        if not isinstance(token_hash, str) or not _HASH_PATTERN.fullmatch(token_hash):
            raise ConfigError(
                f"uploads tokens file {tokens_file}: the entry of {peer_id!r} is not "
                f"'sha256:<64 hex digits>'"
            )
    return dict(data)


def add_token(tokens_file: Path, peer_id: str) -> str:
    """Give ``peer_id`` a fresh random token (replacing any old one) and return it, once."""
    token = secrets.token_urlsafe(32)
    set_token(tokens_file, peer_id, token)
    return token


def set_token(tokens_file: Path, peer_id: str, token: str) -> None:
    """Store the hash of a token chosen by the caller (say, the VPN enrolment code)."""
    validate_id(peer_id, kind="peer id")
    if not isinstance(token, str) or not _TOKEN_PATTERN.fullmatch(token):
        raise ValidationError(
            "an uploads token must be 16 to 256 characters from A-Z a-z 0-9 . _ ~ + / = -",
            hint="let add_token() make one",
        )
    with _locked(tokens_file):
        hashes = read_token_hashes(tokens_file)
        hashes[peer_id] = hash_token(token)
        _write(tokens_file, hashes)


def remove_token(tokens_file: Path, peer_id: str) -> bool:
    """Revoke ``peer_id``'s token; returns False when it had none."""
    validate_id(peer_id, kind="peer id")
    with _locked(tokens_file):
        hashes = read_token_hashes(tokens_file)
        if hashes.pop(peer_id, None) is None:
            return False
        _write(tokens_file, hashes)
        return True


def _write(tokens_file: Path, hashes: dict[str, str]) -> None:
    text = json.dumps(dict(sorted(hashes.items())), indent=2) + "\n"
    atomic_write_text(Path(tokens_file), text, mode=0o600)


def _locked(tokens_file: Path) -> contextlib.AbstractContextManager[None]:
    """Serialise read-modify-write of the tokens file across threads and processes."""
    tokens_file = Path(tokens_file)
    return exclusive_lock(tokens_file.with_name(f".{tokens_file.name}.lock"))


class TokenRegistry:
    """Answers "which peer holds this token?", re-reading the file when it changes.

    A change is noticed through (inode, size, mtime, ctime), so an atomic replace is seen
    even within one timestamp tick. If the file becomes malformed, ``authenticate``
    raises ConfigError: the server then refuses everyone rather than keep tokens that
    an operator may have meant to revoke.
    """

    def __init__(self, tokens_file: Path) -> None:
        self._tokens_file = Path(tokens_file)
        self._lock = threading.Lock()
        self._loaded = False
        self._stamp: tuple[int, int, int, int] | None = None
        self._hashes: dict[str, str] = {}
        self._broken: ConfigError | None = None
        self._refresh()

    def authenticate(self, token: str) -> str | None:
        """The peer id that ``token`` belongs to, or ``None``."""
        with self._lock:
            self._refresh()
            if self._broken is not None:
                raise self._broken
            hashes = self._hashes
        try:
            presented = hash_token(token)
        except UnicodeEncodeError:
            return None
        holder = None
        # Compare against every entry, without stopping at a match, so timing says nothing.
        for peer_id, stored in hashes.items():
            if hmac.compare_digest(presented, stored):
                holder = peer_id
        return holder

    def _refresh(self) -> None:
        try:
            st = self._tokens_file.stat()
            stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            stamp = None
        if self._loaded and stamp == self._stamp:
            return
        try:
            self._hashes = read_token_hashes(self._tokens_file)
            self._broken = None
        except ConfigError as exc:
            log.error("uploads tokens file unusable, refusing every request: %s", exc)
            self._hashes = {}
            self._broken = exc
        self._stamp = stamp
        self._loaded = True
        log.info("uploads tokens loaded: %d peer(s)", len(self._hashes))
