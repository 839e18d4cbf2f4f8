"""Chet's batched training against the reference code's per-patient, per-visit loop, in one process on one device.

1. Same outputs: the batched logits and the loop's (`hf_latent_ebm.chet.reference`, the same parameters) agree
   within a tolerance on a sample of patients, and so do their gradients; checked before anything is timed.
2. Training throughput (patients per second, forward + backward + Adam step) of both paths on batches of 32 (the
   paper's) and of the batched path on larger batches too; the ratio is the speed-up. The paths are timed in turn,
   `--repeats` times, and each keeps its best: on a machine shared with other jobs a slow spell then lowers
   neither path alone.
3. For each cohort size: the time to prepare it (split, graph, neighbours, roles), seconds per training epoch of
   the batched path, the stored cohort's bytes against the dense [patients, visits, codes] arrays the reference
   code keeps, and the peak memory of an epoch (CUDA: max allocated; CPU: the process's peak resident set).

    python scripts/bench_ehr.py --patients 10000 50000 [--device cuda]

Writes docs/results/ehr/bench/bench_ehr_<device>.json and the docs/results.md section `bench_ehr_<device>`.
"""

import argparse
import json
import os
import resource
import shlex
import sys
import time
from pathlib import Path

import torch

from hf_latent_ebm.chet import ChetForHealthEventPrediction, PackedCohort, prepare_cohort, synthesize_mimic3
from hf_latent_ebm.chet.reference import dense_patient, reference_logits
from hf_latent_ebm.data.ehr import load_mimic3
from hf_latent_ebm.utils import describe_device, update_results_section


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def to_device(batch, device):
    return {name: value.to(device, non_blocking=True) for name, value in batch.items()}


def stored_bytes(cohort: PackedCohort) -> int:
    return sum(value.nbytes for value in vars(cohort).values() if isinstance(value, torch.Tensor))


def dense_bytes(cohort: PackedCohort) -> int:
    """The reference code's bool arrays: code_x and neighbours [n, T, C] and divided [n, T, C, 3]."""
    return len(cohort) * int(cohort.visit_offsets.diff().max()) * cohort.num_codes * 5


def check_same_outputs(model, cohort, device, num_patients: int = 64) -> dict:
    model.eval()
    ids = torch.arange(min(num_patients, len(cohort)))
    labels = cohort.labels_for(ids, "diagnosis").to(device)
    batched = model(**to_device(cohort.batch(ids), device)).logits
    loss = torch.nn.functional.binary_cross_entropy_with_logits(batched, labels)
    batched_grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    looped = reference_logits(model, [dense_patient(cohort, int(i)) for i in ids])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(looped, labels)
    looped_grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    logit_error = (batched - looped).abs().max().item()
    grad_error = max((a - b).abs().max().item() for a, b in zip(batched_grads, looped_grads)
                     if a is not None and b is not None)
    if logit_error > 1e-4 or grad_error > 1e-4:
        raise SystemExit(f"the batched model and the loop disagree: logits {logit_error:.2e}, grads {grad_error:.2e}")
    model.train()
    return {"patients": len(ids), "max_logit_difference": logit_error, "max_gradient_difference": grad_error}


