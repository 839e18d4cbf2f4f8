"""`hf-latent-ebm sample | evaluate | predict | card | push`: the commands on a trained model folder."""

import argparse
import json
import time
from pathlib import Path

import torch


def add_model_commands(commands) -> None:
    sample = commands.add_parser(
        "sample", help="write samples of a trained model (an image grid, sentences, ...)",
        description="Write --num-samples samples of a trained model: image models an image grid, text models a "
                    "sentence a line, multimodal models a grid with a row per joint sample and a column per "
                    "modality (small images enlarged). With --data, a multimodal model also writes one grid per "
                    "modality beside it (grid_from_caption.png for --output grid.png): a row per example (the "
                    "first --num-samples of the data that have that modality), the given example, then "
                    "--num-draws draws of each other modality generated from it.")
    sample.add_argument("--model", required=True, help="a directory written by save_pretrained (or a Hub id)")
    sample.add_argument("--num-samples", type=int, default=64,
                        help="samples to write; with --data also the rows (examples) of each cross-modal grid")
    sample.add_argument("--output", default=None,
                        help="the file to write (default samples.png for image models; text models print to stdout "
                             "unless given a file, '-' is stdout)")
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--data", default=None,
                        help="multimodal models: polymnist, mnist-captions or a folder; also write a cross-modal grid "
                             "from each modality of its first examples (see above)")
    sample.add_argument("--num-draws", type=int, default=4,
                        help="with --data: draws generated per example and modality in the cross-modal grids")
    sample.add_argument("--metrics", action="store_true",
                        help="molecule models: also score the samples (validity, unique@1k/10k where reached, "
                             "IntDiv1/2, FCD against the MOSES test set) into <output stem>_metrics.json")
    sample.add_argument("--reference", default=None,
                        help="with --metrics: the training molecules (.smi/.csv) for novelty and a property "
                             "distribution plot (<output stem>_properties.png)")
    sample.set_defaults(handler=_sample)

    evaluate = commands.add_parser("evaluate", help="score a trained model and write a results JSON")
    evaluate.add_argument("--model", required=True)
    evaluate.add_argument("--metric", required=True, choices=("fid", "mse", "anomaly"))
    evaluate.add_argument("--dataset", default="mnist")
    evaluate.add_argument("--split", default="test", choices=("train", "test"))
    evaluate.add_argument("--num-samples", type=int, default=10_000, help="generated images for FID")
    evaluate.add_argument("--anomaly-label", type=int, default=None, help="the held-out class for --metric anomaly")
    evaluate.add_argument("--limit-examples", type=int, default=None, help="use the first N real images only")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--output", default="eval_results.json")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="classify rows or images with a semi-supervised model")
    predict.add_argument("--model", required=True)
    predict.add_argument("--data", required=True,
                         help="a .csv/.parquet table (tabular models), or an image folder or dataset name (its test "
                              "split)")
    predict.add_argument("--output", default="predictions.csv")
    predict.add_argument("--seed", type=int, default=0)
    predict.set_defaults(handler=_predict)

    card = commands.add_parser("card", help="(re)write the model card README.md of a saved model folder")
    card.add_argument("model_dir")
    card.add_argument("--repo-id", default=None, help="the Hub id the card's snippets should use")
    card.add_argument("--with-samples", action="store_true",
                      help="first write samples for the card into the folder (runs the model, seed 0) unless it has some")
    card.set_defaults(handler=_card)

    push = commands.add_parser("push", help="upload a saved model folder (with its card) to the Hugging Face Hub")
    push.add_argument("model_dir")
    push.add_argument("--repo-id", required=True, help="ORG/NAME")
    push.add_argument("--private", action="store_true")
    push.add_argument("--token", default=None, help="defaults to the HF_TOKEN / huggingface-cli login token")
    push.add_argument("--with-samples", action="store_true",
                      help="first write samples for the card into the folder (runs the model, seed 0) unless it has some")
    push.set_defaults(handler=_push)


def _sample(args: argparse.Namespace) -> None:
    from transformers import AutoModel

    if args.num_samples < 1:
        raise SystemExit(f"--num-samples must be >= 1, got {args.num_samples}")
    if args.num_draws < 1:
        raise SystemExit(f"--num-draws must be >= 1, got {args.num_draws}")
    model = AutoModel.from_pretrained(args.model).eval()
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    # A text model writes to stdout unless --output names a file; the others need a file.
    output = args.output or ("-" if model.sample_file_suffix == ".txt" else f"samples{model.sample_file_suffix}")
    written = model.write_samples(output, args.num_samples, generator)
    if written is not None:
        print(f"{args.num_samples} samples written to {written}")
    if hasattr(model, "write_cross_modal_grid") and args.data:
        _write_cross_modal_grids(model, args, Path(written), generator)
    if args.metrics:
        _write_molecule_metrics(args, written)


