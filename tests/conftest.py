import pytest
import torch


@pytest.fixture
def few_threads():
    """Two threads, as on CI, so that float results and timings don't depend on the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)
