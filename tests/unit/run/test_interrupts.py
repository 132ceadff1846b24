from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
import typer

from orchestrator import interrupts
from orchestrator.interrupts import CleanupAborted, Interrupted, cleaning, farewell, hold, release, shielded


@pytest.fixture(autouse=True)
def handler() -> Iterator[None]:
    interrupts.reset()
    old = signal.signal(signal.SIGUSR1, interrupts.on_signal)
    # A worker hands the interrupt over as SIGINT (`_thread.interrupt_main`), which runs the
    # handler installed for SIGINT: the CLI's entry installs this one for both.
    old_int = signal.signal(signal.SIGINT, interrupts.on_signal)
    yield
    signal.signal(signal.SIGUSR1, old)
    signal.signal(signal.SIGINT, old_int)
    interrupts.reset()


def ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGUSR1)
    time.sleep(0.02)  # the handler runs at the next bytecode boundary of the main thread


def test_an_interrupt_outside_a_shield_is_immediate() -> None:
    with pytest.raises(Interrupted):
        ctrl_c()
        time.sleep(1)


def test_an_interrupt_inside_a_shield_waits_for_its_end() -> None:
    finished = False
    with pytest.raises(Interrupted), shielded():
        ctrl_c()
        time.sleep(0.05)
        finished = True  # the creation call completes: the object will be known to the clean-up
    assert finished


def test_a_workers_shield_hands_the_interrupt_to_the_main_thread() -> None:
    entered, release_worker = threading.Event(), threading.Event()

    def worker() -> None:
        with shielded():
            entered.set()
            release_worker.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    entered.wait(5)
    with pytest.raises(Interrupted):
        ctrl_c()  # deferred: the worker is inside its shield
        time.sleep(0.05)
        release_worker.set()
        t.join(5)
        time.sleep(0.5)
    assert interrupts._signals == 1, "the hand-over is not counted as a second signal"


def test_a_clean_up_finishes_through_two_signals_then_the_interrupt_is_raised(
    capfd: pytest.CaptureFixture[str],
) -> None:
    token = hold(lambda: ["container tcpscen-x-client-1"])
    steps = []
    with pytest.raises(Interrupted), cleaning():
        for step in range(3):
            if step < 2:
                ctrl_c()
            steps.append(step)
    release(token, [])
    assert steps == [0, 1, 2]
    err = capfd.readouterr().err
    assert "interrupted: cleaning up, please wait" in err
    assert "still cleaning up, please wait (one more signal aborts it" in err
    assert farewell() == "interrupted; nothing of the run is left behind"


def test_a_second_signal_never_interrupts_the_clean_up_it_started(capfd: pytest.CaptureFixture[str]) -> None:
    """The first signal stops the run; the second, 0.1 s later, lands in the clean-up: held."""
    token = hold(lambda: [])
    finished = False
    with pytest.raises(Interrupted):
        try:
            ctrl_c()
            time.sleep(1)
        finally:
            with cleaning():
                ctrl_c()
                time.sleep(0.05)
                finished = True
            release(token, [])
    assert finished
    assert "still cleaning up" in capfd.readouterr().err


def test_the_third_signal_aborts_after_saying_what_is_left(capfd: pytest.CaptureFixture[str]) -> None:
    hold(lambda: ["the containers and network of run r1 (label tcpscen.run=r1)", "nftables table bridge t"])
    with pytest.raises(CleanupAborted), cleaning():
        for _ in range(3):
            ctrl_c()
        time.sleep(1)
    err = capfd.readouterr().err
    assert "aborted; left behind:\n  the containers and network of run r1" in err
    assert "  nftables table bridge t\n`tcpscen clean` removes it" in err


def test_the_farewell_says_what_the_clean_up_found_left() -> None:
    assert farewell() == "interrupted"  # no run had begun
    release(hold(lambda: []), ["network tcpscen-r1"])
    assert farewell() == "interrupted; left behind:\n  network tcpscen-r1\n`tcpscen clean` removes it"


def test_without_a_clean_up_to_protect_a_second_signal_ends_at_once() -> None:
    with pytest.raises(Interrupted):
        ctrl_c()
    with pytest.raises(Interrupted):
        ctrl_c()


@pytest.mark.parametrize("raised", [KeyboardInterrupt, Interrupted])
def test_typer_lets_the_interrupt_through_to_the_entry(raised: type[BaseException]) -> None:
    """typer turns a KeyboardInterrupt into its own exit 130 before the entry could say what the
    clean-up did; Interrupted passes through to it."""
    app = typer.Typer()

    @app.command()
    def command() -> None:
        raise raised

    with pytest.raises(SystemExit if raised is KeyboardInterrupt else Interrupted):
        app([], standalone_mode=True)
