"""The bundled Space models give the outputs recorded before the parts refactor (tests/reference_outputs.py)."""

import json

import pytest
import torch
from safetensors.torch import load_file

from .reference_outputs import DATA, compute


@pytest.fixture(scope="module")
def outputs():
    return compute()


def test_tensors_match_the_recorded_reference(outputs):
    tensors, _ = outputs
    reference = load_file(DATA / "reference_outputs.safetensors")
    assert sorted(tensors) == sorted(reference)
    for name, expected in reference.items():
        if expected.dtype == torch.long:
            assert torch.equal(tensors[name], expected), name  # the same token ids
        else:
            # Float32 rounding, not behaviour: kernels that compute the same values in another order (the prior's
            # analytic gradient through aten's fused activation backward) move a 20-step chain's reconstruction by
            # ~4e-5 and a score of 74 by ~1e-4; a changed computation moves them by orders of magnitude more.
            torch.testing.assert_close(tensors[name], expected, rtol=1e-5, atol=1e-4, msg=name)


def test_texts_match_the_recorded_reference(outputs):
    _, texts = outputs
    assert texts == json.loads((DATA / "reference_texts.json").read_text())
