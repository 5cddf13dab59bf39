r"""Noise schedules: total noise $\bar\sigma(t)$ and its rate $\sigma(t)$ for t in [0, 1]."""

from ddiff.schedules.base import Noise, NoiseSchedule
from ddiff.schedules.cosine import CosineSchedule
from ddiff.schedules.geometric import GeometricSchedule
from ddiff.schedules.loglinear import LogLinearSchedule

__all__ = ["CosineSchedule", "GeometricSchedule", "LogLinearSchedule", "Noise", "NoiseSchedule"]
