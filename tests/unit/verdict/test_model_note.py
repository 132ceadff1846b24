"""The kernel model's note names every end the model allows, and the one the capture fits.

Measured (tcpscen run, kernel 6.18): a client with tcp_retries2=4 (6.2 s) whose server was
blackholed, healed and blackholed again; its timer's fourth expiry came 6.204 s after the first
retransmission of the second cut, the model's knife-edge end (6.181 s, the expiry just short of
the budget and fired late), not its first one (12.773 s). The note said only "rto-abort ends it
at +19.954s", 6.5 s after the app was told ETIMEDOUT, though the check passed on the other end."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.kernel.predict import (
    KernelPrediction,
    judge,
    predict_connection,
    prediction_from_json,
    prediction_json,
)
from orchestrator.kernel.settings import parse_settings
from orchestrator.tcp.analysis import analyze_file
from orchestrator.verdict.judge import Verdict, model_note
from orchestrator.verdict.outcome import AppOutcome
from tests.helpers.recorded_runs import rejudge

T0 = 1000.0
START = T0 + 7.181


def _prediction(observed: float | None, alternatives: list[float]) -> KernelPrediction:
    p = KernelPrediction(
        "rto-abort",
        "client",
        12.773302,
        START,
        "the first retransmission by the timer",
        "tcp_retries2=4 (scenario): a budget of 6.2 s from the first retransmission",
        observed_s=observed,
        observed="inferred: ...",
        alternatives=alternatives,
    )
    judge(p, 0.10)
    return p


def test_a_knife_edge_end_the_capture_fits_is_named() -> None:
    note = model_note("client", _prediction(6.20428, [6.180629]), T0)
    assert note.startswith(
        "kernel model, client: rto-abort ends it at +19.954s or at +13.362s "
        "(what the capture shows fits +13.362s), the app told ETIMEDOUT"
    )


def test_an_end_that_fits_none_is_not_claimed() -> None:
    note = model_note("client", _prediction(30.0, [6.180629]), T0)
    assert "ends it at +19.954s or at +13.362s, the app told" in note
    assert "fits" not in note


def test_a_single_end_reads_as_before() -> None:
    note = model_note("client", _prediction(12.8, []), T0)
    assert note.startswith("kernel model, client: rto-abort ends it at +19.954s, the app told ETIMEDOUT (")


# Recorded in netns (tests/unit/kernel/recorded/after_fin, kernel 6.18): a FIN into a cut with
# tcp_retries2=5 and tcp_orphan_retries=2. After close() the orphan went 3.5 s after the cut, and
# no app was told (it had closed the socket); after shutdown() the app got ETIMEDOUT 13.6 s after it.
AFTER_FIN = Path(__file__).parents[1] / "kernel" / "recorded" / "after_fin"
CLOSE_GONE = 1796180633.0192606  # the orphan first missing from ss
SHUTDOWN_ETIMEDOUT = 1796180643.04556  # the shutdown() client's error event


def _after_fin(name: str, end: float) -> KernelPrediction:
    analysis = analyze_file(AFTER_FIN / name)
    s = parse_settings(["tcp_retries2=5", "tcp_orphan_retries=2"], [])
    (p,) = predict_connection(analysis.connections[0], lambda _: s, analysis.icmp_errors, end)
    return p


def test_an_orphans_end_the_capture_fits_tells_no_app() -> None:
    p = _after_fin("close.pcap", CLOSE_GONE + 1)
    note = model_note("client", p, p.start_time)
    assert (
        "(what the capture shows fits +2.898s), no app told: the end the capture fits is an orphan's" in note
    )
    assert "the app told ETIMEDOUT" not in note


def test_a_shut_down_sockets_end_tells_etimedout_and_names_the_orphans() -> None:
    p = _after_fin("shutdown.pcap", SHUTDOWN_ETIMEDOUT + 1)
    note = model_note("client", p, p.start_time)
    assert (
        "(what the capture shows fits +12.864s), the app told ETIMEDOUT "
        "(nothing if it had close()d the socket: an orphan, ending at +2.905s)"
    ) in note


def test_the_orphans_end_is_in_the_json_only_where_the_model_allows_one() -> None:
    p = _after_fin("close.pcap", CLOSE_GONE + 1)
    raw = prediction_json(p)
    assert raw["orphan_s"] == p.orphan_s == min(p.alternatives)
    assert prediction_from_json(raw).orphan_s == p.orphan_s
    assert "orphan_s" not in prediction_json(_prediction(12.8, []))


# What the app's events say beside the model's word (a pool's idle connection makes no call after
# the abort: the kernel keeps ETIMEDOUT for a call that never comes).
def test_without_the_apps_events_the_model_says_what_it_is_told() -> None:
    assert "the app told ETIMEDOUT (" in model_note("client", _prediction(12.8, []), T0, None)


def test_an_app_that_saw_nothing_where_the_capture_shows_no_end() -> None:
    note = model_note("client", _prediction(None, []), T0, AppOutcome("client", "nothing", None))
    assert "the app told ETIMEDOUT (its events show no error, nor the capture an end)" in note


def test_an_app_that_saw_the_error_is_told_with_its_time() -> None:
    seen = AppOutcome("client", "ETIMEDOUT", T0 + 13.4, "recv: timed out")
    note = model_note("client", _prediction(6.20428, [6.180629]), T0, seen)
    assert "the app told ETIMEDOUT (its events: ETIMEDOUT at +13.400s)" in note


def test_an_app_that_saw_nothing_is_not_said_to_be_told() -> None:
    note = model_note("client", _prediction(12.8, []), T0, AppOutcome("client", "nothing", None))
    assert "the app told" not in note
    assert (
        "ETIMEDOUT kept for the app's next call on the socket (its events show no error on this "
        "connection: it made no call after the end)"
    ) in note


def test_an_end_after_the_run_explains_an_app_that_saw_nothing() -> None:
    p = _prediction(None, [])
    p.beyond_capture = True
    note = model_note("client", p, T0, AppOutcome("client", "nothing", None))
    assert "the app told ETIMEDOUT (its events show none: the run ended before)" in note


def test_an_app_that_saw_another_end_is_said_so() -> None:
    seen = AppOutcome("client", "ECONNRESET", T0 + 3.0, "recv: reset")
    note = model_note("client", _prediction(12.8, []), T0, seen)
    assert "the app's error ETIMEDOUT by the model, where its events show ECONNRESET at +3.000s" in note
    assert "the app told" not in note


def _without_errors(run_dir: Path) -> None:
    """The client's events with its error taken out: an app that made no call after the abort."""
    events = run_dir / "client.events.jsonl"
    kept = [line for line in events.read_text().splitlines() if '"event":"error"' not in line]
    events.write_text("\n".join(kept) + "\n")


def _client_model_note(verdict: Verdict) -> str:
    return next(n for n in verdict.notes if n.startswith("kernel model, client:"))


@pytest.mark.parametrize(("name", "at"), [("keepalive_on_cut", "+5.395s"), ("nat_idle_timeout", "+21.969s")])
def test_a_recorded_run_says_when_the_app_was_told(tmp_path: Path, name: str, at: str) -> None:
    """Recorded runs (kernel 6.18): the client's recv got ETIMEDOUT at the abort (keep-alive's,
    the retransmissions')."""
    note = _client_model_note(rejudge(name, tmp_path))
    assert f"the app told ETIMEDOUT (its events: ETIMEDOUT at {at})" in note


@pytest.mark.parametrize("name", ["keepalive_on_cut", "nat_idle_timeout"])
def test_a_recorded_run_whose_app_saw_nothing_is_not_said_to_be_told(tmp_path: Path, name: str) -> None:
    verdict = rejudge(name, tmp_path, _without_errors)
    note = _client_model_note(verdict)
    assert "the app told" not in note
    assert "ETIMEDOUT kept for the app's next call on the socket" in note
    assert verdict.apps["client"].sees == "nothing"
