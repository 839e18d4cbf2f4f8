import numpy as np
import pytest
import torch
from PIL import Image

from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration
from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.training import LatentEBMTrainer, TrainingArguments, latest_checkpoint

from .test_modeling_latent_ebm import TINY


def toy_images(count=24, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, 1, 28, 28, generator=generator) * 2 - 1


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return LatentEBMForImageGeneration(LatentEBMConfig(**TINY))


def run(tmp_path, max_steps, resume=False, model=None):
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=max_steps, batch_size=8, seed=3, sample_every=0,
                             checkpoint_every=2, log_every=1, num_grid_samples=4)
    trainer = LatentEBMTrainer(model or fresh_model(), toy_images(), args)
    trainer.train(resume=resume)
    return trainer


def test_resume_reaches_the_same_parameters_as_an_uninterrupted_run(tmp_path):
    uninterrupted = run(tmp_path / "straight", max_steps=7)
    run(tmp_path / "split", max_steps=4)  # ends with a checkpoint at step 4 (epoch 1, batch 1 of 3)
    resumed = run(tmp_path / "split", max_steps=7, resume=True, model=fresh_model(seed=99))
    for (name, expected), (_, actual) in zip(uninterrupted.model.state_dict().items(),
                                             resumed.model.state_dict().items()):
        assert torch.equal(expected, actual), name
    assert resumed.history == uninterrupted.history


def test_a_run_stopped_by_should_stop_resumes_to_the_same_parameters(tmp_path):
    uninterrupted = run(tmp_path / "straight", max_steps=7)
    args = TrainingArguments(output_dir=str(tmp_path / "split"), max_steps=7, batch_size=8, seed=3, sample_every=0,
                             checkpoint_every=2, log_every=1, num_grid_samples=4)
    asked = []
    stopped = LatentEBMTrainer(fresh_model(), toy_images(), args)
    stopped.train(should_stop=lambda step: asked.append(step) or step == 3)  # between periodic checkpoints
    assert stopped.step == 3 and asked == [1, 2, 3]
    assert latest_checkpoint(tmp_path / "split").name == "step-00000003"
    assert not (tmp_path / "split" / "model.safetensors").exists(), "a stopped run writes no final model"
    resumed = LatentEBMTrainer(fresh_model(seed=99), toy_images(), args)
    resumed.train(resume=True, should_stop=lambda step: asked.append(step) or False)
    assert asked == [1, 2, 3, 4, 5, 6], "never asked after the last step"
    for (name, expected), (_, actual) in zip(uninterrupted.model.state_dict().items(),
                                             resumed.model.state_dict().items()):
        assert torch.equal(expected, actual), name
    assert resumed.history == uninterrupted.history


def test_outputs_and_checkpoints_are_written(tmp_path):
    trainer = run(tmp_path, max_steps=5)
    for name in ("config.json", "model.safetensors", "samples.png", "loss_curve.png", "loss_history.json"):
        assert (tmp_path / name).exists(), name
    checkpoint = latest_checkpoint(tmp_path)
    assert checkpoint.name == "step-00000005"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step-00000004",
                                                                           "step-00000005"]
    assert not list(tmp_path.rglob(".*tmp*")), "staging folders must not survive"
    reloaded = LatentEBMForImageGeneration.from_pretrained(tmp_path)
    assert torch.equal(reloaded.decoder.layers[0].weight, trainer.model.decoder.layers[0].weight)


def test_nonfinite_parameters_are_never_checkpointed(tmp_path):
    trainer = run(tmp_path, max_steps=2)
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    with torch.no_grad():
        trainer.model.decoder.layers[0].weight.fill_(float("nan"))
    with pytest.raises(RuntimeError, match="non-finite parameters"):
        trainer.save_checkpoint()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before


def test_resume_without_or_with_damaged_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(OSError, match="no checkpoint"):
        run(tmp_path / "empty", max_steps=2, resume=True)
    run(tmp_path / "damaged", max_steps=2)
    state = latest_checkpoint(tmp_path / "damaged") / "training_state.pt"
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(OSError, match="cannot resume"):
        run(tmp_path / "damaged", max_steps=4, resume=True)


def test_training_arguments_name_the_setting_out_of_range(tmp_path):
    with pytest.raises(ValueError, match="max_steps must be >= 1, got 0"):
        TrainingArguments(output_dir=str(tmp_path), max_steps=0)
    with pytest.raises(ValueError, match="eval_every must be >= 0, got -1"):
        TrainingArguments(output_dir=str(tmp_path), eval_every=-1)
    with pytest.raises(ValueError, match="prior_weight_decay must be >= 0, got nan"):  # NaN is in no range
        LatentEBMConfig(**{**TINY, "prior_weight_decay": float("nan")})

