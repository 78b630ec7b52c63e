"""Given a certificate, the GUI speaks only https and marks its cookies Secure."""

from __future__ import annotations

import datetime
import ipaddress
import re
import signal
import socket
import ssl
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .gui_process import PASSWORDS, GuiProcess, add_user, write_node_config

# A functional bound (the fix makes it ~1 s; the bug made it ~30 s), not a benchmark.
STOP_BOUND_S = 10.0


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_gui_with_a_certificate_serves_https_with_secure_cookies(tmp_path: Path) -> None:
    config = write_node_config(tmp_path / "state", tmp_path / "data")
    add_user(config, "alice", "admin", PASSWORDS["alice"], tmp_path)
    cert, key = self_signed(tmp_path)
    gui = GuiProcess(
        config,
        tmp_path / "gui.log",
        extra_args=["--cert", str(cert), "--key", str(key)],
        scheme="https",
    ).start()
    try:
        with httpx.Client(
            base_url=gui.url, verify=ssl.create_default_context(cafile=str(cert)), timeout=30
        ) as client:
            page = client.get("/login")
            assert page.headers["strict-transport-security"].startswith("max-age=")
            assert "secure" in page.headers["set-cookie"].lower()
            token = re.search(r'name="login_token" value="([^"]+)"', page.text)
            assert token
            reply = client.post(
                "/login",
                data={
                    "username": "alice",
                    "password": PASSWORDS["alice"],
                    "login_token": token.group(1),
                    "next": "/",
                },
            )
            assert reply.status_code == 303
            session_cookie = next(
                value
                for value in reply.headers.get_list("set-cookie")
                if value.startswith("fedward_session=")
            )
            assert "; secure" in session_cookie.lower()
            assert "httponly" in session_cookie.lower()
            assert "samesite=strict" in session_cookie.lower()
        plain = httpx.Client(base_url=f"http://127.0.0.1:{gui.port}", timeout=5)
        try:
            plain.get("/login")
        except httpx.HTTPError:
            pass  # refused or reset: no clear-text page is served
        else:
            raise AssertionError("the GUI answered plain http while TLS was configured")
        finally:
            plain.close()
    finally:
        gui.stop()


def test_gui_under_tls_stops_promptly_while_a_browser_keeps_a_connection_open(
    tmp_path: Path,
) -> None:
    """SIGTERM with an idle keep-alive TLS connection open: asyncio would wait up to 30 s
    for the client's TLS close_notify; the server bounds its graceful shutdown instead."""
    config = write_node_config(tmp_path / "state", tmp_path / "data")
    cert, key = self_signed(tmp_path)
    gui = GuiProcess(
        config,
        tmp_path / "gui.log",
        extra_args=["--cert", str(cert), "--key", str(key)],
        scheme="https",
    ).start()
    context = ssl.create_default_context(cafile=str(cert))
    with (
        socket.create_connection(("127.0.0.1", gui.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as connection,
    ):
        connection.sendall(
            b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n"
        )
        assert connection.recv(65536).startswith(b"HTTP/1.1 200")
        process = gui.process
        assert process is not None
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_BOUND_S)
        finally:
            gui.stop()
        elapsed_s = time.monotonic() - started
    assert elapsed_s < STOP_BOUND_S, f"the GUI took {elapsed_s:.1f} s to stop"
