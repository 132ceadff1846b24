"""The socket samples beside the packets, on recorded runs; where they disagree, the finding says so."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orchestrator.tcp.combine import Side
from orchestrator.tcp.connection import ConnectionSummary, FrameRef, SideCounts, SideFrames
from orchestrator.verdict.socket_reconcile import ConnectionSockets, Finding, capture_boot, reconcile
from orchestrator.verdict.socket_timeline import SocketTimeline, load_timeline, load_timelines
from tests.helpers.recorded_runs import RECORDED, Replayed, replay, write_timeline

HOSTS = {"client": "client", "server": "server"}


def reconciled(run: Replayed, conn: ConnectionSummary | None = None) -> ConnectionSockets:
    timelines = load_timelines(run.run_dir, ["client", "server"])
    return reconcile(conn or run.connections[0], HOSTS, timelines, run.t0)


def kinds(c: ConnectionSockets) -> list[tuple[str, str]]:
    return [(f.kind, f.text) for f in c.findings]


def only(c: ConnectionSockets, kind: str, words: str) -> Finding:
    found = [f for f in c.findings if f.kind == kind and words in f.text]
    assert len(found) == 1, kinds(c)
    return found[0]


def test_power_cut_counts_agree_and_the_server_is_left_half_open(tmp_path: Path) -> None:
    run = replay("power_cut", tmp_path)
    c = reconciled(run)
    assert run.connections[0].retransmissions.client == 5
    agree = only(c, "agrees", "client's kernel counted 5 retransmissions (ss), as its capture shows")
    assert agree.evidence[0].startswith("client.sockets.jsonl:") and "timer:(on," in agree.evidence[0]
    half = only(c, "half-open", "server still had it ESTAB, while client's kernel had forgotten it at +")
    assert half.evidence[0].startswith("server.sockets.jsonl:")
    assert not [f for f in c.findings if f.kind == "differs"]
    json = c.to_json(run.t0)
    assert json["sides"]["client"]["retrans_total"] == 5 and json["sides"]["client"]["end"] == "none"
    assert json["sides"]["server"]["end"] == "ESTAB" and "on" in json["sides"]["client"]["timers"]


def test_keepalive_abort_the_rst_and_then_no_socket(tmp_path: Path) -> None:
    c = reconciled(replay("keepalive_on_cut", tmp_path))
    rst = only(c, "agrees", "client sent an RST at +")
    assert rst.evidence[0].startswith("client.pcap#") and rst.evidence[1].startswith("client.sockets.jsonl:")
    only(c, "half-open", "server still had it ESTAB")


def test_the_rst_of_a_rebooted_host_comes_from_a_kernel_that_never_had_the_socket(tmp_path: Path) -> None:
    c = reconciled(replay("reboot_rst", tmp_path))
    only(c, "agrees", "server's RST at +")
    assert "new kernel (boot 2), which had no such socket" in only(c, "agrees", "server's RST").text
    assert not [f for f in c.findings if f.kind in ("differs", "half-open")], kinds(c)


def test_normal_close_nothing_to_say_but_agreement(tmp_path: Path) -> None:
    c = reconciled(replay("normal_close", tmp_path))
    assert [f.kind for f in c.findings if f.kind != "agrees"] == [], kinds(c)


def test_more_retransmissions_in_the_kernel_than_in_its_capture(tmp_path: Path) -> None:
    # As if three of the five never reached the capture (sent while the interface was gone).
    run = replay("power_cut", tmp_path)
    conn = run.connections[0]
    kept = conn.retransmission_frames.client[:2]
    lossy = dataclasses.replace(
        conn, retransmissions=SideCounts(client=2), retransmission_frames=SideFrames(client=kept)
    )
    f = only(reconciled(run, lossy), "differs", "client's kernel counted 5 retransmissions by +")
    assert "its capture shows 2 by then: 3 never reached the capture" in f.text


def test_fewer_in_the_kernel_than_wireshark_flags(tmp_path: Path) -> None:
    run = replay("power_cut", tmp_path)
    conn = run.connections[0]
    extra = [*conn.retransmission_frames.client, *conn.retransmission_frames.client[:3]]
    dup = dataclasses.replace(
        conn, retransmissions=SideCounts(client=8), retransmission_frames=SideFrames(client=extra)
    )
    only(reconciled(run, dup), "differs", "its capture shows 8 before then")


def bare(client: str, server: str, duration: float = 4.0) -> ConnectionSummary:
    return ConnectionSummary(
        client,
        server,
        "complete",
        "none",
        None,
        None,
        None,
        SideCounts(),
        [],
        SideCounts(),
        None,
        SideCounts(),
        duration,
    )


def loopback(tmp_path: Path) -> SocketTimeline:
    (tmp_path / "client.ss-samples.txt").write_text((RECORDED / "loopback.ss-samples.txt").read_text())
    path = write_timeline(tmp_path, "client", ["client.ss-samples.txt"])
    assert path is not None
    return load_timeline(path, "client")


def test_the_probe_timer_without_a_zero_window_means_local_send_failures(tmp_path: Path) -> None:
    timelines = {"client": loopback(tmp_path)}
    failing = reconcile(
        bare("127.0.0.1:36296", "127.0.0.1:7400"), {"client": "client", "server": None}, timelines, 0.0
    )
    f = only(failing, "differs", "backed off on its probe timer")
    assert "no zero window from the server: its sends failed locally" in f.text
    # A real zero window (the peer's window 0 in the capture) explains the same timer.
    conn = dataclasses.replace(bare("127.0.0.1:45262", "127.0.0.1:7100"), zero_window=SideCounts(server=3))
    window = reconcile(conn, {"client": "client", "server": None}, timelines, 0.0)
    assert not [f for f in window.findings if "probe timer" in f.text]


def test_a_fin_the_kernel_does_not_show(tmp_path: Path) -> None:
    timelines = {"client": loopback(tmp_path)}
    ka = loopback(tmp_path).of("127.0.0.1:49584", "127.0.0.1:7000")[0]
    fin = FrameRef("client.pcap", 9, ka.first.t - 1.0)  # a FIN before the samples, yet ESTAB after it
    conn = dataclasses.replace(bare("127.0.0.1:49584", "127.0.0.1:7000"), fins=SideFrames(client=[fin]))
    f = only(reconcile(conn, {"client": "client", "server": None}, timelines, 0.0), "differs", "sent a FIN")
    assert (
        "still listed the socket ESTAB" in f.text and f.evidence[0] == "client.pcap#9 +" + f"{fin.time:.3f}s"
    )


def test_an_rst_its_socket_did_not_send(tmp_path: Path) -> None:
    timelines = {"client": loopback(tmp_path)}
    ka = timelines["client"].of("127.0.0.1:49584", "127.0.0.1:7000")[0]
    rst = FrameRef("client.pcap", 12, ka.first.t - 1.0)  # a firewall's REJECT answers for it
    conn = dataclasses.replace(bare("127.0.0.1:49584", "127.0.0.1:7000"), rsts=SideFrames(client=[rst]))
    f = only(reconcile(conn, {"client": "client", "server": None}, timelines, 0.0), "differs", "sent an RST")
    assert "not its socket's (another part of its kernel sent it" in f.text


def test_a_long_connection_the_kernel_never_listed(tmp_path: Path) -> None:
    timelines = {"client": loopback(tmp_path)}
    ghost = reconcile(
        bare("127.0.0.1:1", "127.0.0.1:2"), {"client": "client", "server": None}, timelines, 0.0
    )
    only(ghost, "differs", "client's kernel never listed 127.0.0.1:1 -> 127.0.0.1:2 in its 5 socket samples")
    short = reconcile(
        bare("127.0.0.1:1", "127.0.0.1:2", 0.1), {"client": "client", "server": None}, timelines, 0.0
    )
    assert short.findings == []  # between two samples


def test_boots_from_capture_names() -> None:
    assert [capture_boot(f) for f in ("server.pcap", "server.boot2.pcap", "a.boot12.pcap")] == [1, 2, 12]


def test_behind_a_nat_each_kernel_is_asked_by_its_own_names(tmp_path: Path) -> None:
    """The connection in the client's terms; this host's kernel knows it by other addresses (the
    server behind a NAT sees the router's). Without its names, a false 'never listed'."""
    timelines = {"server": loopback(tmp_path)}
    conn = bare("10.9.0.20:5000", "10.9.1.10:7400")
    hosts = {"client": None, "server": "server"}
    unnamed = reconcile(conn, hosts, timelines, 0.0)
    only(unnamed, "differs", "server's kernel never listed 10.9.1.10:7400 -> 10.9.0.20:5000")

    def name(host: str, local: str, peer: str) -> tuple[str, str]:
        assert (host, local, peer) == ("server", "10.9.1.10:7400", "10.9.0.20:5000")
        return "127.0.0.1:36296", "127.0.0.1:7400"  # a socket the samples list

    named = reconcile(conn, hosts, timelines, 0.0, name)
    assert named.sides["server"].seen and not [f for f in named.findings if "never listed" in f.text]


def test_an_rst_for_a_tuple_a_nat_made_is_told_as_that_not_as_a_firewall(tmp_path: Path) -> None:
    """Behind a NAT that forgot the flow and took another port: the RST in the capture is for
    the new tuple, which the kernel never had a socket for; its own socket stays ESTAB."""
    timelines = {"client": loopback(tmp_path)}
    ka = timelines["client"].of("127.0.0.1:49584", "127.0.0.1:7000")[0]
    rst = FrameRef("client.pcap", 12, ka.first.t - 1.0)
    conn = dataclasses.replace(bare("127.0.0.1:49584", "127.0.0.1:7000"), rsts=SideFrames(client=[rst]))

    def ends_of(frame: FrameRef) -> tuple[str, str] | None:
        assert frame == rst
        return "127.0.0.1:3459", "127.0.0.1:7000"  # the port the NAT gave the flow afterwards

    hosts: dict[Side, str | None] = {"client": "client", "server": None}
    c = reconcile(conn, hosts, timelines, 0.0, ends_of=ends_of)
    f = only(c, "agrees", "sent an RST")
    assert "for 127.0.0.1:3459 -> 127.0.0.1:7000, not its socket's tuple (127.0.0.1:49584 -> " in f.text
    assert "the flow reached it under another tuple (a NAT on the way changed it)" in f.text
    assert "firewall" not in f.text
    assert not [f for f in c.findings if f.kind == "differs"], kinds(c)
    # Its own tuple: still the RST its socket did not send.
    same = reconcile(conn, hosts, timelines, 0.0, ends_of=lambda _f: ("127.0.0.1:49584", "127.0.0.1:7000"))
    assert "firewall" in only(same, "differs", "sent an RST").text
