"""The harness itself: teardown on failure, the address plan, the counter parser."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from tests.helpers.netns import (
    A_ADDR,
    B_ADDR,
    W_A_ADDR,
    W_B_ADDR,
    CaseResult,
    Topology,
    find_leftovers,
    parse_counters,
)

pytestmark = pytest.mark.netns


def test_namespaces_and_processes_go_even_when_the_case_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), Topology(tmp_path) as topo:
        names = set(topo.ns.values())
        assert names <= set(find_leftovers())
        topo.capture("a")
        topo.agent("b", "server", {"role": "server", "mode": "sink", "port": 7000})
        raise RuntimeError("boom")
    assert not names & set(find_leftovers())
    assert (tmp_path / "a.pcap").stat().st_size > 0  # flushed by SIGINT: at least the file header


def test_addresses_stay_in_the_test_range() -> None:
    net = ipaddress.ip_network("10.199.0.0/16")
    assert all(ipaddress.ip_address(a) in net for a in (A_ADDR, B_ADDR, W_A_ADDR, W_B_ADDR))


def test_counters_keep_nonzero_tcp_fields() -> None:
    text = "Tcp: RtoMin ActiveOpens InSegs\nTcp: 200 0 7\nUdp: InDatagrams\nUdp: 5\n"
    text += "TcpExt: TCPLossProbes LockDroppedIcmps\nTcpExt: 1 0\n"
    assert parse_counters(text) == {"TcpRtoMin": 200, "TcpInSegs": 7, "TcpExtTCPLossProbes": 1}


def test_result_round_trips_through_meta_json(tmp_path: Path) -> None:
    meta = Path("/dev/null")
    with Topology(tmp_path) as topo:
        topo.capture("a")
        result = topo.result("empty", {"k": 1})
        meta = tmp_path / "meta.json"
    assert CaseResult.load(meta) == result
