from __future__ import annotations

from orchestrator.verdict.sockets import socket_state

SS = """\
State  Recv-Q Send-Q Local Address:Port  Peer Address:Port Process
LISTEN 0      128          0.0.0.0:7000       0.0.0.0:*
ESTAB  0      0         10.77.0.10:7000    10.77.0.20:52344
\t ts sack bbr wscale:10,10 rto:204 rtt:0.083/0.04
TIME-WAIT 0   0         10.77.0.10:7000    10.77.0.20:52000
"""


def test_state_of_the_named_socket() -> None:
    assert socket_state(SS, "10.77.0.10:7000", "10.77.0.20:52344") == "ESTAB"
    assert socket_state(SS, "10.77.0.10:7000", "10.77.0.20:52000") == "TIME-WAIT"


def test_no_such_socket_is_none() -> None:
    assert socket_state(SS, "10.77.0.20:52344", "10.77.0.10:7000") == "none"  # the other side's view
    assert socket_state("", "a:1", "b:2") == "none"
