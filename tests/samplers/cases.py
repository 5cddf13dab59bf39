"""The samplers every sampler test runs over: every concrete `Sampler` class in ddiff.

They come from `tests.testing.registry`; a new sampler class needs a name in `EXAMPLES`, or
`tests/samplers/test_contract.py::test_every_sampler_class_has_a_name` fails.
"""

from __future__ import annotations

from ddiff.samplers import AnalyticSampler, EulerSampler, Sampler, TauLeapingSampler
from tests.testing import registry

EXAMPLES: dict[type[Sampler], dict[str, type[Sampler]]] = {
    EulerSampler: {"euler": EulerSampler},
    TauLeapingSampler: {"tau-leaping": TauLeapingSampler},
    AnalyticSampler: {"analytic": AnalyticSampler},
}
SAMPLERS = registry.implementations(Sampler, EXAMPLES)
