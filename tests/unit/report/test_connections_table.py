"""The report's table of a run's connections says each end's predicted fate beside what was
observed: a time where the packets show the end, its bounds where they only bound it (a user
timeout's clamp sends nothing), a dash where they show neither."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.report.runview import RunView
from orchestrator.report.sections import connections_table

T0 = 1000.0


def _conn(stream: int, prediction: dict[str, Any]) -> dict[str, Any]:
    return {
        "stream": stream,
        "client": f"10.0.0.1:{40000 + stream}",
        "server": "10.0.0.2:80",
        "hosts": {"client": "client", "server": "server"},
        "close": "none",
        "retransmissions": {"client": 4, "server": 0},
        "keepalive_probes": {"client": 0, "server": 0},
        "predictions": [prediction],
    }


def _prediction(**observed: Any) -> dict[str, Any]:
    return {"kind": "rto-abort", "side": "client", "predicted_s": 3.0, "from": {"time": T0 + 1.0}, **observed}


def test_each_fate_reads_as_the_packets_show_it() -> None:
    view = RunView("s", Path("."), [])
    view.connections = [
        _conn(0, _prediction(observed_s=3.1)),
        _conn(1, _prediction(observed_s=None, observed_window_s=[2.916, 5.22])),
        _conn(2, _prediction(observed_s=None)),
    ]
    html = connections_table(view, T0)
    assert "rto-abort +4.000 s (observed +4.100 s)" in html
    assert "rto-abort +4.000 s (observed between +3.916 and +6.220 s)" in html
    assert "rto-abort +4.000 s (observed -)" in html
