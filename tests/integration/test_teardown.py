"""The end of a run leaves no packets of its own in the captures. Stopping a capture ends its
host's namespace; a peer still sending into it used to retransmit into the void while its own
capture ran on: a healthy bulk transfer's client capture ended with a retransmission after the
run (in 2 runs of 2), read as "client retransmitted" and an RTO abort to come at +947 s. The
apps are now frozen first, so the last data each side sent is acknowledged in its capture."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.pcap.reader import ACK, SYN, read_tcp
from tests.integration.conftest import tcpscen

pytestmark = pytest.mark.engine

SCENARIO = """\
name: bulk_to_the_end
duration: 5s
hosts:
  server: {role: server, address: 10.77.0.10, agent: {mode: sink}}
  client:
    role: client
    address: 10.77.0.20
    agent: {mode: send, connect: "server:7000", every: 5ms, size: 16384}
expect:
  apps: {client: {sees: nothing}}
"""


def test_a_sender_to_the_end_leaves_its_last_data_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "bulk_to_the_end.yaml"
    path.write_text(SCENARIO)
    r = tcpscen("run", path, runs_dir=tmp_path / "runs")
    assert r.code == 0, r.stdout + r.stderr
    v = r.verdict()
    client, server = v["connection"]["client"], v["connection"]["server"]
    cip, sip = client.rsplit(":", 1)[0], server.rsplit(":", 1)[0]
    packets = list(read_tcp(r.run_dir / "client.pcap"))
    isn = next(p.seq for p in packets if p.src == cip and p.flags & SYN)
    # Relative to the ISN (a random one may wrap): the furthest data sent, and the last ACK.
    sent = max((p.seq + p.payload_len - isn) % 2**32 for p in packets if p.src == cip and p.payload_len)
    last_ack = [p for p in packets if p.src == sip and p.flags & ACK][-1]
    assert (last_ack.ack - isn) % 2**32 == sent
    assert not v["predictions"], v["predictions"]
