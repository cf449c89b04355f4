"""The errors a user can fix, below every module that raises or reports them.

Each command prints a `UserError` as one paragraph (no traceback) and exits with code 2; within
a sweep, a job that raises one is recorded as failed and the sweep goes on. Modules define their
own subclasses (DataError, CheckpointError, ...) so that a message's origin stays visible.
`Interrupted` (SIGINT or SIGTERM stopped a run) lives here too. Nothing here imports torch: gan-train
reports a config mistake before it pays for that import.
"""

from __future__ import annotations

import signal
from pathlib import Path


class UserError(Exception):
    """Something the user can fix (a config key, a file, a setting); the message says what and how."""


class CommandError(UserError):
    """gan-sample, gan-eval or gan-report cannot do what their arguments ask."""


class ModelConfigError(UserError, ValueError):
    """The model cannot be built for this data set; the message names the key and says why."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived; a checkpoint was written (`checkpoint`), or none could be (None:
    the state was not finite), and `last_good` says what the checkpoints folder holds."""

    def __init__(self, signum: int, checkpoint: Path | None, last_good: str) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.checkpoint = checkpoint
        self.last_good = last_good
