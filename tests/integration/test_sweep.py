"""The shipped sweep on the engine, through the real CLI: one run per tcp_retries2 value, three at
once, and the summary: each run's abort where the kernel model says, the model's curve drawn
over the whole range through the observed points."""

from __future__ import annotations

import json
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.kernel.predict import TOLERANCE, WHEEL_SLACK
from tests.integration.conftest import ROOT, TCPSCEN, scenario_names, tcpscen

pytestmark = pytest.mark.engine

KEY = "hosts.client.sysctls.net.ipv4.tcp_retries2"


def test_every_sweep_is_tested() -> None:
    assert scenario_names(sweeps=True) == ["sweep_retries2"]


def test_sweep_retries2(tmp_path: Path) -> None:
    started = time.monotonic()
    r = tcpscen(
        "run", "-j", "3", "--json", ROOT / "scenarios/sweep_retries2.yaml", runs_dir=tmp_path, timeout=400
    )
    took = time.monotonic() - started
    assert r.code == 0, r.stdout + r.stderr
    # --json: one object per run on stdout, nothing else.
    runs = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(o["sweep"]["values"][KEY] for o in runs) == [3, 5, 8]
    assert all(o["verdict"] == "PASS" and Path(o["report"]).exists() for o in runs)
    # All three at once: the whole sweep takes about as long as its longest run (the 8's).
    longest = max(o["duration_s"] for o in runs)
    assert took < longest + 30, (took, longest)

    (sweep_dir,) = tmp_path.iterdir()
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    rows = {row["values"][KEY]: row for row in summary["rows"]}
    assert sorted(rows) == [3, 5, 8]
    for n, row in rows.items():
        end = row["ends"]["client"]
        assert row["verdict"] == "PASS" and end["kind"] == "rto-abort"
        assert end["within_tolerance"] is True, (n, end)
        # At a knife edge (tcp_retries2=3: 7 x RTO about the 3 s budget) the kernel may end at
        # the model's other end, which the prediction lists: judged against the nearest, as the
        # verdict is.
        nearest = min([end["predicted_s"], *end["alternatives"]], key=lambda e: abs(e - end["observed_s"]))
        off = end["observed_s"] / nearest - 1
        assert -TOLERANCE <= off <= TOLERANCE + WHEEL_SLACK, (n, end)
        assert end["app_sees"] == "ETIMEDOUT"
        assert (sweep_dir / row["report"]).exists()
    predicted = [rows[n]["ends"]["client"]["predicted_s"] for n in (3, 5, 8)]
    assert predicted[0] < predicted[1] < predicted[2] and predicted[2] > 100

    (curve,) = [c for c in summary["curves"] if c["host"] == "client"]
    assert [x for x, _ in curve["points"]] == [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # the whole range
    model = dict((x, y) for x, y in curve["points"])
    for n, row in rows.items():
        # The curve uses the runs' median RTO; each run's prediction uses its own. At a knife edge
        # (tcp_retries2=3: 7 x RTO is about the 3 s budget) the two RTOs may fall either side of
        # it: the curve then meets one of the ends the run's prediction allows. Every end is a sum
        # of RTOs, so a run whose RTO differs from the median (on a loaded machine the RTT, and
        # with it the RTO, grew 3.6% in one run of three) differs from the curve as much.
        end = row["ends"]["client"]
        ends = [end["predicted_s"], *end["alternatives"]]
        rel = 0.03 + abs(end["rto_s"] / curve["rto_s"] - 1)
        met = [e for e in ends if model[float(n)] == pytest.approx(e, rel=rel)]
        assert met, (n, model[float(n)], ends)
        if met[0] == end["predicted_s"]:  # the same side of any knife edge as the run: its end too
            assert model[float(n)] == pytest.approx(end["observed_s"], rel=0.1), n

    page = (sweep_dir / "index.html").read_text()
    found = Marks()
    found.feed(page)
    assert found.count("polyline", "model") == 1 and found.points == 6
    assert found.count("circle", "point predicted") == 3
    assert found.count("circle", "point observed") == 3
    for n in (3, 5, 8):
        assert f'href="tcp_retries2={n}/report.html"' in page

    # `tcpscen report` on the sweep's directory makes each run's report again.
    made = {n: sweep_dir / rows[n]["report"] for n in (3, 5, 8)}
    for path in made.values():
        path.unlink()
    command = [*TCPSCEN, "report", str(sweep_dir)]
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "a sweep, its 3 runs" in again.stdout
    assert all(path.exists() for path in made.values())


class Marks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str]] = []
        self.points = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.seen.append((tag, found.get("class") or ""))
        if tag == "polyline" and found.get("class") == "model":
            self.points = len((found.get("points") or "").split())

    def count(self, tag: str, cls: str) -> int:
        return self.seen.count((tag, cls))
