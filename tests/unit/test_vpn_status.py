"""``wg show dump`` parsing and the status table."""

from __future__ import annotations

from fedward.vpn.status import format_status, parse_wg_dump

DUMP = (
    "cHJpdmF0ZQ==\tcHVibGlj\t51820\toff\n"
    "AAAA\t(none)\t192.0.2.11:40000\t10.221.0.2/32\t1000\t2048\t4096\toff\n"
    "BBBB\tPSK\t(none)\t10.221.0.3/32\t0\t0\t0\t25\n"
)


def test_dump_peers_are_parsed_and_the_interface_line_with_its_private_key_is_skipped() -> None:
    peers = parse_wg_dump(DUMP)
    assert [p.public_key for p in peers] == ["AAAA", "BBBB"]
    assert peers[0].endpoint == "192.0.2.11:40000"
    assert peers[0].latest_handshake == 1000
    assert (peers[0].received_bytes, peers[0].sent_bytes) == (2048, 4096)
    assert peers[1].endpoint is None
    assert peers[1].latest_handshake is None


def test_status_shows_handshake_age_and_transfer_by_peer_name() -> None:
    table = format_status(parse_wg_dump(DUMP), {"AAAA": "node node1"}, now=1030)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["peer", "allowed"]
    assert "node node1" in lines[2] and "30 s ago" in lines[2] and "2.0 KiB" in lines[2]
    assert lines[3].startswith("BBBB") and "never" in lines[3]
    assert "cHJpdmF0ZQ==" not in table