def _write_molecule_metrics(args: argparse.Namespace, written: Path | None) -> None:
    """The MOSES metrics of a molecule model's written samples, beside them (stdout samples: printed to stderr)."""
    import sys

    from ..checkpointing import replace_file_atomically
    from ..data.molecules import read_smiles_file
    from ..metrics.molecules import molecule_metrics, plot_property_distributions

    if written is None or written.suffix != ".smi":
        raise ValueError("--metrics scores a molecule model's samples: give --output FILE.smi")
    smiles = written.read_text().splitlines()
    training = read_smiles_file(args.reference)[0] if args.reference else []
    metrics = molecule_metrics(smiles, training, fcd=True)
    if not args.reference:  # novelty against nothing would read 1.0
        metrics.pop("novelty")
    else:
        metrics["property_plot"] = str(plot_property_distributions(
            smiles, training, written.with_name(f"{written.stem}_properties.png")))
    path = written.with_name(f"{written.stem}_metrics.json")
    replace_file_atomically(path, json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2), file=sys.stderr)
    print(f"metrics written to {path}")


def _write_cross_modal_grids(model, args: argparse.Namespace, joint: Path, generator) -> None:
    """Beside the joint grid, one cross-modal grid per modality: a row per example among the first --num-samples
    (of the test split where the data has one) that have it, the example, then --num-draws draws of each other
    modality generated from it."""
    import numpy as np

    from ..data import load_multimodal_dataset

    try:
        dataset = load_multimodal_dataset(args.data, "test")
    except ValueError:  # a folder with only its training examples
        dataset = load_multimodal_dataset(args.data, "train")
    for name in model.modality_names:
        if name not in dataset.column_names:
            continue
        rows = np.flatnonzero(~np.asarray(dataset.data.column(name).is_null()))[: args.num_samples]
        values = dataset.select(rows.tolist())[name]  # raw values of any kind: the model encodes them
        path = model.write_cross_modal_grid(joint.with_name(f"{joint.stem}_from_{name}{joint.suffix}"), {name: values},
                                            num_draws=args.num_draws, generator=generator)
        print(f"cross-modal samples from {name} ({len(rows)} examples x {args.num_draws} draws) written to {path}")


def _predict(args: argparse.Namespace) -> None:
    """The input columns (or image index and label), the predicted label and one probability column per class."""
    import pandas as pd
    from transformers import AutoModel

    model = AutoModel.from_pretrained(args.model).eval()
    if not hasattr(model, "predict_proba"):
        raise ValueError(f"{args.model} is a {type(model).__name__}, not a classifier")
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    if model.preprocessor is not None:
        from ..data import read_table

        frame = read_table(args.data)
        probabilities = model.predict_proba(frame, generator)
    else:
        from ..data import load_image_dataset

        dataset = load_image_dataset(args.data, "test" if not Path(args.data).is_dir() else "train")
        pixel_values = dataset["pixel_values"][:]
        probabilities = torch.cat([model.predict_proba(pixel_values[start:start + 500], generator).cpu()
                                   for start in range(0, len(pixel_values), 500)])
        names = dataset.features["label"].names
        frame = pd.DataFrame({"index": range(len(dataset)), "label": [names[i] for i in dataset["label"][:].tolist()]})
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    frame = frame.copy()
    frame["predicted_label"] = [names[i] for i in probabilities.argmax(dim=1).tolist()]
    for position, name in enumerate(names):
        frame[f"probability_{name}"] = probabilities[:, position].cpu().numpy()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.output, index=False)
    print(f"{len(frame)} predictions written to {args.output}")


def _evaluate(args: argparse.Namespace) -> None:
    from transformers import AutoModel

    from .. import evaluation
    from ..data import load_image_dataset

    model = AutoModel.from_pretrained(args.model).eval()
    dataset = load_image_dataset(args.dataset, args.split)
    pixel_values, labels = dataset["pixel_values"][:], dataset["label"][:]
    if args.limit_examples:
        pixel_values, labels = pixel_values[: args.limit_examples], labels[: args.limit_examples]
    result = {"model": args.model, "metric": args.metric, "dataset": args.dataset, "split": args.split,
              "num_real_images": int(pixel_values.shape[0]), "seed": args.seed}
    started = time.time()
    if args.metric == "fid":
        result["num_samples"] = args.num_samples
        result["fid"] = evaluation.fid_against(model, pixel_values, args.num_samples, args.seed)
    elif args.metric == "mse":
        result["mse"] = evaluation.reconstruction_mse(model, pixel_values, args.seed)
    else:
        if args.anomaly_label is None:
            raise ValueError("--metric anomaly needs --anomaly-label (the held-out class, the positives)")
        result["anomaly_label"] = args.anomaly_label
        result["auprc"] = evaluation.anomaly_auprc(model, pixel_values, labels, args.anomaly_label, args.seed)
    result["wall_time_s"] = round(time.time() - started, 1)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


def _write_card_samples(args: argparse.Namespace) -> None:
    # Saving never runs a model; samples for the card are written only when asked.
    if args.with_samples:
        from transformers import AutoModel

        AutoModel.from_pretrained(args.model_dir).eval().write_card_samples(args.model_dir)


def _card(args: argparse.Namespace) -> None:
    from ..hub import write_model_card

    _write_card_samples(args)
    print(f"model card written to {write_model_card(args.model_dir, args.repo_id)}")


def _push(args: argparse.Namespace) -> None:
    from ..hub import push_folder

    _write_card_samples(args)
    commit = push_folder(args.model_dir, args.repo_id, private=args.private, token=args.token)
    print(f"uploaded {args.model_dir} to {args.repo_id}: {getattr(commit, 'commit_url', commit)}")
