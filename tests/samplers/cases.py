"""The samplers every sampler test runs over: every concrete `Sampler` class in ddiff.

They come from `tests.testing.registry`; a new sampler class needs a name in `EXAMPLES`, or
`tests/samplers/test_contract.py::test_every_sampler_class_has_a_name` fails.

`GRID_SAMPLERS` are those that walk a time grid of `steps` steps on any graph (the base class's
loop); the grid contract suite runs over them. `FirstHittingSampler` has no grid and runs on
absorbing graphs only: its contract is `tests/samplers/test_first_hitting.py`.
"""

from __future__ import annotations

from ddiff.samplers import (
    AnalyticSampler,
    EulerSampler,
    FirstHittingSampler,
    Sampler,
    TauLeapingSampler,
)
from tests.testing import registry

EXAMPLES: dict[type[Sampler], dict[str, type[Sampler]]] = {
    EulerSampler: {"euler": EulerSampler},
    TauLeapingSampler: {"tau-leaping": TauLeapingSampler},
    AnalyticSampler: {"analytic": AnalyticSampler},
    FirstHittingSampler: {"first-hitting": FirstHittingSampler},
}
SAMPLERS = registry.implementations(Sampler, EXAMPLES)
GRID_SAMPLERS = {name: cls for name, cls in SAMPLERS.items() if cls.run is Sampler.run}
