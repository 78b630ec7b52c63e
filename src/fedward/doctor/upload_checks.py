"""The upload-server rows: seen from a peer (token, clock) and on the upload server's host.

The token is checked with a download of a blob that does not exist: the server answers
"not found" only after it accepted the token, and "unauthorised" otherwise, so nothing
is stored. The clock is compared with the upload server's ``Date`` header: MQTT 3.1.1
carries no time, and the upload server sits next to the broker in the VPN. Audit logs,
job logs and checkpoints of different machines only line up when clocks agree; NTP keeps
them within milliseconds, so half a minute apart means one machine has no time service.
"""

from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from pathlib import Path

from fedward.config.model import UploadsEndpoint
from fedward.doctor.outcome import Check, Outcome, failed, passed, skipped
from fedward.errors import AccessDenied, NotFound, TransportError
from fedward.uploads.tokens import read_token_hashes

MAX_CLOCK_SKEW_S = 30.0
HTTP_TIMEOUT_S = 10.0
_ABSENT_BLOB = hashlib.sha256(b"fedward doctor: a blob nobody uploads").hexdigest()
_NTP_FIX = (
    "turn on time synchronisation on this machine and on the upload server's "
    "(timedatectl set-ntp true; timedatectl status shows 'synchronized: yes')"
)


def peer_upload_checks(uploads: UploadsEndpoint, *, needs: Sequence[str] = ()) -> list[Check]:
    return [
        Check("upload token", lambda: _token(uploads), needs=tuple(needs)),
        Check("clock", lambda: _clock(uploads.base_url), needs=tuple(needs)),
    ]


def _token(uploads: UploadsEndpoint) -> Outcome:
    from fedward.transport.http_blobs import HttpBlobStore

    if uploads.token is None:
        return failed(
            "no upload token",
            "load the enrolment folder's settings: set -a; . FOLDER/fedward.env; set +a "
            "(FEDWARD_UPLOADS_TOKEN_FILE)",
        )
    try:
        with HttpBlobStore(uploads.base_url, uploads.token.reveal(), HTTP_TIMEOUT_S) as store:
            store.get_bytes(_ABSENT_BLOB)
    except NotFound:
        return passed(f"accepted by {uploads.base_url}")
    except AccessDenied:
        return failed(
            f"{uploads.base_url} refuses this token",
            "revoked, or the upload host has an old restful/uploads_tokens.json: on the VPN "
            "server check 'fedward vpn list', then copy restful/uploads_tokens.json there",
        )
    except TransportError as exc:
        return failed(
            f"no upload server answers at {uploads.base_url}: {exc.message}",
            "on the upload server's host: fedward doctor uploads (with its serve options)",
        )
    return failed("the upload server returned a blob nobody uploaded", "report this as a bug")


def _server_date(base_url: str) -> tuple[float, float]:
    """(the server's time, ours at the middle of the request), both unix seconds."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy
    before = time.time()
    try:
        with opener.open(f"{base_url}/health", timeout=HTTP_TIMEOUT_S) as reply:
            header = reply.headers.get("Date")
    except (urllib.error.URLError, OSError) as exc:
        raise TransportError(f"no answer from {base_url}/health: {exc}") from exc
    after = time.time()
    if not header:
        raise TransportError(f"{base_url} sends no Date header")
    return parsedate_to_datetime(header).timestamp(), (before + after) / 2


def _clock(base_url: str) -> Outcome:
    try:
        server_time, local_time = _server_date(base_url)
    except TransportError:
        return skipped("not checked: the upload server does not answer (see the token row)")
    skew = local_time - server_time
    # The Date header counts whole seconds: half a second either way is no skew.
    if abs(skew) > MAX_CLOCK_SKEW_S:
        way = "ahead of" if skew > 0 else "behind"
        return failed(f"this machine is {abs(skew):.0f} s {way} the upload server", _NTP_FIX)
    return passed(f"within {max(abs(skew) - 0.5, 0):.0f} s of the upload server")


# -- the upload server's host --------------------------------------------------------------


def upload_host_checks(
    host: str, port: int, data_dir: Path, tokens_file: Path, *, needs: Sequence[str] = ()
) -> list[Check]:
    url = f"http://{host}:{port}"
    return [
        Check("upload tokens", lambda: _tokens_file(tokens_file)),
        Check("upload data", lambda: _data_dir(data_dir)),
        Check("upload server", lambda: _serving(url, data_dir, tokens_file), needs=tuple(needs)),
    ]


def _tokens_file(tokens_file: Path) -> Outcome:
    if not tokens_file.is_file():
        return failed(
            f"{tokens_file} does not exist: nobody can upload",
            "copy restful/uploads_tokens.json from the VPN server",
        )
    peers = read_token_hashes(tokens_file)
    return passed(f"{len(peers)} peers have a token: {', '.join(sorted(peers)) or 'none'}")


def _data_dir(data_dir: Path) -> Outcome:
    if not data_dir.exists():
        return passed(f"{data_dir} will be created at start")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return failed(f"{data_dir} is not writable", "chown the folder to the server's user")
    return passed(f"{data_dir} is writable")


def _serving(url: str, data_dir: Path, tokens_file: Path) -> Outcome:
    try:
        _server_date(url)
    except TransportError as exc:
        return failed(
            exc.message,
            f"fedward uploads serve --host {url.split('//')[1].rsplit(':', 1)[0]} "
            f"--port {url.rsplit(':', 1)[1]} --data-dir {data_dir} --tokens {tokens_file}",
        )
    return passed(f"{url}/health answers")
