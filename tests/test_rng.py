"""croft.utils.rng: the one place that saves and restores the global random generators."""
import io
import random

import numpy as np
import pytest
import torch

from croft.utils.rng import preserved_rng, rng_states, set_rng_states


def draws():
    return random.random(), float(np.random.rand()), float(np.random.randn()), float(torch.rand(1))


def test_restored_states_repeat_every_stream_after_a_checkpoint_round_trip():
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's state
    buffer = io.BytesIO()
    torch.save(rng_states(), buffer)
    expected = draws()
    buffer.seek(0)
    set_rng_states(torch.load(buffer, weights_only=True))
    assert draws() == expected


def test_preserved_rng_leaves_the_callers_streams_as_they_were():
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    expected = draws()
    random.seed(5)
    np.random.seed(5)
    torch.manual_seed(5)
    with preserved_rng():
        torch.manual_seed(123)
        draws()
    assert draws() == expected


def test_preserved_rng_restores_when_the_block_raises():
    torch.manual_seed(7)
    before = torch.get_rng_state()
    with pytest.raises(RuntimeError):
        with preserved_rng(cuda=False):
            torch.rand(10)
            raise RuntimeError("inside")
    assert torch.equal(torch.get_rng_state(), before)


def test_cuda_false_saves_no_cuda_state():
    assert rng_states(cuda=False)["cuda"] == []
