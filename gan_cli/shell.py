"""Command lines that gan-cli prints for the user to paste back: quoted for the shell and for
Hydra's override grammar, so any path (spaces, `=`, commas, brackets, quotes) survives both."""

from __future__ import annotations

import re
import shlex

# characters Hydra reads as part of an unquoted value (no `=`, `,`, brackets, quotes, `$`, `#`,
# whitespace, or a leading `~`), so such a value needs no Hydra quotes
_PLAIN = re.compile(r"[A-Za-z0-9_/.+\-:@%][A-Za-z0-9_/.+\-:@%~]*")


def hydra_value(value: str) -> str:
    """`value` as Hydra's override grammar reads it back unchanged: as is when plain, else in
    single quotes with quotes and interpolation markers escaped."""
    if _PLAIN.fullmatch(value):
        return value
    return "'" + value.replace("'", "\\'").replace("${", "\\${") + "'"


def shell_word(word: str) -> str:
    """`word` quoted for a POSIX shell: as is when safe, in double quotes when that suffices (the
    readable form for Hydra's single-quoted values), else shlex's single quotes."""
    if shlex.quote(word) == word:
        return word
    if not any(c in word for c in '"$`\\!'):
        return f'"{word}"'
    return shlex.quote(word)


def override(key: str, value: str) -> str:
    """One shell word `key=value` that the shell and Hydra both read back as `value`."""
    return shell_word(f"{key}={hydra_value(value)}")


def command(program: str, *args: str) -> str:
    """A command line of already-quoted words."""
    return " ".join([program, *args])
