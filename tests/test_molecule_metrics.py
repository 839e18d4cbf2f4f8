"""The MOSES reference metrics of generated molecules (issue 35, item 3): FCD, SNN, Frag, Scaf, the property plot and
the `moses` evaluate module, on a few dozen molecules written here."""

import importlib.util
import math

import pytest

rdkit = pytest.importorskip("rdkit", reason="RDKit is the molecules extra: pip install 'hf-latent-ebm[molecules]'")

from hf_latent_ebm.metrics.molecules import (  # noqa: E402 (after the skip: the module needs RDKit at call time)
    PLOT_PROPERTIES, brics_fragments, canonical_valid, fragment_similarity, frechet_chemnet_distance,
    molecule_metrics, murcko_scaffolds, nearest_neighbour_similarity, plot_property_distributions,
    scaffold_similarity)

# The set of tests/test_molecules.py: drugs and building blocks, charges, stereo, Cl / Br, two-digit rings.
SMILES = [
    "CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "c1ccc2[nH]ccc2c1",
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O", "Clc1ccc(Br)cc1", "C[N+](C)(C)C", "CC(=O)[O-]", "N#Cc1ccccc1",
    "C1CCC2CCCCC2C1", "O=C1NC(=O)C(=O)N1", "c1ccncc1", "CCOC(=O)C=C", "FC(F)(F)c1ccccc1", "CS(=O)(=O)N",
    "C1=CC=CC=C1", "CC(C)(C)OC(=O)N", "OCCN", "C%10CCCCC%10", "CCCCCCCCCC",
]
# Small chain molecules, far in ChemNet's space from the ring-rich set above.
CHAINS = ["CCO", "CCCO", "CCCCO", "CCN", "CCCN", "CCCCN", "CCC", "CCCC", "CCCCC", "OCCO", "NCCN", "CCOC", "CCOCC",
          "CC(C)O", "CC(C)N", "CC(C)C", "CCCCCC", "OCCCO", "NCCCN", "CCSC"]
NAPHTHALENES = ["c1ccc2ccccc2c1", "Cc1ccc2ccccc2c1", "Oc1ccc2ccccc2c1"]  # all the naphthalene scaffold
INDOLES = ["c1ccc2[nH]ccc2c1", "Cc1ccc2[nH]ccc2c1", "CCc1ccc2[nH]ccc2c1"]  # all the indole scaffold

needs_fcd = pytest.mark.skipif(importlib.util.find_spec("fcd_torch") is None, reason="fcd_torch is not installed")


def _moses_stats_installed():
    spec = importlib.util.find_spec("moses")
    return spec is not None and any(
        (__import__("pathlib").Path(location) / "dataset" / "data" / "test_stats.npz").is_file()
        for location in spec.submodule_search_locations or [])


def test_snn_is_one_on_itself_and_the_mean_best_tanimoto_otherwise():
    from rdkit import Chem, DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    assert nearest_neighbour_similarity(SMILES, SMILES) == pytest.approx(1.0)
    assert nearest_neighbour_similarity(SMILES[:5], SMILES) == pytest.approx(1.0)  # every one has itself there
    # Against RDKit's own Tanimoto of the same Morgan prints (radius 2, 1024 bits), one molecule at a time.
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=1024)
    prints = [generator.GetFingerprint(Chem.MolFromSmiles(text)) for text in canonical_valid(SMILES)]
    expected = sum(max(DataStructs.BulkTanimotoSimilarity(generator.GetFingerprint(Chem.MolFromSmiles(text)), prints))
                   for text in canonical_valid(CHAINS)) / len(CHAINS)
    assert nearest_neighbour_similarity(CHAINS, SMILES) == pytest.approx(expected, abs=1e-6)
    assert 0 < expected < 1
    # Invalid molecules are dropped (counted by validity, not here); duplicates count, as in MOSES.
    assert nearest_neighbour_similarity(CHAINS + ["C1CC", ""], SMILES) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="SNN of generated molecules needs at least 1 valid molecule, got 0 of 2"):
        nearest_neighbour_similarity(["C1CC", "xyz"], SMILES)
    with pytest.raises(ValueError, match="reference molecules"):
        nearest_neighbour_similarity(SMILES, [])
    with pytest.raises(TypeError, match="not one string"):
        nearest_neighbour_similarity("CCO", SMILES)


def test_fragment_similarity_is_the_cosine_of_brics_fragment_counts():
    assert fragment_similarity(SMILES, SMILES) == pytest.approx(1.0)
    assert fragment_similarity(SMILES + ["C1CC"], list(reversed(SMILES))) == pytest.approx(1.0)
    # Aspirin cuts into 4 BRICS fragments, ethyl acrylate into 3, one ([3*]O[3*], the ester oxygen) shared.
    aspirin, acrylate = "CC(=O)Oc1ccccc1C(=O)O", "CCOC(=O)C=C"
    assert brics_fragments([aspirin])["[3*]O[3*]"] == 1 and sum(brics_fragments([aspirin]).values()) == 4
    assert fragment_similarity([aspirin], [acrylate]) == pytest.approx(1 / math.sqrt(4 * 3))
    # No BRICS bond: a molecule is its own fragment, so different ones share nothing.
    assert fragment_similarity(["CCO"], ["CCN"]) == 0.0
    assert fragment_similarity(["CCO"], ["CCO", "CCN"]) == pytest.approx(1 / math.sqrt(2))


