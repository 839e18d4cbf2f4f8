"""The benchmark and table scripts' bookkeeping (not their timings): interleaved timing, results.md sections rebuilt
from the JSON a device run brings back, and the table scripts' shared helpers."""

import json
import sys
from pathlib import Path

import pytest
import torch

from .testing_utils import load_script

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark(name):
    return load_script(ROOT / "scripts" / f"{name}.py", f"{name}_under_test")


def test_timed_warms_each_function_up_then_interleaves_the_timed_calls():
    bench = load_benchmark("bench_langevin")
    calls = []
    results = bench.timed({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, torch.device("cpu"),
                          repeats=2, warmup=2)
    assert calls == ["a", "a", "b", "b", "a", "b", "a", "b"]
    assert set(results) == {"a", "b"} and all(row["s"] >= 0 and row["peak_mib"] is None for row in results.values())


def test_results_sections_are_rebuilt_from_the_recorded_json(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the section names the JSON by the path it was given, relative as in docs/results.md
    for script, recorded, results_flag, key in (
            ("bench_langevin", "docs/results/image/benchmarks/bench_langevin_cpu.json", "--results-md",
             "bench_langevin_cpu"),
            ("bench_ehr", "docs/results/ehr/bench/bench_ehr_cpu.json", "--results", "bench_ehr_cpu")):
        results_md = tmp_path / f"{script}.md"
        monkeypatch.setattr(sys, "argv", [script, "--from-json", recorded, results_flag, str(results_md)])
        load_benchmark(script).main()
        text = results_md.read_text()
        section = text[text.index(f"<!-- begin {key} -->"):text.index(f"<!-- end {key} -->")]
        assert section in (ROOT / "docs" / "results.md").read_text(), f"{script}: the section differs"
        assert json.loads((ROOT / recorded).read_text())["command"] in section


def test_the_table_scripts_share_the_library_helpers():
    from hf_latent_ebm import evaluation

    for name in ("anomaly_mnist", "fid_table"):
        module = load_benchmark(name)
        assert module.parse_variants is evaluation.parse_variants and module.image_config is evaluation.image_config
        if name == "anomaly_mnist":
            assert module.split_for_digit is evaluation.split_for_digit
            assert module.anomaly_markdown_table is evaluation.anomaly_markdown_table
        else:
            assert module.fid_markdown_table is evaluation.fid_markdown_table


def test_table_rows_are_parsed_and_built_from_overrides_or_a_preset():
    from hf_latent_ebm import evaluation

    variants = evaluation.parse_variants(['ebm={}', 'hier={"preset": "hierarchical", "layer_sizes": [2, 3]}'])
    assert list(variants) == ["ebm", "hier"]  # the order given, not a sorted one
    config = evaluation.image_config(variants["hier"])
    assert config.prior_type == "hierarchical" and config.latent_dim == 5 and config.decoder_type == "ladder"
    assert evaluation.image_config({"prior_type": "gaussian"}).prior_type == "gaussian"
    for bad, message in (("noequals", "NAME=JSON"), ("x={oops", "invalid JSON"), ("x=[1]", "JSON object")):
        with pytest.raises(ValueError, match=message):
            evaluation.parse_variants([bad])
    with pytest.raises(ValueError, match="preset must be one of"):
        evaluation.image_config({"preset": "nope"})


def test_the_anomaly_comparison_table_has_a_column_per_model_in_order():
    from hf_latent_ebm import evaluation

    runs = {name: evaluation.summarize_anomaly_runs([
        {"digit": digit, "seed": 0, "auprc": value, "positive_fraction": 0.1, "train_time_s": 1.0, "device": "CPU"}
        for digit, value in ((9, base), (1, base + 0.1))]) for name, base in (("zeta", 0.5), ("alpha", 0.2))}
    table = evaluation.anomaly_comparison_table(runs).splitlines()
    assert table[0].startswith("| held-out class | chance | zeta | alpha | Pang et al. 2020")
    assert table[2].startswith("| 1 | 0.100 | 0.600 | 0.300 | 0.336 | 0.722")
    assert "Pang" not in evaluation.anomaly_comparison_table(runs, papers=False)
