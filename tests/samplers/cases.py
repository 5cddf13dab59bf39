"""The samplers every sampler test runs over: a new sampler is one line here."""

from __future__ import annotations

from ddiff.samplers import AnalyticSampler, EulerSampler, Sampler, TauLeapingSampler

SAMPLERS: dict[str, type[Sampler]] = {
    "euler": EulerSampler,
    "tau-leaping": TauLeapingSampler,
    "analytic": AnalyticSampler,
}
