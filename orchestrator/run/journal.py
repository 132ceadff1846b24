"""The run directory: agents' events, the timeline and the verdict, written as the run goes
(and finished in `finally`), so an interrupted run still leaves its evidence."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any

from orchestrator.run.records import FaultRecord


class Journal:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._lock = threading.Lock()
        self._files: dict[str, IO[str]] = {}

    def agent_line(self, host: str, line: str) -> None:
        self._append(f"{host}.events.jsonl", line)

    def fault(self, record: FaultRecord) -> None:
        self._append("timeline.jsonl", record.to_json())

    def note(self, kind: str, **fields: Any) -> None:
        self._append("timeline.jsonl", json.dumps({"kind": kind, **fields}))

    def write_text(self, name: str, text: str) -> None:
        (self.run_dir / name).write_text(text)

    def write_json(self, name: str, data: Any) -> None:
        (self.run_dir / name).write_text(json.dumps(data, indent=2) + "\n")

    def close(self) -> None:
        with self._lock:
            for f in self._files.values():
                f.close()
            self._files.clear()

    def _append(self, name: str, line: str) -> None:
        with self._lock:
            f = self._files.get(name)
            if f is None:
                f = self._files[name] = (self.run_dir / name).open("a", buffering=1)
            f.write(line.rstrip("\n") + "\n")
