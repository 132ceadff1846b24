from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from orchestrator.interrupts import on_signal, shielded


@pytest.fixture
def handler() -> object:
    old = signal.signal(signal.SIGUSR1, on_signal)
    # A worker hands the interrupt over as SIGINT (`_thread.interrupt_main`), which does nothing
    # unless Python handles SIGINT: make sure it does, whatever ran in this process before.
    old_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGUSR1, old)
    signal.signal(signal.SIGINT, old_int)


def test_an_interrupt_outside_a_shield_is_immediate(handler: object) -> None:
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(1)


def test_an_interrupt_inside_a_shield_waits_for_its_end(handler: object) -> None:
    finished = False
    with pytest.raises(KeyboardInterrupt), shielded():
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.05)
        finished = True  # the creation call completes: the object will be known to the clean-up
    assert finished


def test_a_workers_shield_hands_the_interrupt_to_the_main_thread(handler: object) -> None:
    entered, release = threading.Event(), threading.Event()

    def worker() -> None:
        with shielded():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=worker)
    t.start()
    entered.wait(5)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGUSR1)  # deferred: the worker is inside its shield
        time.sleep(0.05)
        release.set()
        t.join(5)
        time.sleep(0.5)
