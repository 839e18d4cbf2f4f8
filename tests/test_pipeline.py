import numpy as np
import pytest
import torch
from PIL import Image

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration, LatentEBMPipeline, LatentEBMPipelineOutput

from .test_modeling_latent_ebm import TINY


@pytest.fixture
def pipeline():
    torch.manual_seed(0)
    return LatentEBMPipeline(LatentEBMForImageGeneration(LatentEBMConfig(**TINY, image_size=32, num_channels=3)))


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_output_types(pipeline):
    pil = pipeline(num_samples=3, generator=seeded()).images
    assert len(pil) == 3 and all(isinstance(image, Image.Image) and image.size == (32, 32) for image in pil)
    array = pipeline(num_samples=3, generator=seeded(), output_type="np").images
    assert array.shape == (3, 32, 32, 3) and array.dtype == np.uint8
    tensor = pipeline(num_samples=3, generator=seeded(), output_type="pt").images
    assert tensor.shape == (3, 3, 32, 32) and tensor.min() >= -1 and tensor.max() <= 1
    latents = pipeline(num_samples=3, generator=seeded(), output_type="latent").images
    assert latents.shape == (3, 4)
    # Same seed, same samples, whatever the output type.
    assert np.array_equal(np.asarray(pil[0]), array[0])
    assert np.array_equal(((tensor + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy(), array)


def test_tuple_output_and_given_latents(pipeline):
    result = pipeline(num_samples=2, generator=seeded(), output_type="pt")
    assert isinstance(result, LatentEBMPipelineOutput)
    images, latents = pipeline(latents=result.latents, output_type="pt", return_dict=False)
    assert torch.equal(images, result.images)
    assert torch.equal(latents, result.latents)


def test_step_overrides_change_the_chain(pipeline):
    default = pipeline(num_samples=2, generator=seeded(), output_type="latent").images
    longer = pipeline(num_samples=2, generator=seeded(), num_inference_steps=10, output_type="latent").images
    assert not torch.equal(default, longer)


def test_bad_output_type_and_from_pretrained(pipeline, tmp_path):
    with pytest.raises(ValueError, match="output_type"):
        pipeline(output_type="jpeg")
    pipeline.model.save_pretrained(tmp_path)
    loaded = LatentEBMPipeline.from_pretrained(tmp_path)
    expected = pipeline(num_samples=2, generator=seeded(), output_type="pt").images
    assert torch.equal(loaded(num_samples=2, generator=seeded(), output_type="pt").images, expected)
