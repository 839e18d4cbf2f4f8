"""Molecules as SMILES (issue 35, item 1): the SMILES tokenizer, canonical forms, RDKit properties and reading a
user's file, on a few dozen molecules shipped here."""

import pytest

from hf_latent_ebm.tokenization import smiles_tokens, train_tokenizer

# A small shipped set: drugs and building blocks with aromatic rings, charges, stereo, Cl / Br and two-digit rings.
SMILES = [
    "CC(=O)Oc1ccccc1C(=O)O", "CN1C=NC2=C1C(=O)N(C(=O)N2C)C", "CC(C)Cc1ccc(cc1)C(C)C(=O)O", "c1ccc2[nH]ccc2c1",
    "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O", "Clc1ccc(Br)cc1", "C[N+](C)(C)C", "CC(=O)[O-]", "N#Cc1ccccc1",
    "C1CCC2CCCCC2C1", "O=C1NC(=O)C(=O)N1", "c1ccncc1", "CCOC(=O)C=C", "FC(F)(F)c1ccccc1", "CS(=O)(=O)N",
    "C1=CC=CC=C1", "CC(C)(C)OC(=O)N", "OCCN", "C%10CCCCC%10", "CCCCCCCCCC",
]


def test_smiles_tokens_keep_atoms_whole_and_join_back():
    assert smiles_tokens("Clc1ccc([nH]2)cc1Br") == ["Cl", "c", "1", "c", "c", "c", "(", "[nH]", "2", ")", "c",
                                                   "c", "1", "Br"]
    assert smiles_tokens("C[C@@H](O)[O-].C%12CC%12") == ["C", "[C@@H]", "(", "O", ")", "[O-]", ".", "C", "%12",
                                                        "C", "C", "%12"]
    for smiles in SMILES:
        assert "".join(smiles_tokens(smiles)) == smiles
    with pytest.raises(ValueError, match=r"\['X'\]"):
        smiles_tokens("CCX")


def test_the_smiles_tokenizer_round_trips_and_saves(tmp_path):
    from transformers import AutoTokenizer

    tokenizer = train_tokenizer(SMILES, kind="smiles", min_frequency=1, max_length=60)
    for smiles in SMILES:
        ids = tokenizer(smiles)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == smiles
    assert "Cl" in tokenizer.get_vocab() and "[nH]" in tokenizer.get_vocab() and "c" in tokenizer.get_vocab()
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("c1ccncc1Cl")["input_ids"] == tokenizer("c1ccncc1Cl")["input_ids"]
    with pytest.raises(ValueError, match="lowercase"):
        train_tokenizer(SMILES, kind="smiles", lowercase=True)
    with pytest.raises(ValueError, match="not a SMILES string"):
        train_tokenizer(SMILES + ["hello world"], kind="smiles")


rdkit = pytest.importorskip("rdkit", reason="RDKit is the molecules extra: pip install 'hf-latent-ebm[molecules]'")


def test_properties_of_aspirin_match_rdkits_published_values():
    from hf_latent_ebm.data.molecules import PROPERTY_NAMES, molecule_properties

    values = molecule_properties(["CC(=O)Oc1ccccc1C(=O)O", "C1CCCCCCCC1"])
    assert tuple(values) == PROPERTY_NAMES
    assert values["qed"][0] == pytest.approx(0.5501, abs=1e-3)
    assert values["logp"][0] == pytest.approx(1.3101, abs=1e-3)
    assert values["mol_weight"][0] == pytest.approx(180.159, abs=1e-2)
    assert 1 <= values["sa"][0] <= 2.5
    assert values["penalized_logp"][0] == pytest.approx(values["logp"][0] - values["sa"][0])  # no ring over 6
    ring_penalty = values["logp"][1] - values["sa"][1] - values["penalized_logp"][1]
    assert ring_penalty == pytest.approx(3)  # a 9-membered ring
    with pytest.raises(ValueError, match="not a valid molecule"):
        molecule_properties(["C1CC"])


def test_a_users_file_is_read_canonically_with_bad_lines_counted(tmp_path):
    from hf_latent_ebm.data.molecules import canonical_smiles, read_smiles_file

    smi = tmp_path / "mols.smi"
    smi.write_text("C1=CC=CC=C1 benzene\n\nC1CC\nOCC\n")
    molecules, report = read_smiles_file(smi)
    assert molecules == ["c1ccccc1", "CCO"]  # canonical forms, file order
    assert report["lines"] == 4 and report["empty_skipped"] == 1 and report["invalid_skipped"] == 1
    assert report["invalid_examples"] == ["C1CC"]
    table = tmp_path / "mols.csv"
    table.write_text("name,smiles\nethanol,OCC\nbad,\nwater,O\n")
    molecules, report = read_smiles_file(table)
    assert molecules == ["CCO", "O"] and report["empty_skipped"] == 1
    with pytest.raises(ValueError, match=r"no column 'SMILE'.*\['name', 'smiles'\]"):
        read_smiles_file(table, column="SMILE")
    with pytest.raises(ValueError, match="no SMILES file"):
        read_smiles_file(tmp_path / "missing.smi")
    (tmp_path / "mols.sdf").write_text("not read")
    with pytest.raises(ValueError, match=r"\.smi, \.txt or \.csv"):
        read_smiles_file(tmp_path / "mols.sdf")
    assert canonical_smiles("OCC") == "CCO" and canonical_smiles("C1CC") is None


def test_without_rdkit_the_error_names_the_extra(monkeypatch):
    import builtins

    from hf_latent_ebm.data import molecules

    real_import = builtins.__import__

    def no_rdkit(name, *args, **kwargs):
        if name.startswith("rdkit"):
            raise ImportError("No module named 'rdkit'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_rdkit)
    with pytest.raises(ImportError, match=r"hf-latent-ebm\[molecules\]"):
        molecules.canonical_smiles("CCO")


def test_moses_metrics_on_canonical_forms():
    from hf_latent_ebm.metrics.molecules import internal_diversity, molecule_metrics, novelty, uniqueness, validity

    generated = ["OCC", "CCO", "C1CC", "", "c1ccccc1", "C1=CC=CC=C1"]  # ethanol twice, benzene twice, 2 invalid
    assert validity(generated) == pytest.approx(4 / 6)
    assert uniqueness(generated) == pytest.approx(2 / 4)  # raw strings differ, canonical forms do not
    assert uniqueness(generated, k=2) == 0.5  # the first two valid molecules are ethanol in two spellings
    with pytest.raises(ValueError, match="unique@10 needs 10 valid"):
        uniqueness(generated, k=10)
    assert novelty(generated, ["CCO"]) == pytest.approx(1 / 2)  # benzene is new, ethanol (as OCC too) is not
    assert internal_diversity(["CCO", "CCO"]) == pytest.approx(0.0)
    # No shared Morgan bits: of the four ordered pairs only the two self-pairs have T = 1, so 1 - 2/4.
    assert internal_diversity(["CCO", "c1ccccc1"]) == pytest.approx(0.5)
    metrics = molecule_metrics(generated, ["CCO"], ks=(2, 100))
    assert set(metrics) == {"validity", "unique@2", "novelty", "intdiv1", "intdiv2"}  # unique@100 not reached
