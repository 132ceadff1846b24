"""Keepalive on the real kernel: the count restarts whenever the peer answers."""

from __future__ import annotations

import pytest

from orchestrator.tcp.analysis import analyze_file
from tests.realkernel.conftest import Cases
from tests.realkernel.measure import error_time, gaps, keepalive_probes, on_time, packets

pytestmark = pytest.mark.netns


@pytest.mark.realcase("keepalive_answered_then_cut")
def test_keepalive_abort_counts_from_last_received(cases: Cases) -> None:
    result = cases.get("keepalive_answered_then_cut")
    idle, intvl, count = (result.settings[k] for k in ("keepidle_s", "keepintvl_s", "keepcnt"))
    ka = keepalive_probes(packets(result, "a"))
    abort, errno = error_time(result)
    connected = result.event("client", "connected")
    assert connected is not None
    assert ka.answered[:2] == [True, True] and not any(ka.answered[2:])
    assert len(ka.probes) == 2 + count
    assert on_time(ka.probes[0] - connected.t, idle)
    unanswered = ka.probes[2:]
    assert on_time(unanswered[0] - ka.last_received, idle)
    assert all(on_time(g, intvl) for g in gaps(unanswered))
    # tcp_keepalive_timer: RST and ETIMEDOUT at idle + count * intvl after the last segment in.
    assert errno == "ETIMEDOUT"
    assert ka.rst is not None and on_time(ka.rst - ka.last_received, idle + count * intvl)
    assert abs(abort - ka.rst) < 0.05  # the app is told at the RST (its event lags on a loaded machine)


@pytest.mark.realcase("keepalive_duplicated_then_cut")
def test_duplicated_probes_are_named_copies_at_the_receiver(cases: Cases) -> None:
    """Every packet duplicated: the client's kernel sent each probe once (TCPKeepAlive), the
    server's capture holds each answered probe twice. The note gives the client's interval and
    names the copies (it read "then every 0 s"); the counts stay Wireshark's."""
    result = cases.get("keepalive_duplicated_then_cut")
    (at_a,) = analyze_file(result.pcaps["a"]).connections
    assert at_a.keepalive_probes.client == result.counters["a"]["TcpExtTCPKeepAlive"]
    (at_b,) = analyze_file(result.pcaps["b"]).connections
    (note,) = [n for n in at_b.notes if n.startswith("client sent")]
    assert "every 0 s" not in note
    assert "are copies of the probe before" in note or "is a copy of the probe before" in note
    intvl = result.settings["keepintvl_s"]
    every = float(note.split("then every ")[1].split(" s")[0])
    assert on_time(every, intvl)
