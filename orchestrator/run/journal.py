"""The run directory: agents' events, the timeline and the verdict, written as the run goes
(and finished in `finally`), so an interrupted run still leaves its evidence.

Lines come from the apps' follower threads too, so a failed write (a full disk) is kept, not
raised there: `check()` raises it in the run loop, which then stops with exit 3 naming the file."""

from __future__ import annotations

import json
import threading
from typing import IO, Any

from orchestrator.errors import StorageError
from orchestrator.run.records import FaultRecord
from orchestrator.rundir import RunDir


class Journal:
    def __init__(self, files: RunDir) -> None:
        self.files = files
        self.failure: StorageError | None = None
        self._lock = threading.Lock()
        self._files: dict[str, IO[str]] = {}
        self._broken: set[str] = set()

    def agent_line(self, host: str, line: str) -> None:
        self._append(f"{host}.events.jsonl", line)

    def fault(self, record: FaultRecord) -> None:
        self._append("timeline.jsonl", record.to_json())

    def note(self, kind: str, **fields: Any) -> None:
        self._append("timeline.jsonl", json.dumps({"kind": kind, **fields}))

    def write_text(self, name: str, text: str) -> None:
        self.files.write(name, text)

    def write_json(self, name: str, data: Any) -> None:
        self.files.write(name, json.dumps(data, indent=2) + "\n")

    def check(self) -> None:
        """Raise the first write that failed, if any; or a full disk, which the captures cannot
        tell (tcpdump keeps running when its writes fail, and the pcaps would be cut short)."""
        if self.failure is None:
            self.failure = self.files.full()
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        with self._lock:
            for name, f in self._files.items():
                try:
                    f.close()
                except OSError as exc:  # the last buffered line could not be written
                    self._failed(name, exc)
            self._files.clear()

    def _append(self, name: str, line: str) -> None:
        with self._lock:
            if name in self._broken:
                return
            try:
                f = self._files.get(name)
                if f is None:
                    f = self._files[name] = self.files.append(name)
                f.write(line.rstrip("\n") + "\n")
            except StorageError as exc:
                self._broken.add(name)
                self.failure = self.failure or exc
            except OSError as exc:
                self._failed(name, exc)

    def _failed(self, name: str, exc: OSError) -> None:
        self._broken.add(name)
        if self.failure is None:
            self.failure = StorageError(f"cannot write {self.files.path / name}: {exc.strerror or exc}")
