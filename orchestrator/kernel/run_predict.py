"""The kernel model's prediction of when a host's app should see its connection die."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.kernel.settings import KernelSettings
from orchestrator.kernel.timers import keepalive_abort_after, next_timer_expiry, rto_abort_after
from orchestrator.scenario.model import AnyHost, Side
from orchestrator.tcp.connection import ConnectionSummary, FrameRef

_LINUX = KernelSettings()  # the kernel's defaults, named once (kernel/settings.py)


@dataclass(frozen=True)
class Prediction:
    kind: str  # "rto-abort" | "user-timeout" | "keepalive-abort"
    seconds: float  # from `start`
    start: FrameRef
    basis: str  # the settings the number comes from

    def describe(self) -> str:
        return f"{self.kind} {self.seconds:.3f}s after {self.start.file}#{self.start.frame} ({self.basis})"


def predict_abort(side: Side, host: AnyHost, conn: ConnectionSummary) -> Prediction | None:
    """Data this host sent and never saw acknowledged: the RTO budget; else keepalive, if it is on.
    `conn` is the connection as this host's own capture shows it."""
    opts = host.socket_options
    unacked = conn.oldest_unacked
    if unacked is not None and conn.oldest_unacked_from == side:
        if opts.user_timeout:
            return Prediction(
                "user-timeout", opts.user_timeout, unacked, f"TCP_USER_TIMEOUT={opts.user_timeout:g}s"
            )
        retries2 = retries2_of(host)
        budget = rto_abort_after(retries2)
        at = _first_expiry_after(budget, conn, unacked.time)
        basis = f"tcp_retries2={retries2}: budget {budget:g}s"
        if at != budget:
            basis += f", checked when the retransmission timer fires: first expiry after it at {at:.3f}s"
        return Prediction("rto-abort", at, unacked, basis)
    if opts.effective_keepalive and conn.last_activity is not None:
        idle, intvl, count = keepalive_settings(host)
        return Prediction(
            "keepalive-abort",
            keepalive_abort_after(idle, intvl, count),
            conn.last_activity,
            f"idle {idle:g}s + {count} x {intvl:g}s",
        )
    return None


def _first_expiry_after(budget: float, conn: ConnectionSummary, start: float) -> float:
    """The kernel tests the budget only when the retransmission timer fires (tcp_write_timeout), so
    the abort comes at the first expiry at or after it."""
    frames = conn.backoff_frames
    if len(frames) < 2:
        return budget
    expiry = next_timer_expiry(frames[-1].time - start, frames[-1].time - frames[-2].time)
    return max(expiry, budget)


def retries2_of(host: AnyHost) -> int:
    return host.sysctl("tcp_retries2", _LINUX.retries2)


def keepalive_settings(host: AnyHost) -> tuple[float, float, int]:
    opts = host.socket_options
    idle = opts.effective_keepidle or host.sysctl("tcp_keepalive_time", int(_LINUX.keepalive_time))
    intvl = opts.effective_keepintvl or host.sysctl("tcp_keepalive_intvl", int(_LINUX.keepalive_intvl))
    count = opts.keepcnt or host.sysctl("tcp_keepalive_probes", _LINUX.keepalive_probes)
    return float(idle), float(intvl), int(count)
