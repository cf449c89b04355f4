"""The run's train.log: a copy of what a run prints. No torch here, so that gan-train can report a
config mistake before the seconds that importing torch takes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


class Transcript:
    """A copy of everything printed to stdout while a run lives, for its train.log. Held in memory
    until the run has a folder worth keeping (`keep`; a failed start leaves none), then appended
    to the file as it is printed. A file that cannot be written (a full disk) is dropped silently:
    the terminal still has every line."""

    def __init__(self) -> None:
        self._buffer: list[str] = []
        self._file: Any = None
        self._stdout: Any = None

    def __enter__(self) -> Transcript:
        self._stdout = sys.stdout
        sys.stdout = self  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stdout = self._stdout
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getattr__(self, name: str) -> Any:  # encoding, isatty, fileno ... of the real stdout
        return getattr(self._stdout, name)

    def write(self, text: str) -> int:
        self._stdout.write(text)
        self.log(text)
        return len(text)

    def log(self, text: str) -> None:
        """Into train.log only (what went to stderr, e.g. the final error)."""
        if self._file is None:
            self._buffer.append(text)
            return
        try:
            self._file.write(text)
            self._file.flush()
        except OSError:
            self._file = None

    def flush(self) -> None:
        self._stdout.flush()

    def keep(self, path: Path) -> None:
        """From now on append to `path`, starting with what was printed so far."""
        if self._file is not None:
            return
        try:
            self._file = open(path, "a")  # noqa: SIM115 - closed in __exit__
        except OSError:
            return
        self.log("".join(self._buffer))
        self._buffer = []
