"""HOST.sockets.jsonl from the sampler's files, and each socket's life read back from it."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.verdict.socket_timeline import GONE, load_timeline
from orchestrator.verdict.ss_output import SocketSample
from tests.helpers.recorded_runs import replay, write_timeline


def jsonl_line(path: Path, n: int) -> dict[str, object]:
    data: dict[str, object] = json.loads(path.read_text().splitlines()[n - 1])
    return data


def test_one_line_per_sample_then_one_per_socket_and_each_sample_knows_its_line(tmp_path: Path) -> None:
    run = replay("power_cut", tmp_path)
    path = run.run_dir / "client.sockets.jsonl"
    blocks = (run.run_dir / "client.ss-samples.txt").read_text().count("\n# end\n")
    timeline = load_timeline(path, "client")
    assert len(timeline.ticks) == blocks
    assert timeline.interval_s is not None and 0.19 <= timeline.interval_s <= 0.21
    for tick in timeline.ticks[::10]:
        assert jsonl_line(path, tick.line) == jsonl_line(path, tick.line) | {"kind": "sample", "t": tick.t}
    for s in timeline.sockets[::25]:
        row = jsonl_line(path, s.line)
        assert (row["kind"], row["state"], row["local"], row["t"]) == ("socket", s.state, s.local, s.t)


def test_a_retransmitting_socket_climbs_then_goes_when_the_app_gets_etimedout(tmp_path: Path) -> None:
    run = replay("power_cut", tmp_path)
    timeline = load_timeline(run.run_dir / "client.sockets.jsonl", "client")
    conn = run.connections[0]
    (series,) = timeline.of(conn.client, conn.server)
    assert [t.state for t in series.transitions()] == ["ESTAB", GONE]
    counts = [s.retrans_total for s in series.samples]
    assert counts == sorted(counts) and counts[-1] == 5
    assert set(series.timers()) == {"none", "on"}
    on = [s.timer_count for s in series.samples if s.timer == "on"]
    assert on == sorted(on) and max(on) == 5  # icsk_retransmits: one per expiry of the timer
    error = run.event_time("client", "error")
    assert series.gone is not None and series.kernel_gone is None
    assert series.last.t <= error < series.gone.t  # gone at the first sample after the abort


def test_a_power_cycled_host_keeps_the_old_socket_in_its_first_kernel(tmp_path: Path) -> None:
    run = replay("reboot_rst", tmp_path)
    timeline = load_timeline(run.run_dir / "server.sockets.jsonl", "server")
    assert {k.boot for k in timeline.ticks} == {1, 2}
    conn = run.connections[0]
    (series,) = timeline.of(conn.server, conn.client)
    first_of_boot2 = next(k for k in timeline.ticks if k.boot == 2)
    assert series.boot == 1 and series.gone is None and series.kernel_gone == first_of_boot2
    assert [t.state for t in series.transitions()] == ["ESTAB", GONE]
    listeners = {(s.boot, s.local) for s in timeline.listeners()}
    assert {(1, "0.0.0.0:7000"), (2, "0.0.0.0:7000")} <= listeners  # the app listens again


def test_an_active_close_ends_in_time_wait(tmp_path: Path) -> None:
    run = replay("normal_close", tmp_path)
    conn = run.connections[0]
    client = load_timeline(run.run_dir / "client.sockets.jsonl", "client")
    (series,) = client.of(conn.client, conn.server)
    assert [t.state for t in series.transitions()] == ["ESTAB", "TIME-WAIT"]
    assert series.ended is None and series.last.timer == "timewait"
    server = load_timeline(run.run_dir / "server.sockets.jsonl", "server")
    (passive,) = server.of(conn.server, conn.client)
    assert passive.transitions()[-1].state == GONE  # LAST-ACK lasts a round trip: between two samples


def test_until_keeps_only_the_observation(tmp_path: Path) -> None:
    run = replay("power_cut", tmp_path)
    timeline = load_timeline(run.run_dir / "client.sockets.jsonl", "client")
    cut = timeline.ticks[10].t
    short = timeline.until(cut)
    assert len(short.ticks) == 11 and all(s.t <= cut for s in short.sockets)


def sampler_file(samples: list[tuple[float, list[str]]]) -> str:
    out = []
    for t, lines in samples:
        out.append(f"# tcpscen-ss boot=1 t={t:.6f} took=0.000000 rc=0")
        out.append("State Recv-Q Send-Q Local Address:Port Peer Address:Port Process")
        out += lines
        out.append("# end")
    return "\n".join(out) + "\n"


def test_a_four_tuple_back_after_a_sample_without_it_is_a_new_socket(tmp_path: Path) -> None:
    estab = "ESTAB 0 0 10.0.0.2:40000 10.0.0.1:80"
    (tmp_path / "c.ss-samples.txt").write_text(
        sampler_file([(1.0, [estab]), (1.2, [estab]), (1.4, []), (1.6, [estab]), (1.8, ["# garbage"])])
    )
    path = write_timeline(tmp_path, "c", ["c.ss-samples.txt", "missing.ss-samples.txt"])
    assert path is not None
    first, second = load_timeline(path, "c").of("10.0.0.2:40000", "10.0.0.1:80")
    assert [s.t for s in first.samples] == [1.0, 1.2] and first.gone is not None and first.gone.t == 1.4
    assert [s.t for s in second.samples] == [1.6] and second.gone is not None and second.gone.t == 1.8


def test_no_sampler_file_no_timeline(tmp_path: Path) -> None:
    assert write_timeline(tmp_path, "c", ["c.ss-samples.txt"]) is None


def test_lines_it_cannot_read_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "c.sockets.jsonl"
    good = SocketSample(1.0, 1, "ESTAB", "10.0.0.2:1", "10.0.0.1:2", 0, 0)
    row = {"kind": "socket", **{k: getattr(good, k) for k in good.__dataclass_fields__ if k != "line"}}
    path.write_text(
        "\n".join(
            [
                json.dumps({"kind": "sample", "t": 1.0, "boot": 1, "ok": True}),
                "not json",
                json.dumps({"kind": "socket", "t": "soon"}),
                json.dumps(row),
                json.dumps({"kind": "from-the-future"}),
            ]
        )
    )
    timeline = load_timeline(path, "c")
    assert [s.line for s in timeline.sockets] == [4] and len(timeline.ticks) == 1
