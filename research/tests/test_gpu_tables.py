"""research/gpu/gpu_tables.py: time-boxed chunks that resume exactly across pack/unpack, the archive, FID scoring, the
report and its errors. The data are small random stand-ins for MNIST, the model the tests' tiny config."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from tests.test_modeling_latent_ebm import TINY
from tests.testing_utils import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "gpu" / "gpu_tables.py"


@pytest.fixture
def gpu_tables(monkeypatch):
    module = load_script(SCRIPT, "gpu_tables_under_test")
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.rand(200, 1, 28, 28, generator=generator) * 2 - 1
    labels = torch.arange(200) % 10
    monkeypatch.setattr(module, "mnist_70k", lambda: (pixel_values, labels))
    monkeypatch.setattr(module, "image_split", lambda dataset, split: pixel_values[:120] if split == "train"
                        else pixel_values[120:])
    return module


def plan_flags(work_dir):
    return ["--work-dir", str(work_dir), "--digits", "1", "--seeds", "0", "--datasets", "mnist", "--priors", "ebm",
            "--max-steps", "5", "--batch-size", "8", "--checkpoint-every", "100", "--limit-train", "48",
            "--num-fid-samples", "12", "--config-overrides", json.dumps(TINY), "--device", "cpu",
            "--min-chunk-s", "0", "--progress-every-s", "0"]


def final_weights(work_dir, name):
    return load_file(Path(work_dir) / name / "model.safetensors")


def assert_same_outcome(gpu_tables, straight_dir, resumed_dir):
    straight, resumed = gpu_tables.load_state(straight_dir), gpu_tables.load_state(resumed_dir)
    for name in ("anomaly-d1-s0", "fid-mnist-ebm"):
        assert resumed["items"][name]["status"] == "done", name
        expected, actual = final_weights(straight_dir, name), final_weights(resumed_dir, name)
        assert expected.keys() == actual.keys()
        for key in expected:
            assert torch.equal(expected[key], actual[key]), (name, key)
        assert json.loads((Path(straight_dir) / name / "loss_history.json").read_text()) == \
            json.loads((Path(resumed_dir) / name / "loss_history.json").read_text())
    assert resumed["items"]["anomaly-d1-s0"]["auprc"] == straight["items"]["anomaly-d1-s0"]["auprc"]
    np.testing.assert_array_equal(gpu_tables.load_samples(Path(straight_dir) / "fid-mnist-ebm" / "samples.npz"),
                                  gpu_tables.load_samples(Path(resumed_dir) / "fid-mnist-ebm" / "samples.npz"))


def test_order_puts_seed_zero_and_the_fid_models_first(gpu_tables):
    plan = {**gpu_tables.PLAN_DEFAULTS}
    names = [item.name for item in gpu_tables.plan_items(plan)]
    assert names[:9] == ["anomaly-d1-s0", "anomaly-d4-s0", "anomaly-d5-s0", "anomaly-d7-s0", "anomaly-d9-s0",
                         "fid-mnist-ebm", "fid-mnist-gaussian", "fid-fashion_mnist-ebm", "fid-fashion_mnist-gaussian"]
    assert names[9:] == [f"anomaly-d{digit}-s{seed}" for seed in (1, 2) for digit in (1, 4, 5, 7, 9)]


def test_budget_stopped_run_resumed_through_pack_and_unpack_matches_an_uninterrupted_one(gpu_tables, tmp_path):
    gpu_tables.main(plan_flags(tmp_path / "straight") + ["--time-budget-s", "inf"])

    # A two-second budget stops after the first step (the pacer reserves two steps and a checkpoint, 2 s until one
    # has been timed); each chunk then travels as one archive into a fresh folder.
    first = tmp_path / "session1"
    gpu_tables.main(plan_flags(first) + ["--time-budget-s", "2", "--pack", str(tmp_path / "out1" / "state.tar.gz")])
    state = gpu_tables.load_state(first)
    assert state["items"]["anomaly-d1-s0"]["status"] == "training"
    assert state["items"]["anomaly-d1-s0"]["step"] == 1
    assert sorted(p.name for p in (tmp_path / "out1").iterdir()) == ["state.tar.gz"]

    # The second session (the plan flags left out: they come with the state) stops by its step limit in the second
    # model, and the third finishes it.
    second = tmp_path / "session2"
    gpu_tables.main(["--work-dir", str(second), "--unpack", str(tmp_path / "out1" / "state.tar.gz"),
                     "--max-steps-per-session", "6", "--device", "cpu", "--min-chunk-s", "0",
                     "--pack", str(tmp_path / "out2" / "state.tar.gz")])
    assert gpu_tables.load_state(second)["items"]["anomaly-d1-s0"]["status"] == "done"
    assert gpu_tables.load_state(second)["items"]["fid-mnist-ebm"]["status"] == "training"
    third = tmp_path / "session3"
    gpu_tables.main(["--work-dir", str(third), "--unpack", str(tmp_path / "out2" / "state.tar.gz"),
                     "--time-budget-s", "inf", "--device", "cpu"])
    assert_same_outcome(gpu_tables, tmp_path / "straight", third)
    sessions = gpu_tables.load_state(third)["sessions"]
    assert [session["all_done"] for session in sessions] == [False, False, True]
    assert gpu_tables.load_state(third)["items"]["fid-mnist-ebm"]["chunks"] == 2


def test_pack_keeps_only_what_continuing_needs(gpu_tables, tmp_path):
    work_dir = tmp_path / "work"
    gpu_tables.main(plan_flags(work_dir) + ["--max-steps-per-session", "7", "--checkpoint-every", "1"])
    archive = tmp_path / "state.tar.gz"
    gpu_tables.main(["--work-dir", str(work_dir), "--pack", str(archive)])
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    root = gpu_tables.ARCHIVE_ROOT
    assert f"{root}/anomaly-d1-s0/model.safetensors" in names  # finished: the final model, no checkpoint
    assert not any(name.startswith(f"{root}/anomaly-d1-s0/checkpoints") for name in names)
    # unfinished (step 2 of 5): its latest checkpoint
    checkpoints = sorted(name for name in names if name.startswith(f"{root}/fid-mnist-ebm/checkpoints/step-"))
    assert {Path(name).parent.name for name in checkpoints} == {"step-00000002"}
    assert f"{root}/state.json" in names


def test_sample_files_go_beside_an_archive_over_the_limit_and_come_back(gpu_tables, tmp_path):
    work_dir = tmp_path / "work"
    gpu_tables.main(plan_flags(work_dir) + ["--time-budget-s", "inf"])
    out = tmp_path / "out"
    gpu_tables.main(["--work-dir", str(work_dir), "--pack", str(out / "state.tar.gz"), "--pack-limit-mib", "0.01"])
    assert sorted(p.name for p in out.iterdir()) == ["fid-mnist-ebm.samples.npz", "state.tar.gz"]
    restored = tmp_path / "restored"
    gpu_tables.main(["--work-dir", str(restored), "--unpack", str(out / "state.tar.gz")])
    assert (restored / "fid-mnist-ebm" / "samples.npz").read_bytes() == \
        (work_dir / "fid-mnist-ebm" / "samples.npz").read_bytes()
    # Still over the limit: the scored anomaly model's weights stay behind, its AUPRC travels in the state.
    assert not (restored / "anomaly-d1-s0" / "model.safetensors").exists()
    assert gpu_tables.load_state(restored)["items"]["anomaly-d1-s0"]["auprc"] == \
        gpu_tables.load_state(work_dir)["items"]["anomaly-d1-s0"]["auprc"]
    assert (restored / "fid-mnist-ebm" / "model.safetensors").exists(), "--score-fid needs it for the test MSE"
    # A GPU session gets the archive without the side file: it continues, packs the file's name again, and only
    # --score-fid (here, afterwards) asks for the file.
    side_file = (out / "fid-mnist-ebm.samples.npz").read_bytes()
    (out / "fid-mnist-ebm.samples.npz").unlink()
    again, out_again = tmp_path / "again", tmp_path / "out_again"
    gpu_tables.main(["--work-dir", str(again), "--unpack", str(out / "state.tar.gz")])
    gpu_tables.main(["--work-dir", str(again), "--pack", str(out_again / "state.tar.gz")])
    (out_again / "fid-mnist-ebm.samples.npz").write_bytes(side_file)
    final = tmp_path / "final"
    gpu_tables.main(["--work-dir", str(final), "--unpack", str(out_again / "state.tar.gz")])
    assert (final / "fid-mnist-ebm" / "samples.npz").read_bytes() == side_file


def test_score_fid_and_partial_report(gpu_tables, tmp_path, monkeypatch):
    work_dir = tmp_path / "work"
    flags = plan_flags(work_dir)
    flags[flags.index("--seeds") + 1:flags.index("--seeds") + 2] = ["0", "1"]  # seed 1 never trains here
    gpu_tables.main(flags + ["--max-steps-per-session", "10"])
    calls = []

    def fake_statistics(images, device):  # the FID network's weights are not needed to test the bookkeeping
        calls.append((images.shape, images.dtype))
        return torch.full((3,), float(images.float().mean())), torch.eye(3, dtype=torch.float64)

    monkeypatch.setattr(gpu_tables, "inception_statistics", fake_statistics)
    results_md, results_dir = tmp_path / "docs" / "results.md", tmp_path / "docs" / "results" / "image"
    report_flags = ["--work-dir", str(work_dir), "--results-md", str(results_md), "--results-dir", str(results_dir),
                    "--device", "cpu", "--fid-cache-dir", str(tmp_path / "fid_cache")]
    state = gpu_tables.main(report_flags + ["--score-fid", "--report"])
    assert calls == [(torch.Size([80, 1, 28, 28]), torch.float32), (torch.Size([12, 1, 28, 28]), torch.uint8)]
    record = state["items"]["fid-mnist-ebm"]
    samples = gpu_tables.load_samples(work_dir / "fid-mnist-ebm" / "samples.npz")
    expected = 3 * (float(samples.float().mean()) - float(gpu_tables.image_split("mnist", "test").mean())) ** 2
    assert record["fid"] == pytest.approx(expected, rel=1e-4) and record["mse"] > 0
    text = results_md.read_text()
    assert "<!-- begin anomaly-gpu -->" in text and "<!-- begin fid-table-gpu -->" in text
    assert "| 1 | 1 |" in text and "0.722" in text  # n = 1 seed finished, beside Cui et al.'s figure
    assert "**Partial table**: 1 of 2 runs missing: anomaly digit 1 seed 1 (not started)" in text
    summary = json.loads((results_dir / "anomaly-gpu" / "anomaly_gpu.json").read_text())["summary"]["1"]
    assert summary["n"] == 1 and summary["devices"] == ["CPU"]
    rows = json.loads((results_dir / "fid-table-gpu" / "fid_table_gpu.json").read_text())["rows"]
    assert rows[0]["fid"] == record["fid"] and rows[0]["device"] == "CPU"
    assert (results_md.parent / "figures" / "fid_table_gpu.png").exists()
    gpu_tables.main(report_flags + ["--score-fid"])
    assert len(calls) == 2, "a scored item is not scored again without --rescore"
    # Scoring again reads the test images' statistics from the cache: only the samples go through the network.
    rescored = gpu_tables.main(report_flags + ["--score-fid", "--rescore"])
    assert calls[2:] == [(torch.Size([12, 1, 28, 28]), torch.uint8)]
    assert rescored["items"]["fid-mnist-ebm"]["fid"] == pytest.approx(record["fid"], rel=1e-6)


def test_score_fid_draws_samples_left_behind_again_from_the_final_model(gpu_tables, tmp_path, monkeypatch):
    work_dir = tmp_path / "work"
    gpu_tables.main(plan_flags(work_dir) + ["--time-budget-s", "inf"])
    samples_path = work_dir / "fid-mnist-ebm" / "samples.npz"
    samples_path.unlink()
    monkeypatch.setattr(gpu_tables, "inception_statistics", lambda images, device: (
        torch.full((3,), float(images.float().mean())), torch.eye(3, dtype=torch.float64)))
    flags = ["--work-dir", str(work_dir), "--score-fid", "--device", "cpu", "--fid-cache-dir", str(tmp_path / "cache")]
    record = gpu_tables.main(flags)["items"]["fid-mnist-ebm"]
    assert samples_path.exists() and record["samples_device"] == "CPU" and record["num_samples"] == 12
    assert "fid" in record and record["fid_samples_sha256"] == gpu_tables.samples_sha256(samples_path)
    samples_path.unlink()
    (work_dir / "fid-mnist-ebm" / "model.safetensors").unlink()
    with pytest.raises(OSError, match="nor its model to draw them again"):
        gpu_tables.main(flags + ["--rescore"])


def test_the_pacer_stops_before_the_budget_would_be_overrun(gpu_tables, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(gpu_tables, "clock", lambda: now[0])
    budget = gpu_tables.SessionBudget(10.0)
    pacer = gpu_tables.ChunkPacer(budget, "item", max_steps=100, checkpoint_every=0, finish_s=lambda step_s: 0.0,
                                  progress_every_s=None, checkpoint_s=1.0)
    stops = []
    for step in range(1, 100):
        now[0] += 0.5  # every step takes half a second
        if pacer(step):
            stops.append(step)
            break
    # 2 steps (1 s) + the checkpoint (1 s) must fit: at step 17, 8.5 s have gone and 1.5 s are left.
    assert stops == [17] and "time budget" in pacer.reason
    finishing = gpu_tables.ChunkPacer(gpu_tables.SessionBudget(10.0), "item", max_steps=5, checkpoint_every=0,
                                      finish_s=lambda step_s: 100.0, progress_every_s=None, checkpoint_s=0.0)
    assert not finishing(3) and finishing(4), "the last step waits for time to evaluate the model"


def test_bad_input_fails_with_a_clear_message(gpu_tables, tmp_path, capsys):
    with pytest.raises(SystemExit):
        gpu_tables.main(["--datasets", "cifar10"])
    assert "invalid choice: 'cifar10'" in capsys.readouterr().err
    with pytest.raises(OSError, match="missing state archive"):
        gpu_tables.main(["--work-dir", str(tmp_path / "w"), "--unpack", str(tmp_path / "nope.tar.gz")])
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08\x00 this is not a tar")
    with pytest.raises(ValueError, match="not a readable gpu_tables state archive"):
        gpu_tables.main(["--work-dir", str(tmp_path / "w"), "--unpack", str(corrupt)])
    with pytest.raises(OSError, match="missing state"):
        gpu_tables.main(["--work-dir", str(tmp_path / "empty"), "--report"])
    with pytest.raises(ValueError, match="JSON object"):
        gpu_tables.main(["--work-dir", str(tmp_path / "w"), "--config-overrides", "{latent_dim: 3}"])
    with pytest.raises(ValueError, match="LatentEBMConfig"):
        gpu_tables.main(["--work-dir", str(tmp_path / "w"), "--config-overrides", '{"latent_dim": -3}'])
    gpu_tables.main(plan_flags(tmp_path / "planned") + ["--max-steps-per-session", "1"])
    with pytest.raises(ValueError, match="--max-steps was 5, now 9"):
        gpu_tables.main(plan_flags(tmp_path / "planned") + ["--max-steps", "9", "--max-steps-per-session", "1"])


def test_unpack_will_not_replace_training_the_archive_lacks(gpu_tables, tmp_path):
    gpu_tables.main(plan_flags(tmp_path / "a") + ["--max-steps-per-session", "1", "--pack", str(tmp_path / "a.tar.gz")])
    gpu_tables.main(plan_flags(tmp_path / "b") + ["--max-steps-per-session", "1"])
    with pytest.raises(ValueError, match="holds training that"):
        gpu_tables.main(["--work-dir", str(tmp_path / "b"), "--unpack", str(tmp_path / "a.tar.gz")])
    gpu_tables.main(["--work-dir", str(tmp_path / "b"), "--unpack", str(tmp_path / "a.tar.gz"), "--force"])
    gpu_tables.main(["--work-dir", str(tmp_path / "a"), "--unpack", str(tmp_path / "a.tar.gz")])  # its own archive



def test_it_shares_the_library_helpers_with_the_table_scripts(gpu_tables):
    from hf_latent_ebm import evaluation

    assert gpu_tables.split_for_digit is evaluation.split_for_digit
    assert gpu_tables.fid_markdown_table is evaluation.fid_markdown_table
