"""Normalisation layers chosen by name, so G and D of every model share one switch."""

from __future__ import annotations

from torch import nn


def norm_2d(kind: str, channels: int) -> nn.Module:
    """Feature-map normalisation; 'layer' normalises each sample over (C, H, W)."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def norm_1d(kind: str, features: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    return nn.Identity()