def test_resume_from_another_device_type_reseeds_the_chain_generator(tmp_path):
    # A checkpoint written on a GPU holds a CUDA generator state (16 bytes), which a CPU generator cannot take;
    # the weights, optimizer and data position still carry over, and the chains are reseeded from (seed, step).
    run(tmp_path, max_steps=2)
    path = latest_checkpoint(tmp_path) / "training_state.pt"
    state = torch.load(path, weights_only=True)
    state["generator"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(state, path)
    with pytest.warns(UserWarning, match="another device type"):
        resumed = run(tmp_path, max_steps=3, resume=True)
    assert resumed.step == 3 and len(resumed.history) == 3


def test_hf_trainer_trains_the_model(tmp_path):
    from datasets import Dataset
    from transformers import Trainer
    from transformers import TrainingArguments as HFTrainingArguments

    model = fresh_model()
    dataset = Dataset.from_dict({"pixel_values": toy_images(16).numpy()}).with_format("torch")
    before = {name: param.detach().clone() for name, param in model.named_parameters()}
    args = HFTrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=4,
                               report_to=[], use_cpu=True, logging_steps=1, save_strategy="no",
                               max_grad_norm=0.0, dataloader_num_workers=0)
    optimizer = model.build_optimizer()
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      optimizers=(optimizer, model.build_lr_scheduler(optimizer)))
    result = trainer.train()
    assert result.global_step == 3
    assert np.isfinite(result.training_loss)
    # The energy's output bias cancels in E(z+) - E(z-), so it alone has no gradient.
    constant_bias = f"prior.energy_net.{len(model.prior.energy_net) - 1}.bias"
    for name, param in model.named_parameters():
        assert torch.equal(before[name], param.detach()) == (name == constant_bias), name
    learner_config = model.config.part_config("learner")
    assert [group["lr"] for group in optimizer.param_groups] == [learner_config.prior_learning_rate,
                                                                 learner_config.decoder_learning_rate]


def write_image_folder(root, count=12):
    root.mkdir(parents=True)
    generator = np.random.default_rng(0)
    for index in range(count):
        Image.fromarray(generator.integers(0, 256, (28, 28), dtype=np.uint8)).save(root / f"{index}.png")


def test_cli_train_resume_and_sample(tmp_path, capsys):
    data, out = tmp_path / "images", tmp_path / "run"
    write_image_folder(data)
    overrides = '{"latent_dim": 4, "decoder_base_channels": 4, "prior_config.hidden_dim": 8, ' \
                '"sampler_config.prior_steps": 3, "sampler_config.posterior_steps": 3}'
    common = ["train", "--dataset", str(data), "--output-dir", str(out), "--batch-size", "4",
              "--checkpoint-every", "2", "--sample-every", "2", "--config-overrides", overrides]
    cli_main(common + ["--max-steps", "2"])
    assert (out / "samples" / "step-00000002.png").exists()
    cli_main(common + ["--max-steps", "4", "--resume"])
    assert latest_checkpoint(out).name == "step-00000004"
    grid = tmp_path / "grid.png"
    cli_main(["sample", "--model", str(out), "--num-samples", "9", "--output", str(grid), "--seed", "1"])
    assert Image.open(grid).size == (3 * 30 + 2, 3 * 30 + 2)


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["train", "--dataset", "cifar10", "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "unknown image dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli_main(["sample", "--model", str(tmp_path / "missing"), "--output", str(tmp_path / "g.png")])


def test_a_datasets_dataset_trains_like_the_same_data_as_a_tensor(tmp_path):
    from datasets import Dataset

    images = toy_images()
    args = dict(max_steps=5, batch_size=8, seed=3, sample_every=0, checkpoint_every=0, log_every=1,
                num_grid_samples=4)
    from_tensor = LatentEBMTrainer(fresh_model(), images, TrainingArguments(output_dir=str(tmp_path / "t"), **args))
    from_tensor.train()
    dataset = Dataset.from_dict({"pixel_values": images.numpy(), "label": list(range(len(images)))})
    from_dataset = LatentEBMTrainer(fresh_model(), dataset, TrainingArguments(output_dir=str(tmp_path / "d"), **args))
    from_dataset.train()
    assert from_dataset.history == from_tensor.history
    for (name, expected), (_, actual) in zip(from_tensor.model.state_dict().items(),
                                             from_dataset.model.state_dict().items()):
        assert torch.equal(expected, actual), name


def test_bad_data_is_refused_when_loaded_not_during_training(tmp_path):
    from datasets import Dataset

    images = toy_images()
    images[17, 0, 3, 3] = float("nan")  # in the last batch: a per-batch check would only see it after 2 steps
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=5, batch_size=8)
    with pytest.raises(ValueError, match="NaN"):
        LatentEBMTrainer(fresh_model(), Dataset.from_dict({"pixel_values": images.numpy()}), args)
    with pytest.raises(ValueError, match="no pixel_values column"):
        LatentEBMTrainer(fresh_model(), Dataset.from_dict({"image": images.numpy()}), args)
    assert not (tmp_path / "checkpoints").exists()
