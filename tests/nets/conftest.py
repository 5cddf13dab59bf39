"""Run the nets tests single-threaded.

The test networks are tiny: with two intra-op threads every small matmul pays a thread hand-off,
which on a shared 2-core machine under load costs milliseconds per op (the suite ran 4x slower).
"""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