def test_scaffold_similarity_is_one_on_itself_and_zero_for_disjoint_scaffolds():
    assert murcko_scaffolds(NAPHTHALENES + INDOLES) == {"c1ccc2ccccc2c1": 3, "c1ccc2[nH]ccc2c1": 3}
    assert scaffold_similarity(NAPHTHALENES, NAPHTHALENES) == pytest.approx(1.0)
    assert scaffold_similarity(NAPHTHALENES, INDOLES) == 0.0
    # Counts (3, 3) against (3, 0): cosine 1/sqrt(2).
    assert scaffold_similarity(NAPHTHALENES + INDOLES, NAPHTHALENES) == pytest.approx(1 / math.sqrt(2))
    # MOSES counts only scaffolds of two rings or more: benzene rings alone give none, so the cosine is undefined.
    assert math.isnan(scaffold_similarity(["c1ccccc1C", "CCO"], NAPHTHALENES))
    assert scaffold_similarity(["c1ccccc1C"], ["c1ccccc1CC"], min_rings=1) == pytest.approx(1.0)


@needs_fcd
def test_fcd_is_zero_on_itself_larger_for_another_set_and_drops_invalid_molecules():
    same = frechet_chemnet_distance(SMILES + ["C1CC", ""], SMILES)  # the invalid two are dropped
    assert same == pytest.approx(0.0, abs=1e-3)
    other = frechet_chemnet_distance(CHAINS, SMILES)
    assert other > 1.0 and other > same + 1.0
    # Checked before ChemNet runs: a covariance needs two molecules.
    with pytest.raises(ValueError, match="FCD of generated molecules needs at least 2 valid molecules, got 1 of 2"):
        frechet_chemnet_distance(["CCO", "C1CC"], SMILES)
    with pytest.raises(ValueError, match="FCD of reference molecules"):
        frechet_chemnet_distance(SMILES, ["CCO"])


def test_without_fcd_torch_the_error_names_the_extra(monkeypatch):
    import builtins

    from hf_latent_ebm.metrics import molecules

    real_import = builtins.__import__

    def no_fcd(name, *args, **kwargs):
        if name.startswith("fcd_torch"):
            raise ImportError("No module named 'fcd_torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_fcd)
    with pytest.raises(ImportError, match=r"fcd_torch: pip install 'hf-latent-ebm\[molecules\]'"):
        molecules.require_fcd()


@pytest.mark.skipif(not _moses_stats_installed(), reason="the MOSES test statistics ship with molsets")
def test_the_moses_test_set_is_the_default_reference():
    from hf_latent_ebm.metrics.molecules import moses_test_statistics

    stats = moses_test_statistics()
    assert stats["FCD"]["mu"].shape == (512,) and stats["SNN"]["fps"].shape[1] == 1024
    # Drug-like molecules share fragments with the MOSES test set and sit near some of its molecules.
    assert 0 < fragment_similarity(SMILES) <= 1
    assert 0 < nearest_neighbour_similarity(SMILES[:4]) < 1
    assert math.isnan(scaffold_similarity(CHAINS))  # no ring, no scaffold
    with pytest.raises(ValueError, match="min_rings=2"):
        scaffold_similarity(SMILES, min_rings=1)


def test_molecule_metrics_adds_the_reference_metrics_when_asked():
    base = molecule_metrics(SMILES, CHAINS, ks=(10,))
    assert set(base) == {"validity", "unique@10", "novelty", "intdiv1", "intdiv2"}
    metrics = molecule_metrics(SMILES, CHAINS, ks=(10,), reference_smiles=SMILES, similarities=True)
    assert set(metrics) == set(base) | {"snn", "frag", "scaf"}
    assert {name: metrics[name] for name in base} == base
    assert metrics["snn"] == pytest.approx(1.0) and metrics["frag"] == pytest.approx(1.0)
    assert metrics["scaf"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="fcd=True or similarities=True"):
        molecule_metrics(SMILES, CHAINS, reference_smiles=SMILES)


def test_the_property_plot_writes_a_png_and_names_unknown_properties(tmp_path):
    path = plot_property_distributions(SMILES + ["C1CC"], CHAINS, tmp_path / "plots" / "properties.png")
    assert path == tmp_path / "plots" / "properties.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [file.name for file in path.parent.iterdir()] == ["properties.png"]  # no staging file left behind
    assert set(PLOT_PROPERTIES) == {"qed", "logp", "sa", "mol_weight"}
    with pytest.raises(ValueError, match=r"unknown molecule properties \['tpsa'\]; known: \['qed', 'logp'"):
        plot_property_distributions(SMILES, CHAINS, tmp_path / "bad.png", properties=("qed", "tpsa"))
    with pytest.raises(ValueError, match=r"ending in \.png"):
        plot_property_distributions(SMILES, CHAINS, tmp_path / "plot.pdf")
    with pytest.raises(ValueError, match="plotting training molecules needs at least 1 valid"):
        plot_property_distributions(SMILES, ["C1CC"], tmp_path / "empty.png")


@pytest.mark.skipif(importlib.util.find_spec("evaluate") is None, reason="evaluate is not installed")
def test_the_moses_evaluate_module_matches_the_functions():
    import evaluate

    from hf_latent_ebm.metrics import evaluate_module_path

    moses = evaluate.load(evaluate_module_path("moses"))
    generated = SMILES[:12] + ["C1CC"] + CHAINS[:6]  # a training set of another size than the generated one
    assert moses.compute(predictions=generated, references=CHAINS, ks=(5,)) == pytest.approx(
        molecule_metrics(generated, CHAINS, ks=(5,)))
    kwargs = {"ks": (5,), "reference_smiles": SMILES + NAPHTHALENES, "similarities": True}
    assert moses.compute(predictions=generated, references=CHAINS, **kwargs) == pytest.approx(
        molecule_metrics(generated, CHAINS, **kwargs))
    with pytest.raises(ValueError, match="references must be the training SMILES"):
        moses.compute(predictions=generated)
