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
            torch.testing.assert_close(tensors[name], expected, rtol=0, atol=1e-5, msg=name)


def test_texts_match_the_recorded_reference(outputs):
    _, texts = outputs
    assert texts == json.loads((DATA / "reference_texts.json").read_text())
