"""The report in a real headless browser (Debian's chromium): it renders, the screenshot is not
blank and shows the page's colours, and the diagram's arrows are in the rendered DOM."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from collections import Counter
from html.parser import HTMLParser
from itertools import accumulate
from pathlib import Path

import pytest

from orchestrator.report import html
from orchestrator.report.artifacts import write_artifacts
from orchestrator.report.runview import load_view
from tests.helpers.reportrun import make_run, write_verdict

WIDTH, HEIGHT = 1400, 2000
PASS_GREEN = (0x16, 0xA3, 0x4A)  # the PASS badge
FAIL_RED = (0xDC, 0x26, 0x26)  # the FAIL badge
RETX_ORANGE = (0xEA, 0x58, 0x0C)  # retransmission arrows


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed: `make test` installs it (scripts/setup-host.sh, apt-get)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={WIDTH},{HEIGHT}",
    ]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def page(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    scenario, verdict, record = make_run(d)
    assert "report.html" in write_artifacts(d, scenario, verdict, record), verdict.notes
    write_verdict(d, verdict)
    return d / "report.html"


def test_the_screenshot_shows_the_report(page: Path, tmp_path: Path) -> None:
    png = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={png}", page.as_uri())
    assert done.returncode == 0 and png.exists(), done.stderr[-2000:]
    width, height, pixels = decode_png(png)
    assert (width, height) == (WIDTH, HEIGHT)
    colours = Counter(pixels)
    background = colours.most_common(1)[0][1]
    assert len(colours) > 200, "a blank or nearly blank page"
    assert background < 0.9 * len(pixels), "mostly one colour"
    assert colours[PASS_GREEN] > 100 and colours[FAIL_RED] > 100  # the verdict's badges
    near_orange = sum(
        n for c, n in colours.items() if max(abs(a - b) for a, b in zip(c, RETX_ORANGE, strict=True)) <= 12
    )
    assert near_orange > 200, "the retransmission arrows are not on the screen"


def test_the_diagram_is_in_the_rendered_dom(page: Path, tmp_path: Path) -> None:
    done = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = SvgCounter()
    dom.feed(done.stdout)
    (ladder,) = html.run_ladders_of(load_view(page.parent))
    assert dom.arrows_in_ladder == len(ladder.rows) > 10
    assert dom.svgs == {"ladder": 1, "time-sequence": 2}
    assert dom.fault_bands >= 1


class SvgCounter(HTMLParser):
    """Counts the ladder's arrows: <line class="arrow"> inside <svg class="ladder">."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.svgs: dict[str, int] = {}
        self.arrows_in_ladder = 0
        self.fault_bands = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        if tag == "svg":
            self.svgs[cls] = self.svgs.get(cls, 0) + 1
            self.stack.append(cls)
        elif tag == "line" and "arrow" in cls.split() and "ladder" in self.stack:
            self.arrows_in_ladder += 1
        elif tag == "g" and cls == "fault" and "ladder" in self.stack:
            self.fault_bands += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg" and self.stack:
            self.stack.pop()


def decode_png(path: Path) -> tuple[int, int, list[tuple[int, ...]]]:
    """A small PNG reader (8-bit RGB or RGBA, the five filters): pixels as RGB tuples."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = ctype = 0
    while pos < len(data):
        n, kind = struct.unpack_from(">I4s", data, pos)
        body = data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack_from(">IIBB", body)
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    prev = bytearray(stride)
    pixels: list[tuple[int, ...]] = []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, prev, bpp)
        pixels += [tuple(line[i : i + 3]) for i in range(0, stride, bpp)]
        prev = line
    return width, height, pixels


def _unfilter(kind: int, line: bytearray, prev: bytearray, bpp: int) -> None:
    if kind == 1:  # Sub
        for c in range(bpp):
            line[c::bpp] = bytes(x & 255 for x in accumulate(line[c::bpp]))
    elif kind == 2:  # Up
        line[:] = bytes((a + b) & 255 for a, b in zip(line, prev, strict=True))
    elif kind in (3, 4):  # Average, Paeth
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            if kind == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 255
                continue
            c = prev[i - bpp] if i >= bpp else 0
            pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
