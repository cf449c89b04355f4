"""The errors a user can fix, below every module that raises or reports them.

Each command prints a `UserError` as one paragraph (no traceback) and exits with code 2; within
a sweep, a job that raises one is recorded as failed and the sweep goes on. Modules define their
own subclasses (DataError, CheckpointError, ...) so that a message's origin stays visible.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the user can fix (a config key, a file, a setting); the message says what and how."""


class CommandError(UserError):
    """gan-sample, gan-eval or gan-report cannot do what their arguments ask."""


class ModelConfigError(UserError, ValueError):
    """The model cannot be built for this data set; the message names the key and says why."""