def throughput(model, cohort, device, steps: int, loop: bool, batch_size: int = 32) -> float:
    """Training patients per second over `steps` batches (after one warm-up step)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(cohort), generator=torch.Generator().manual_seed(0))
    batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(steps + 1)]
    # The reference code loads its dense per-patient arrays from disk before training: built here, untimed.
    dense = {int(i): dense_patient(cohort, int(i)) for batch in batches for i in batch} if loop else None
    started = None
    for step, patients in enumerate(batches):
        if step == 1:
            synchronize(device)
            started = time.perf_counter()
        labels = cohort.labels_for(patients, "diagnosis").to(device)
        if loop:
            logits = reference_logits(model, [dense[int(i)] for i in patients])
        else:
            logits = model(**to_device(cohort.batch(patients), device)).logits
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - started)


def epoch_seconds(model, cohort, device, batch_size: int = 32) -> tuple[float, int]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(cohort), generator=torch.Generator().manual_seed(1))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    synchronize(device)
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        patients = order[start:start + batch_size]
        output = model(**to_device(cohort.batch(patients, "diagnosis"), device))
        optimizer.zero_grad(set_to_none=True)
        output.loss.backward()
        optimizer.step()
    synchronize(device)
    seconds = time.perf_counter() - started
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--loop-steps", type=int, default=10, help="timed training steps of the per-patient loop")
    parser.add_argument("--batched-steps", type=int, default=50, help="timed training steps of the batched model")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256],
                        help="batch sizes of the batched model's throughput (the first is the loop's too: the paper's "
                             "32); the loop's cost per patient does not depend on it")
    parser.add_argument("--repeats", type=int, default=3,
                        help="rounds of the throughput timings (loop, then each batch size); each keeps its best")
    parser.add_argument("--out-dir", default="runs/bench-ehr")
    parser.add_argument("--results", default="docs/results.md")
    parser.add_argument("--json-dir", default="docs/results/ehr/bench")
    parser.add_argument("--from-json", default=None,
                        help="write the results.md section from a JSON this script wrote (on another machine) and stop")
    args = parser.parse_args()
    if args.from_json:
        write_section(json.loads(Path(args.from_json).read_text()), args.results)
        return
    device = torch.device(args.device)
    # The thread count is part of the measurement: a run under OMP_NUM_THREADS records it.
    threads = os.environ.get("OMP_NUM_THREADS")
    command = (f"OMP_NUM_THREADS={threads} " if threads else "") + shlex.join(
        ["python", "scripts/bench_ehr.py", *sys.argv[1:]])
    record = {"command": command, "device": describe_device(device), "torch": torch.__version__, "sizes": {}}
    for size in args.patients:
        folder = synthesize_mimic3(Path(args.out_dir) / f"data-{size}", num_patients=size, seed=0)
        records, report = load_mimic3(folder)
        started = time.perf_counter()
        prepared = prepare_cohort(records, seed=0)
        prepare_seconds = time.perf_counter() - started
        cohort = PackedCohort(prepared["train"], len(prepared["vocabulary"]))
        torch.manual_seed(0)
        model = ChetForHealthEventPrediction.from_cohort(prepared["vocabulary"], prepared["graph"]).to(device)
        entry = {"patients_kept": report.patients_kept, "train_patients": len(cohort),
                 "codes": len(prepared["vocabulary"]), "graph_edges": prepared["graph"].num_edges,
                 "prepare_seconds": prepare_seconds, "stored_cohort_bytes": stored_bytes(cohort),
                 "dense_reference_bytes": dense_bytes(cohort)}
        if size == args.patients[0]:
            entry["check"] = check_same_outputs(model, cohort, device)
            rounds = {"loop": [], **{batch: [] for batch in args.batch_sizes}}
            for _ in range(args.repeats):
                rounds["loop"].append(throughput(model, cohort, device, args.loop_steps, loop=True,
                                                 batch_size=args.batch_sizes[0]))
                for batch in args.batch_sizes:  # steps of distinct patients: at most one pass over the cohort
                    steps = min(args.batched_steps, len(cohort) // batch - 1)
                    rounds[batch].append(throughput(model, cohort, device, steps, loop=False, batch_size=batch))
            looped = max(rounds["loop"])
            batched = {batch: max(rounds[batch]) for batch in args.batch_sizes}
            entry.update(repeats=args.repeats, throughput_rounds={str(k): v for k, v in rounds.items()},
                         loop_patients_per_second=looped,
                         batched_patients_per_second={str(k): v for k, v in batched.items()},
                         speedup={str(k): v / looped for k, v in batched.items()})
            record["speedup"] = entry["speedup"]
        entry["epoch_seconds"], entry["epoch_peak_memory_bytes"] = epoch_seconds(model, cohort, device)
        record["sizes"][str(size)] = entry
        print(size, json.dumps(entry), flush=True)

    record["device_type"] = device.type
    lines = write_section(record, args.results)
    Path(args.json_dir).mkdir(parents=True, exist_ok=True)
    Path(args.json_dir, f"bench_ehr_{device.type}.json").write_text(json.dumps(record, indent=2))
    print("\n".join(lines))


def write_section(record: dict, results: str) -> list[str]:
    """The results.md section `bench_ehr_<device>` from a run's record; returns its lines."""
    first = next(iter(record["sizes"].values()))
    batch_sizes = list(first["batched_patients_per_second"])
    device_type = record.get("device_type") or ("cpu" if record["device"].startswith("CPU") else "cuda")
    lines = [f"Device: {record['device']}, torch {record['torch']}. Command: `{record['command']}`.", ""]
    lines += [f"Outputs checked on {first['check']['patients']} patients: max |logit difference| "
              f"{first['check']['max_logit_difference']:.1e}, max |gradient difference| "
              f"{first['check']['max_gradient_difference']:.1e}.", "",
              f"Training throughput (forward + backward + Adam step; the best of {first.get('repeats', 1)} "
              f"alternating rounds of each path), the per-patient loop: "
              f"{first['loop_patients_per_second']:.1f} patients/s (batches of {batch_sizes[0]}); batched: " +
              "; ".join(f"batch {size}: {first['batched_patients_per_second'][size]:.0f} patients/s, "
                        f"**{first['speedup'][size]:.1f}x**" for size in batch_sizes) + ".", "",
              "| patients | train patients | codes | prepare s | s / epoch | stored cohort MB | dense arrays MB | peak memory MB |",
              "|---|---|---|---|---|---|---|---|"]
    for size, entry in record["sizes"].items():
        lines.append(f"| {int(size):,} | {entry['train_patients']:,} | {entry['codes']} | {entry['prepare_seconds']:.1f} | "
                     f"{entry['epoch_seconds']:.1f} | {entry['stored_cohort_bytes'] / 2**20:.1f} | "
                     f"{entry['dense_reference_bytes'] / 2**20:.1f} | {entry['epoch_peak_memory_bytes'] / 2**20:.0f} |")
    lines += ["", "Peak memory: " + ("torch.cuda.max_memory_allocated over the epoch." if device_type == "cuda" else
                                     "the process's peak resident set (the data, the cohort and Python included).")]
    update_results_section(results, f"bench_ehr_{device_type}", f"Chet training speed ({record['device']})",
                           "\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
