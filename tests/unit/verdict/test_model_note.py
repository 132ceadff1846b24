"""The kernel model's note names every end the model allows, and the one the capture fits.

Measured (tcpscen run, kernel 6.18): a client with tcp_retries2=4 (6.2 s) whose server was
blackholed, healed and blackholed again; its timer's fourth expiry came 6.204 s after the first
retransmission of the second cut, the model's knife-edge end (6.181 s, the expiry just short of
the budget and fired late), not its first one (12.773 s). The note said only "rto-abort ends it
at +19.954s", 6.5 s after the app was told ETIMEDOUT, though the check passed on the other end."""

from __future__ import annotations

from orchestrator.kernel.predict import KernelPrediction, judge
from orchestrator.verdict.judge import model_note

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
