"""Ctrl-C and SIGTERM: the first stops the run and starts its clean-up, which then finishes
whatever signals arrive; only a third aborts it, after saying what is left.

* An interrupt that lands inside an engine call that creates an object (`shielded`) waits until
  the call returns: the engine would create the object anyway, after the clean-up looked for it.
* While a clean-up runs (`cleaning`), signals are held: the first says "cleaning up, please
  wait", the second that a third aborts, the third prints what is left (each clean-up registered
  with `hold` says what it still has) and that `tcpscen clean` removes it, then aborts.
* The interrupt is `Interrupted`, not `KeyboardInterrupt`, so that no library turns it into its
  own exit first (click prints "Aborted!"): the CLI's entry catches it and says, truly, whether
  anything was left (`farewell`).

The handler never takes a lock (it runs in the main thread, between any two bytecodes, maybe
while that thread holds one) and writes with os.write (a buffered stream may be mid-write).
"""

from __future__ import annotations

import _thread
import contextlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

ABORT_AFTER = 3  # signals: the third aborts a clean-up
Describe = Callable[[], list[str]]  # what a clean-up still has, one item a line


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM. A BaseException like KeyboardInterrupt, so that only `finally` and
    explicit handlers see it, but not one, so that click and typer let it through."""


class CleanupAborted(BaseException):
    """The third signal: the clean-up was abandoned (what is left has been printed)."""


_signals = 0
_open = {"shield": 0, "clean": 0}  # shielded creation calls, and clean-ups, going on
_pending = threading.Event()  # a signal held until a shield or a clean-up ends
_handing_back = False  # a worker's shield ended: the next SIGINT is that hand-over, not a new one
_lock = threading.Lock()  # for the counters above, never taken by the handler
_holds: dict[int, Describe] = {}  # clean-ups that will run, or are running
_left: dict[int, list[str]] = {}  # clean-ups finished: what each could not remove
_tokens = itertools.count(1)


def on_signal(signum: int, frame: FrameType | None) -> None:
    """The handler for SIGINT and SIGTERM (installed by the CLI's entry)."""
    global _signals, _handing_back  # noqa: PLW0603 - process-wide: signals reach the main thread only
    if _handing_back:
        _handing_back = False
        raise Interrupted
    _signals += 1
    if _signals >= ABORT_AFTER and (_holds or _open["clean"]):
        _say(abort_message())
        raise CleanupAborted
    if _signals == 1 and (_holds or _open["clean"]):
        _say("interrupted: cleaning up, please wait")
    elif _signals > 1 and (_holds or _open["clean"]):
        _say("still cleaning up, please wait (one more signal aborts it: `tcpscen clean` removes the rest)")
        return
    if _open["shield"] or _open["clean"]:
        _pending.set()
        return
    raise Interrupted


@contextmanager
def shielded() -> Iterator[None]:
    """An engine call that creates an object: an interrupt waits for its end."""
    with _counted("shield"):
        yield


@contextmanager
def cleaning() -> Iterator[None]:
    """A clean-up: it runs to its end whatever signals arrive (but the third); an interrupt that
    came meanwhile is raised after it."""
    with _counted("clean"):
        yield


@contextmanager
def _counted(counter: str) -> Iterator[None]:
    """Count one more shield or clean-up while the body runs; at the end of the last, raise the
    interrupt held meanwhile, unless one (or an abort) is already on its way out."""
    with _lock:
        _open[counter] += 1
    try:
        yield
    except (Interrupted, CleanupAborted, KeyboardInterrupt):
        _uncount(counter)
        raise
    except BaseException:
        _uncount(counter)
        _fire_pending()
        raise
    _uncount(counter)
    _fire_pending()


def _uncount(counter: str) -> None:
    with _lock:
        _open[counter] -= 1


def hold(describe: Describe) -> int:
    """A clean-up to come (a backend that makes objects): until `release`, signals after the
    first are held, and an abort prints `describe()`."""
    token = next(_tokens)
    with _lock:
        _holds[token] = describe
    return token


def release(token: int, left: list[str]) -> None:
    """The clean-up finished; `left`: what it could not remove (empty: nothing)."""
    with _lock:
        _holds.pop(token, None)
        _left[token] = left


def abort_message() -> str:
    items = [item for describe in list(_holds.values()) for item in _described(describe)]
    items += [item for left in list(_left.values()) for item in left]
    if not items:
        return "aborted; nothing of the run is left behind"
    return (
        "aborted; left behind:\n" + "\n".join(f"  {item}" for item in items) + "\n`tcpscen clean` removes it"
    )


def farewell() -> str:
    """The last line after an interrupt: whether the clean-ups left anything, as they found."""
    items = [item for left in _left.values() for item in left]
    items += [item for describe in _holds.values() for item in _described(describe)]
    if items:
        return (
            "interrupted; left behind:\n"
            + "\n".join(f"  {i}" for i in items)
            + "\n`tcpscen clean` removes it"
        )
    if _left:
        return "interrupted; nothing of the run is left behind"
    return "interrupted"


def reset() -> None:
    """A fresh start (for tests in one process)."""
    global _signals, _handing_back  # noqa: PLW0603
    _signals = 0
    _open.update(shield=0, clean=0)
    _handing_back = False
    _pending.clear()
    _holds.clear()
    _left.clear()


def _fire_pending() -> None:
    with _lock:
        fire = not _open["shield"] and not _open["clean"] and _pending.is_set()
        if fire:
            _pending.clear()
    if not fire:
        return
    if threading.current_thread() is threading.main_thread():
        raise Interrupted
    global _handing_back  # noqa: PLW0603
    _handing_back = True
    _thread.interrupt_main()  # a worker's shield (-j): hand the interrupt back to the main thread


def _items() -> list[str]:
    items = [item for describe in list(_holds.values()) for item in _described(describe)]
    return items + [item for left in list(_left.values()) for item in left]


def _listed(items: list[str]) -> str:
    return "".join(f"\n  {item}" for item in items) + "\n`tcpscen clean` removes it"


def _described(describe: Describe) -> list[str]:
    try:
        return describe()
    except Exception as exc:  # it must never hide the message
        return [f"(could not tell: {exc})"]


def _say(text: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, ("\n" + text + "\n").encode(errors="replace"))
