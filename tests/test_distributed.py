"""Two CPU processes (DDP over gloo) train through the HF Trainer / accelerate and stay in sync."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "train_trainer.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_replicas_stay_in_sync(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    generator = np.random.default_rng(0)
    for index in range(32):
        Image.fromarray(generator.integers(0, 256, (28, 28), dtype=np.uint8)).save(images / f"{index}.png")
    output = tmp_path / "run"
    overrides = json.dumps({"latent_dim": 4, "decoder_base_channels": 4, "energy_hidden_dim": 8,
                            "sampler_config": {"prior_steps": 3, "posterior_steps": 3}})
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
               str(SCRIPT), "--dataset", str(images), "--output-dir", str(output), "--max-steps", "3",
               "--per-device-batch-size", "4", "--cpu", "--report-parameters", "--config-overrides", overrides]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads((output / f"parameters-rank{rank}.json").read_text()) for rank in (0, 1)]
    assert ranks[0]["world_size"] == ranks[1]["world_size"] == 2
    # Each process trains on its own shard, so only DDP's gradient averaging can keep the replicas equal.
    assert ranks[0]["first_batch_sum"] != ranks[1]["first_batch_sum"]
    assert ranks[0]["checksums"] == ranks[1]["checksums"]
    # The replicas moved away from their (shared) initialisation: they trained, in step.
    import torch

    from hf_latent_ebm import LatentEBMConfig, LatentEBMForImageGeneration

    torch.manual_seed(0)
    initial = LatentEBMForImageGeneration(LatentEBMConfig(**json.loads(overrides)))
    moved = [name for name, param in initial.named_parameters()
             if abs(float(param.detach().double().sum()) - ranks[0]["checksums"][name]) > 1e-6]
    assert len(moved) >= len(ranks[0]["checksums"]) - 1  # all but the energy's output bias (zero gradient)
