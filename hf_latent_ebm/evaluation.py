"""Model-level evaluations shared by `hf-latent-ebm evaluate` and the paper-table scripts."""

import torch

from .metrics.anomaly import auprc


def _batches(count: int, batch_size: int):
    for start in range(0, count, batch_size):
        yield start, min(start + batch_size, count)


@torch.no_grad()
def generate_images(model, num_samples: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """num_samples images from the model's prior, as uint8 (N, C, H, W) on the CPU (what FID scores)."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    chunks = [model.sample(end - start, generator) for start, end in _batches(num_samples, batch_size)]
    return ((torch.cat(chunks).cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def fid_against(model, real_pixel_values: torch.Tensor, num_samples: int, seed: int = 0,
                inception_device: str = "cpu") -> float:
    """FID of num_samples prior samples against real images (floats in [-1, 1])."""
    from .metrics.fid import StreamingFID

    metric = StreamingFID(device=inception_device)
    metric.update(real_pixel_values, real=True)
    metric.update(generate_images(model, num_samples, seed), real=False)
    return metric.compute()


@torch.no_grad()
def reconstruction_mse(model, pixel_values: torch.Tensor, seed: int = 0, batch_size: int = 500) -> float:
    """Mean squared error per pixel between images in [-1, 1] and g(z+) at posterior Langevin samples z+."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    total = 0.0
    for start, end in _batches(pixel_values.shape[0], batch_size):
        batch = pixel_values[start:end].to(model.device)
        total += (model.reconstruct(batch, generator) - batch).pow(2).sum().item()
    return total / pixel_values.numel()


@torch.no_grad()
def anomaly_scores(model, pixel_values: torch.Tensor, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    generator = torch.Generator(device=model.device).manual_seed(seed)
    return torch.cat([model.anomaly_score(pixel_values[start:end].to(model.device), generator).cpu()
                      for start, end in _batches(pixel_values.shape[0], batch_size)])


@torch.no_grad()
def pca_reconstruction_scores(train_values: torch.Tensor, test_values: torch.Tensor,
                              num_components: int = 16) -> torch.Tensor:
    """The PCA baseline of the anomaly tables: the squared error of each test example's reconstruction from the
    top `num_components` principal components of the training examples (flattened); higher = more anomalous."""
    if not 1 <= num_components <= min(train_values.shape[0], train_values[0].numel()):
        raise ValueError(f"num_components must be in 1..{min(train_values.shape[0], train_values[0].numel())}, "
                         f"got {num_components}")
    train, test = train_values.flatten(1).double(), test_values.flatten(1).double()
    mean = train.mean(dim=0)
    # The exact components, from the covariance's eigenvectors (ascending eigenvalues: the last are the top ones).
    _, eigenvectors = torch.linalg.eigh((train - mean).T @ (train - mean))
    components = eigenvectors[:, -num_components:]
    centred = test - mean
    return (centred - centred @ components @ components.T).pow(2).sum(dim=1).float()


def anomaly_auprc(model, pixel_values: torch.Tensor, labels: torch.Tensor, anomaly_label: int, seed: int = 0) -> float:
    """AUPRC of model.anomaly_score with the images of `anomaly_label` as positives (Pang et al. 2020, Table 3)."""
    return auprc(anomaly_scores(model, pixel_values, seed), labels == anomaly_label)


# ---- the image tables (scripts/anomaly_mnist.py, scripts/fid_table.py, research/gpu/gpu_tables.py) ---------------

ANOMALY_PROTOCOL = ("random 80/20 split of the 70k images; train on the 80% without the held-out digit; test on the "
                    "whole 20%, the held-out digit being the positives")
# MNIST held-out-digit AUPRC: Pang et al. 2020, Table 3 (mean, std over seeds), and the joint EBM prior of Cui et al.,
# ICCV 2023 (means).
PANG2020_ANOMALY_AUPRC = {1: (0.336, 0.008), 4: (0.630, 0.017), 5: (0.619, 0.013), 7: (0.463, 0.009),
                          9: (0.413, 0.010)}
CUI2023_JOINT_EBM_ANOMALY_AUPRC = {1: 0.722, 4: 0.949, 5: 0.980, 7: 0.941, 9: 0.935}


def load_mnist_70k(name: str = "mnist") -> tuple[torch.Tensor, torch.Tensor]:
    """All 70k images of MNIST (or of `name`, e.g. "fashion_mnist"; train then test) as float (N, 1, 28, 28) in
    [-1, 1], and their labels."""
    from .data import load_image_dataset

    train_set, test_set = load_image_dataset(name, "train"), load_image_dataset(name, "test")
    return (torch.cat([train_set["pixel_values"][:], test_set["pixel_values"][:]]),
            torch.cat([train_set["label"][:], test_set["label"][:]]))


def split_for_digit(pixel_values: torch.Tensor, labels: torch.Tensor, digit: int, seed: int):
    """The held-out-digit split of `ANOMALY_PROTOCOL`: (train images without `digit`, test images, test labels)."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    num_train = int(0.8 * len(order))
    train_indices, test_indices = order[:num_train], order[num_train:]
    train_indices = train_indices[labels[train_indices] != digit]
    return pixel_values[train_indices], pixel_values[test_indices], labels[test_indices]


def summarize_anomaly_runs(runs: list[dict]) -> dict:
    """Per held-out digit: mean and population std of `auprc` over the runs (dicts with digit, seed, auprc,
    positive_fraction, train_time_s, device), n, the seeds, the chance level, the devices and the mean training time
    per model."""
    import statistics

    summary = {}
    for digit in sorted({run["digit"] for run in runs}):
        mine = [run for run in runs if run["digit"] == digit]
        scores = [run["auprc"] for run in mine]
        summary[digit] = {"mean": statistics.mean(scores), "std": statistics.pstdev(scores), "n": len(scores),
                          "seeds": sorted(run["seed"] for run in mine),
                          "chance": statistics.mean(run["positive_fraction"] for run in mine),
                          "devices": sorted({run["device"] for run in mine}),
                          "train_time_s": statistics.mean(run["train_time_s"] for run in mine)}
    return summary


def anomaly_markdown_table(summary: dict, digits=None) -> str:
    """The AUPRC table: ours (n seeds, mean ± std) beside chance, Pang et al. 2020 and Cui et al. 2023 (with our
    distance to it), and the device and training time behind each of our numbers. Digits in `digits` that have no
    run yet get a row with the papers' figures only."""
    rows = ["| held-out digit | n | ours (mean ± std) | chance (positive fraction) | Pang et al. 2020 latent EBM | "
            "Cui et al. ICCV 2023 joint EBM | ours − joint EBM | device | training time per model |",
            "|---|---|---|---|---|---|---|---|---|"]
    for digit in sorted(set(summary) | set(digits or ())):
        paper_mean, paper_std = PANG2020_ANOMALY_AUPRC.get(digit, (float("nan"), float("nan")))
        joint = CUI2023_JOINT_EBM_ANOMALY_AUPRC.get(digit, float("nan"))
        value = summary.get(digit)
        if value is None:
            rows.append(f"| {digit} | 0 | — | — | {paper_mean:.3f} ± {paper_std:.3f} | {joint:.3f} | — | — | — |")
            continue
        rows.append(f"| {digit} | {value['n']} | {value['mean']:.3f} ± {value['std']:.3f} | {value['chance']:.3f} | "
                    f"{paper_mean:.3f} ± {paper_std:.3f} | {joint:.3f} | {value['mean'] - joint:+.3f} | "
                    f"{', '.join(value['devices'])} | {value['train_time_s'] / 60:.1f} min |")
    return "\n".join(rows)


def anomaly_comparison_table(summaries: dict, papers: bool = True) -> str:
    """AUPRC per held-out class (rows) for several models of one run (`summaries`: {model name:
    `summarize_anomaly_runs` output}, columns in that order), beside chance and, with `papers`, the MNIST figures of
    Pang et al. 2020 and Cui et al. ICCV 2023."""
    names = list(summaries)
    classes = sorted({label for summary in summaries.values() for label in summary})
    headers = ["held-out class", "chance", *names] + (["Pang et al. 2020", "Cui et al. ICCV 2023"] if papers else [])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for label in classes:
        found = [summaries[name][label] for name in names if label in summaries[name]]
        cells = [str(label), f"{found[0]['chance']:.3f}"]
        for name in names:
            value = summaries[name].get(label)
            cells.append("—" if value is None else
                         f"{value['mean']:.3f}" + (f" ± {value['std']:.3f}" if value["n"] > 1 else ""))
        if papers:
            paper = PANG2020_ANOMALY_AUPRC.get(label)
            cells += [f"{paper[0]:.3f}" if paper else "—",
                      f"{CUI2023_JOINT_EBM_ANOMALY_AUPRC[label]:.3f}" if label in CUI2023_JOINT_EBM_ANOMALY_AUPRC
                      else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_variants(specs: list[str]) -> dict[str, dict]:
    """The table scripts' `--variants NAME=JSON ...` -> {name: config overrides}, in order; a ValueError naming a
    malformed one."""
    import json

    variants = {}
    for spec in specs:
        name, sep, overrides = spec.partition("=")
        if not sep or not name:
            raise ValueError(f"--variants: expected NAME=JSON, got {spec!r}")
        try:
            variants[name] = json.loads(overrides)
        except json.JSONDecodeError as error:
            raise ValueError(f"--variants {name}: invalid JSON ({error})") from None
        if not isinstance(variants[name], dict):
            raise ValueError(f"--variants {name}: expected a JSON object of config fields, got {overrides!r}")
    return variants


# The `LatentEBMConfig` classmethods a table row may name as its "preset".
LATENT_EBM_PRESETS = ("hierarchical", "paper_svhn")


def image_config(overrides: dict):
    """The image model's config for a table row: `LatentEBMConfig(**overrides)`, or with a "preset" key that
    preset's classmethod (e.g. {"preset": "hierarchical", "layer_sizes": [2, 2, 2, 10], "variational": true})."""
    from .configuration_latent_ebm import LatentEBMConfig

    overrides = dict(overrides)
    preset = overrides.pop("preset", None)
    if preset is None:
        return LatentEBMConfig(**overrides)
    if preset not in LATENT_EBM_PRESETS:
        raise ValueError(f"preset must be one of {LATENT_EBM_PRESETS}, got {preset!r}")
    return getattr(LatentEBMConfig, preset)(**overrides)


def image_class_predictor(train_set, seed: int = 0):
    """A small CNN trained on an image dataset's training split (`pixel_values` in [-1, 1], `label`; about 99% on
    MNIST), as a function from images in [-1, 1] to class ids: what `layer_identity_changes` reads classes with."""
    from .metrics.coherence_classifiers import train_modality_classifier
    from .utils import to_uint8_tensor

    labels = train_set["label"][:]
    classifier = train_modality_classifier("image", to_uint8_tensor(train_set["pixel_values"][:]), labels,
                                           int(labels.max()) + 1, seed=seed)
    return lambda images: classifier.predict(to_uint8_tensor(images))


@torch.no_grad()
def layer_identity_changes(model, classify, num_samples: int = 500, seed: int = 0) -> dict[int, float]:
    """What each layer of a hierarchical model controls, as a number: for `num_samples` prior samples, the share
    whose class (by `classify`, images in [-1, 1] -> class ids) changes when layer k alone is redrawn given the
    others (`model.resample_layer`), per layer k = 1 (next to x) .. L (the top). Coarse-to-fine control is a share
    that grows with k: the top layer changes what the image is, the bottom one how it is drawn."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    latents = model.sample_latents(num_samples, generator)

    def classes(values):
        return classify(model.decoder.decode(values).clamp(-1, 1))

    before = classes(latents)
    return {layer: float((classes(model.resample_layer(latents, layer=layer, generator=generator)) != before)
                         .float().mean()) for layer in range(1, model.prior.num_layers + 1)}


# Optional columns of the generation-quality table: (row key, header, format), shown when every row has the key.
FID_TABLE_EXTRA_COLUMNS = (("near_zero_share", "near-zero latents", "{:.1%}"), ("seconds_per_step", "s / step", "{:.3f}"))


def fid_markdown_table(rows: list[dict], label: str = "prior") -> str:
    """The generation-quality table from rows with dataset, prior (the row's name, under the header `label`), fid,
    mse (None when not measured), device and train_time_s, plus the `FID_TABLE_EXTRA_COLUMNS` every row has."""
    extra = [column for column in FID_TABLE_EXTRA_COLUMNS if rows and all(column[0] in row for row in rows)]
    headers = ["dataset", label, "FID ↓", "test MSE ↓", *(header for _, header, _ in extra), "device", "training time"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        mse = "—" if row.get("mse") is None else f"{row['mse']:.4f}"
        cells = [row["dataset"], row["prior"], f"{row['fid']:.2f}", mse,
                 *(form.format(row[key]) for key, _, form in extra), row["device"],
                 f"{row['train_time_s'] / 60:.1f} min"]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines)


@torch.no_grad()
def near_zero_share(model, pixel_values: torch.Tensor, threshold: float = 0.1, seed: int = 0,
                    batch_size: int = 500) -> float:
    """The share of posterior latent coordinates (z+ of each image, as the model infers it) with |z| < threshold:
    how sparse the codes are (Li & Han 2022's spike-and-slab prior pulls most coordinates to its spike at 0)."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    near, total = 0, 0
    for start, end in _batches(pixel_values.shape[0], batch_size):
        latents = model.infer_latents(pixel_values[start:end].to(model.device), generator)
        near, total = near + int((latents.abs() < threshold).sum()), total + latents.numel()
    return near / total


def save_sample_grids(grids: dict, path) -> None:
    """Sample grids ({title: PIL image or array}) two per row in one PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num_rows = (len(grids) + 1) // 2
    figure, axes = plt.subplots(num_rows, 2, figsize=(8, 4 * num_rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, (title, grid) in zip(axes.flat, grids.items()):
        axis.imshow(grid, cmap="gray")
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
