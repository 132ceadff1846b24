"""The router supervisor's flow table and its reading of conntrack's events (images/agent)."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path
from types import ModuleType

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6

AGENT = Path(__file__).resolve().parents[3] / "images" / "agent"


def flowtable() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flowtable", AGENT / "flowtable.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("flowtable", module)
    spec.loader.exec_module(module)
    return module


def test_destroy_and_update_events_are_read() -> None:
    ft = flowtable()
    destroy = ft.parse_event(
        "[1796124999.018653]\t[DESTROY] tcp      6 ESTABLISHED src=10.77.10.20 dst=10.77.11.10 sport=49490 "
        "dport=7000 src=10.77.11.10 dst=10.77.11.2 sport=7000 dport=49490 [ASSURED]"
    )
    assert (destroy.kind, destroy.state) == ("DESTROY", "ESTABLISHED")
    assert destroy.orig == ("10.77.10.20", 49490, "10.77.11.10", 7000)
    assert destroy.reply == ("10.77.11.10", 7000, "10.77.11.2", 49490)
    update = ft.parse_event(
        "[1.5]\t [UPDATE] tcp      6 10 ESTABLISHED src=a dst=b sport=1 dport=2 "
        "src=b dst=c sport=2 dport=1 [ASSURED]"
    )
    assert (update.kind, update.state, update.t) == ("UPDATE", "ESTABLISHED", 1.5)
    assert ft.parse_event("conntrack v1.4.7 (conntrack-tools): 0 flow entries have been shown.") is None


def test_the_expected_sequence_number_is_the_later_of_the_ack_and_the_peers_data() -> None:
    ft = flowtable()
    table = ft.FlowTable()
    server_dir = ("10.2.0.10", 7000, "10.2.0.2", 40000)
    to_server = ("10.2.0.2", 40000, "10.2.0.10", 7000)
    table.note(server_dir, 900, 1000, 500)  # the server last ACKed 1000
    assert table.expected_by(server_dir) == 1000
    table.note(to_server, 1100, 900, 500)  # then 100 more bytes passed toward it
    assert table.expected_by(server_dir) == 1100
    table.note(to_server, 5, 900, 500)  # across the wrap of sequence space: 5 is after 1100
    table.note(server_dir, 900, 2**32 - 10, 500)
    assert table.expected_by(server_dir) == 5
    assert table.latest_toward("10.2.0.10", 7000) == server_dir


def test_a_tcp_header_is_read_from_an_ip_packet_of_either_family() -> None:
    ft = flowtable()
    for layer in (IP(src="10.0.0.1", dst="10.0.0.2"), IPv6(src="fd77::1", dst="fd77::2")):
        packet = bytes(layer / TCP(sport=1234, dport=7000, flags="PA", seq=100, ack=55) / (b"x" * 10))
        key, seq_end, ack, _ = ft._tcp_header(packet)
        assert key[1:4:2] == (1234, 7000) and (seq_end, ack) == (110, 55)
    syn = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / TCP(flags="S", seq=7))
    assert ft._tcp_header(syn)[1:3] == (8, None)  # a SYN takes one sequence number; no ACK
    assert ft._tcp_header(struct.pack("!B", 0x45)) is None


def test_a_forged_segment_has_the_asked_fields_and_good_checksums() -> None:
    ft = flowtable()
    raw = ft.forge("10.2.0.2", 40000, "10.2.0.10", 7000, "R", 123456)
    seg = IP(raw)
    assert (seg[TCP].flags, seg[TCP].seq, seg[TCP].sport, seg.src) == ("R", 123456, 40000, "10.2.0.2")
    assert IP(bytes(IP(raw))).chksum == seg.chksum
