"""A data set before batching: decoded arrays, or a reader that decodes one item at a time."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from gan_cli.data.stacked import StackedDigits


@dataclass
class Source:
    length: int
    labels: Tensor | None  # int64 (length,), or None when unlabelled
    num_classes: int
    # uint8 (length, C, H, W) images at the configured size (Stacked MNIST: a view that builds them
    # when indexed), or float (length, dim) points
    arrays: Tensor | StackedDigits | None = None
    read: Callable[[int], Tensor] | None = None  # item -> uint8 (C, H, W) at the configured size
    fingerprint: str | None = None  # identifies the decoded content, for the on-disk cache
    cache_dir: Path | None = None  # where decoded arrays may be cached (None = never)
