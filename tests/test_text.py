import json

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from hf_latent_ebm import LatentEBMForTextGeneration, LatentEBMTextConfig
from hf_latent_ebm.cli import main as cli_main
from hf_latent_ebm.data import load_text_dataset
from hf_latent_ebm.distributions import diagonal_gaussian_log_density
from hf_latent_ebm.priors import GaussianPrior
from hf_latent_ebm.tokenization import train_tokenizer

from .testing_utils import ModelTesterMixin

TINY_TEXT = dict(vocab_size=30, latent_dim=4, embedding_dim=8, hidden_dim=16, energy_hidden_dim=8,
                 sampler_config={"prior_steps": 3, "posterior_steps": 3}, max_length=12, decoder_dropout=0.0)
CORPUS = [
    "the cat sat on the mat .",
    "the dog sat on the log .",
    "a cat saw a dog .",
    "the dog saw the cat on the mat .",
    "a bird sang in the tree .",
    "the bird saw a cat in the tree .",
] * 4


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


class TextModelTester(ModelTesterMixin):
    model_class = LatentEBMForTextGeneration
    config_class = LatentEBMTextConfig
    decoder_type = "lstm"
    bad_config_overrides = [
        {"vocab_size": 3},
        {"pad_token_id": 1},
        {"eos_token_id": 30},
        {"max_length": 2},
        {"decoder_type": "rnn"},
        {"decoder_dropout": 1.0},
        {"hidden_dim": 0},
        {"decoder_type": "transformer", "hidden_dim": 10, "num_attention_heads": 4},
    ]

    def get_config(self, **overrides):
        return LatentEBMTextConfig(**{**TINY_TEXT, "decoder_type": self.decoder_type, **overrides})

    def get_inputs(self, batch_size=3, seed=0):
        ids = torch.randint(4, 30, (batch_size, 8), generator=seeded(seed))
        ids[:, 0] = 1
        for row in range(batch_size):
            end = 4 + row % 4
            ids[row, end] = 2
            ids[row, end + 1:] = 0
        return {"input_ids": ids}

    def bad_inputs(self):
        good = self.get_inputs()["input_ids"]
        too_long = torch.ones(2, 13, dtype=torch.long)
        return [
            ({"input_ids": good.float()}, "torch.long"),
            ({"input_ids": good[0]}, "torch.long"),
            ({"input_ids": too_long}, "max_length"),
            ({"input_ids": good[:0]}, "at least one sequence"),
        ]

    def bad_input_values(self):
        good = self.get_inputs()["input_ids"]
        return [({"input_ids": good.clone().fill_(30)}, "another tokenizer"),
                ({"input_ids": good.clone().fill_(-1)}, "another tokenizer")]


class TestLSTMText(TextModelTester):
    decoder_type = "lstm"


class TestGRUText(TextModelTester):
    decoder_type = "gru"


class TestTransformerText(TextModelTester):
    decoder_type = "transformer"


@pytest.fixture
def tokenizer():
    return train_tokenizer(CORPUS, kind="word", vocab_size=100, min_frequency=1, max_length=12)


@pytest.fixture
def model(tokenizer):
    torch.manual_seed(0)
    config = LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer)})
    model = LatentEBMForTextGeneration(config).eval()
    model.set_tokenizer(tokenizer)
    return model


@pytest.mark.parametrize("decoder_type", ["lstm", "gru", "transformer"])
def test_scoring_skips_padding_without_changing_scores_or_latent_gradients(decoder_type):
    torch.manual_seed(0)
    model = LatentEBMForTextGeneration(LatentEBMTextConfig(**{**TINY_TEXT, "decoder_type": decoder_type})).eval()
    ids = TextModelTester().get_inputs(batch_size=4)["input_ids"]
    ids[3, 1:] = 0  # a row with nothing to score
    latents = torch.randn(4, 4, requires_grad=True)

    def reference(input_ids, z):  # every position through the vocabulary projection, then masked
        logits = model.decoder(input_ids[:, :-1], z)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), input_ids[:, 1:], reduction="none")
        return (nll * (input_ids[:, 1:] != 0)).sum(dim=1)

    expected = reference(ids, latents)
    (expected_grad,) = torch.autograd.grad(expected.sum(), latents)
    scores = model.decoder.negative_log_likelihood(ids, latents)
    (grad,) = torch.autograd.grad(scores.sum(), latents)
    assert torch.allclose(scores, expected, atol=1e-5) and scores[3] == 0
    assert torch.allclose(grad, expected_grad, atol=1e-5)
    # Padding inside a row (not right-padded) is scored correctly too, by the unpacked path.
    holes = ids.clone()
    holes[0, 2] = 0
    assert torch.allclose(model.decoder.negative_log_likelihood(holes, latents), reference(holes, latents), atol=1e-5)


def test_word_tokenizer_round_trip_specials_and_unknown_words(tokenizer, tmp_path):
    assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == \
        (0, 1, 2, 3)
    ids = tokenizer("The cat sat.")["input_ids"]
    assert ids[0] == 1 and ids[-1] == 2
    assert tokenizer.decode(ids, skip_special_tokens=True) == "the cat sat ."
    assert tokenizer("the zebra")["input_ids"][2] == tokenizer.unk_token_id
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("the cat sat .")["input_ids"] == tokenizer("the cat sat .")["input_ids"]


def test_bpe_tokenizer_round_trips_unseen_characters():
    bpe = train_tokenizer(CORPUS, kind="bpe", vocab_size=300, min_frequency=1)
    text = "the zebra sat on ünïcode ☃"
    assert bpe.decode(bpe(text)["input_ids"], skip_special_tokens=True) == text


def test_default_tokenizer_is_byte_level_bpe_and_round_trips_hyphens_and_punctuation(tmp_path):
    tokenizer = train_tokenizer(CORPUS, min_frequency=1, max_length=64)
    assert json.loads(tokenizer.backend_tokenizer.to_str())["model"]["type"] == "BPE"
    texts = ["a t-shirt, isn't it?", "it 's ok . (well -- maybe) \"quoted\"; x-ray: 3.5%!", "The Cat-Dog SAT."]
    ids = tokenizer(texts)["input_ids"]
    assert not any(tokenizer.unk_token_id in row for row in ids)
    assert tokenizer.batch_decode(ids, skip_special_tokens=True) == [text.lower() for text in texts]
    tokenizer.save_pretrained(tmp_path)  # and after a save and load, as a model's folder gives it back
    assert AutoTokenizer.from_pretrained(tmp_path).batch_decode(ids, skip_special_tokens=True) == \
        [text.lower() for text in texts]
    # The text model's decoding keeps them too: no spaces put around hyphens or before punctuation.
    model = LatentEBMForTextGeneration(LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer),
                                                               "max_length": 64}))
    model.set_tokenizer(tokenizer)
    assert model.ids_to_text(model.tokenize(texts)) == [text.lower() for text in texts]


def test_unknown_words_warn_and_long_texts_name_the_limit(model):
    with pytest.warns(UserWarning, match=r"2 distinct words .* encoded as <unk>: 'zebra', 'okapi'"):
        ids = model.tokenize(["the zebra sat", "a zebra saw the okapi"])
    assert (ids == 3).sum() == 3  # still encoded (a word-level model scores <unk>), not refused
    long_text = " ".join(["the cat sat on the mat"] * 5)
    with pytest.warns(UserWarning, match=r"max_length=12 .*`max_length` \(`hf-latent-ebm train --task text "
                                         r"--max-length N`\)"):
        model.tokenize([long_text])


def test_tokenizer_rejects_empty_corpus_and_unknown_kind():
    with pytest.raises(ValueError, match="empty corpus"):
        train_tokenizer(["", "   "])
    with pytest.raises(ValueError, match="kind"):
        train_tokenizer(CORPUS, kind="unigram")


def test_model_and_tokenizer_save_and_load_together(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, LatentEBMForTextGeneration)
    assert loaded.tokenizer is not None and len(AutoTokenizer.from_pretrained(tmp_path)) == model.config.vocab_size
    assert loaded.generate_text(3, seeded(1)) == model.generate_text(3, seeded(1))


def test_generate_encode_and_interpolate(model):
    texts = model.generate_text(4, seeded(), temperature=0.7, max_length=8)
    assert len(texts) == 4 and all(isinstance(text, str) for text in texts)
    assert texts == model.generate_text(4, seeded(), temperature=0.7, max_length=8)
    latents = model.encode_text(["the cat sat .", "a dog saw a bird ."], seeded())
    assert latents.shape == (2, 4)
    path = model.interpolate("the cat sat .", "a dog saw a bird .", num_steps=4, generator=seeded())
    assert len(path) == 4
    with pytest.raises(ValueError, match="temperature"):
        model.generate_text(2, temperature=0.0)
    with pytest.raises(ValueError, match="max_length"):
        model.generate_text(2, max_length=100)
    with pytest.raises(ValueError, match="num_steps"):
        model.interpolate("a", "b", num_steps=1)


def test_generated_sequences_stop_at_eos(model):
    ids = model.decoder.generate(model.sample_latents(6, seeded()), 12, generator=seeded())
    assert (ids[:, 0] == 1).all()
    for row in ids:
        eos = (row == 2).nonzero()
        if len(eos):
            assert (row[eos[0, 0] + 1:] == 0).all()


def test_generation_never_emits_unk_unless_asked(model, tokenizer):
    with torch.no_grad():
        model.decoder.output.bias[tokenizer.unk_token_id] = 10.0  # <unk> would be nearly every token
    for greedy in (False, True):
        ids = model.generate_ids(5, seeded(), max_length=8, greedy=greedy)
        assert ids.shape[1] > 2 and not (ids == tokenizer.unk_token_id).any()
    assert not any("<unk>" in text for text in model.generate_text(5, seeded(), max_length=8))
    # Scored samples and shown samples of the unmasked distribution must both keep <unk>: a reverse LM trained on
    # text without it, or samples shown without it, would flatter the model against a test set that holds it.
    ids = model.generate_ids(5, seeded(), max_length=8, suppress_unk=False)
    assert ids.shape[0] == 5 and (ids[:, 0] == tokenizer.bos_token_id).all()
    assert (ids == tokenizer.unk_token_id).sum() > 5
    texts = model.ids_to_text(ids)
    assert sum(text.split().count("<unk>") for text in texts) == (ids == tokenizer.unk_token_id).sum()
    assert not any(special in text for text in texts for special in ("<bos>", "<eos>", "<pad>"))
    retokenized = tokenizer(texts, padding=True, return_tensors="pt")["input_ids"]
    assert (retokenized == tokenizer.unk_token_id).sum() == (ids == tokenizer.unk_token_id).sum()


def test_bad_text_input(model):
    with pytest.raises(ValueError, match="non-blank"):
        model.encode_text(["the cat", "   "])
    with pytest.raises(ValueError, match="list of strings"):
        model.encode_text("the cat")
    long_text = " ".join(["the cat sat on the mat"] * 5)
    with pytest.warns(UserWarning, match="truncated"):
        ids = model.tokenize([long_text, "the cat"])
    assert ids.shape[1] == model.config.max_length
    assert ids[0, -1] == 2  # truncation keeps <eos>
    untokenized = LatentEBMForTextGeneration(model.config)
    with pytest.raises(ValueError, match="needs a tokenizer"):
        untokenized.generate_text(2)


def test_vocabulary_mismatch_is_rejected(model):
    other = train_tokenizer(CORPUS + ["entirely new words here"], kind="word", vocab_size=100, min_frequency=1)
    with pytest.raises(ValueError, match="does not match"):
        model.set_tokenizer(other)
    tokenizer = model.tokenizer
    with pytest.raises(ValueError, match="config.unk_token_id is 4"):
        LatentEBMForTextGeneration(LatentEBMTextConfig(**{**model.config.to_dict(), "unk_token_id": 4})) \
            .set_tokenizer(tokenizer)
    unmasked = LatentEBMForTextGeneration(LatentEBMTextConfig(**{**model.config.to_dict(), "unk_token_id": None}))
    unmasked.set_tokenizer(tokenizer)  # None: <unk> is generated like any token
    assert unmasked.decoder.unk_token_id is None


def test_learning_lowers_the_text_negative_log_likelihood(tokenizer):
    torch.manual_seed(0)
    config = LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer), "hidden_dim": 32,
                                    "decoder_learning_rate": 1e-2})
    model = LatentEBMForTextGeneration(config)
    model.set_tokenizer(tokenizer)
    ids = model.tokenize(CORPUS[:6])

    def mean_nll():
        return model.decoder.negative_log_likelihood(ids, model.posterior_latents(ids, seeded(5))).mean().item()

    before = mean_nll()
    optimizer, generator = model.build_optimizer(), seeded(2)
    for _ in range(40):
        loss = model(ids, generator=generator).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert mean_nll() < 0.6 * before


def write_corpus(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_text_dataset_from_txt_csv_jsonl(tmp_path):
    txt = write_corpus(tmp_path / "c.txt", CORPUS[:6] + ["", "   "] + CORPUS[6:12])
    splits = load_text_dataset(str(txt))
    assert sum(len(split) for split in splits.values()) == 12  # blank lines dropped
    assert set(splits) == {"train", "validation", "test"}
    assert splits["train"]["text"] == load_text_dataset(str(txt))["train"]["text"]  # fixed split
    csv = tmp_path / "c.csv"
    csv.write_text("id,sentence\n" + "\n".join(f'{i},"{t}"' for i, t in enumerate(CORPUS[:6])) + "\n")
    assert len(load_text_dataset(str(csv), text_column="sentence")["train"]) > 0
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t}) for t in CORPUS[:6]) + "\n")
    assert sum(len(s) for s in load_text_dataset(str(jsonl)).values()) == 6


def test_text_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="neither"):
        load_text_dataset(str(tmp_path / "missing.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_text_dataset(str(empty))
    blank = write_corpus(tmp_path / "blank.txt", ["", "  ", ""])
    with pytest.raises(ValueError, match="non-blank"):
        load_text_dataset(str(blank))
    with pytest.raises(ValueError, match="column"):
        load_text_dataset(str(write_corpus(tmp_path / "c.csv", ["a,b", "1,2", "3,4", "5,6"])))
    with pytest.raises(ValueError, match="unsupported"):
        load_text_dataset(str(write_corpus(tmp_path / "c.md", CORPUS)))
    binary = tmp_path / "model.txt"  # a binary file given as a corpus
    binary.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ValueError, match=r"model.txt looks binary"):
        load_text_dataset(str(binary))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café au lait\nmore\nlines\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt is not UTF-8 text \(byte 3"):
        load_text_dataset(str(latin1))
    # A long UTF-8 file whose 64 KiB sample cuts a multi-byte character is still text.
    long = tmp_path / "long.txt"
    long.write_text(("a" * 65535 + "é\n") + "\n".join(CORPUS), encoding="utf-8")
    assert len(load_text_dataset(str(long))["train"]) > 0


def test_cli_trains_fine_tunes_and_restores_the_tokenizer(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "a.txt", CORPUS)
    other = write_corpus(tmp_path / "b.txt", ["the bird sang on the log .", "a dog sang ."] * 6)
    overrides = json.dumps({k: v for k, v in TINY_TEXT.items() if k != "vocab_size"})
    base = tmp_path / "base"
    cli_main(["train", "--task", "text", "--data", str(corpus), "--output-dir", str(base), "--max-steps", "3",
              "--batch-size", "4", "--sample-every", "3", "--checkpoint-every", "3", "--config-overrides", overrides])
    assert (base / "samples.txt").read_text().strip()
    assert (base / "samples" / "step-00000003.txt").exists()
    # `sample` works for text models too: sentences to stdout, or to a file.
    capsys.readouterr()
    cli_main(["sample", "--model", str(base), "--num-samples", "3", "--seed", "1"])
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3
    cli_main(["sample", "--model", str(base), "--num-samples", "3", "--seed", "1", "--output", str(tmp_path / "s.txt")])
    assert (tmp_path / "s.txt").read_text().splitlines() == printed
    tokenizer = AutoTokenizer.from_pretrained(base)
    assert json.loads(tokenizer.backend_tokenizer.to_str())["model"]["type"] == "BPE"  # the default
    tuned = tmp_path / "tuned"
    cli_main(["train", "--task", "text", "--data", str(other), "--init-from", str(base), "--output-dir", str(tuned),
              "--max-steps", "2", "--batch-size", "4"])
    model = AutoModel.from_pretrained(tuned)
    assert model.tokenizer.get_vocab() == tokenizer.get_vocab()
    before = AutoModel.from_pretrained(base)
    assert not torch.equal(model.decoder.output.weight, before.decoder.output.weight)


def test_cli_max_length_sets_the_config_and_the_tokenizer_kind(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "a.txt", CORPUS)
    overrides = {k: v for k, v in TINY_TEXT.items() if k not in ("vocab_size", "max_length")}
    common = ["train", "--task", "text", "--data", str(corpus), "--max-steps", "1", "--batch-size", "4",
              "--sample-every", "0", "--checkpoint-every", "0", "--config-overrides", json.dumps(overrides)]
    cli_main(common + ["--output-dir", str(tmp_path / "run"), "--max-length", "20", "--tokenizer", "word"])
    model = AutoModel.from_pretrained(tmp_path / "run")
    assert model.config.max_length == 20 and model.tokenizer.model_max_length == 20
    assert model.config.unk_token_id == model.tokenizer.unk_token_id == 3
    assert json.loads(model.tokenizer.backend_tokenizer.to_str())["model"]["type"] == "WordLevel"
    with pytest.raises(SystemExit):  # the flag and the override disagree
        cli_main(common[:-1] + [json.dumps({**overrides, "max_length": 12}), "--output-dir", str(tmp_path / "bad"),
                                "--max-length", "20"])
    assert "--max-length 20 and --config-overrides' max_length 12 differ" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # fine-tuning keeps the checkpoint's limit
        cli_main(common + ["--output-dir", str(tmp_path / "tuned"), "--init-from", str(tmp_path / "run"),
                           "--max-length", "30"])
    assert "has max_length [20], which fine-tuning and --resume keep" in capsys.readouterr().err


def test_hf_trainer_trains_the_text_model(model, tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    ids = model.tokenize(CORPUS[:8])
    dataset = Dataset.from_dict({"input_ids": ids.tolist()}).with_format("torch")
    before = model.decoder.output.weight.detach().clone()
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, report_to=[],
                             use_cpu=True, save_strategy="no", max_grad_norm=0.0)
    optimizer = model.build_optimizer()
    model.train()
    result = Trainer(model=model, args=args, train_dataset=dataset,
                     optimizers=(optimizer, model.build_lr_scheduler(optimizer))).train()
    assert result.global_step == 2
    assert not torch.equal(before, model.decoder.output.weight)


class TestVAEText(TextModelTester):
    bad_config_overrides = TextModelTester.bad_config_overrides + [{"learner": "vae", "prior_type": "ebm"},
                                                                   {"learner": "wake-sleep"}]

    def get_config(self, **overrides):
        return super().get_config(**{"learner": "vae", "prior_type": "gaussian", **overrides})


class TestVariationalEBMText(TextModelTester):
    bad_config_overrides = TextModelTester.bad_config_overrides + [{"learner": "vae_ebm", "prior_type": "gaussian"},
                                                                   {"vae_free_bits": -1.0},
                                                                   {"posterior_init": "encoder"}]

    def get_config(self, **overrides):
        return super().get_config(**{"learner": "vae_ebm", **overrides})


class TestEncoderInitialisedText(TextModelTester):
    bad_config_overrides = TextModelTester.bad_config_overrides + [{"posterior_init": "zeros"}]

    def get_config(self, **overrides):
        return super().get_config(**{"posterior_init": "encoder", **overrides})


def test_inference_network_learns_where_the_chains_end(tokenizer):
    torch.manual_seed(0)
    config = LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer), "posterior_init": "encoder",
                                    "decoder_learning_rate": 1e-2})
    model = LatentEBMForTextGeneration(config)
    model.set_tokenizer(tokenizer)
    ids = model.tokenize(CORPUS[:6])
    optimizer = model.build_optimizer()
    assert "encoder" in [group["name"] for group in optimizer.param_groups]

    def encoder_fit():
        """-log q(z+ | x) of p0-started posterior chain end points z+ (the encoder's objective), over 5 chains."""
        from hf_latent_ebm.learners import posterior_potential

        with torch.no_grad():
            mean, log_variance = model.encoder(ids)
            generator, potential = seeded(7), posterior_potential(model.prior, model.decoder, ids)
            ends = [model.posterior_sampler()(potential, model.prior.sample_reference(6, generator), generator)
                    for _ in range(5)]
            return -sum(diagonal_gaussian_log_density(end, mean, log_variance).mean().item() for end in ends) / 5

    before = encoder_fit()
    generator = seeded(1)
    for _ in range(60):
        loss = model(ids, generator=generator).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # With 3-step chains the ends stay close to p0, so the attainable gain is small (the floor is about 2.0 nats).
    assert encoder_fit() < before - 0.05


def test_vae_baseline_trains_encoder_and_decoder_on_the_elbo(tokenizer):
    torch.manual_seed(0)
    config = LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer), "learner": "vae",
                                    "prior_type": "gaussian"})
    model = LatentEBMForTextGeneration(config)
    model.set_tokenizer(tokenizer)
    optimizer = model.build_optimizer()
    assert sorted(group["name"] for group in optimizer.param_groups) == ["decoder", "encoder"]
    ids = model.tokenize(CORPUS[:6])
    output = model(ids, generator=seeded())
    assert sorted(output.loss_terms) == ["decoder_loss", "kl_loss"]
    assert output.loss_terms["kl_loss"] > 0  # the KL term of a freshly initialised encoder
    output.loss.backward()
    assert all(p.grad is not None for p in model.encoder.parameters())
    mean, std = model.posterior_gaussian(ids)
    assert mean.shape == std.shape == (6, 4) and (std > 0).all()


def test_vae_free_bits_floor_each_dimensions_kl_in_the_loss_only(tokenizer):
    base = {**TINY_TEXT, "vocab_size": len(tokenizer), "learner": "vae", "prior_type": "gaussian"}
    torch.manual_seed(0)
    plain = LatentEBMForTextGeneration(LatentEBMTextConfig(**base))
    free = LatentEBMForTextGeneration(LatentEBMTextConfig(**base, vae_free_bits=50.0))
    free.load_state_dict(plain.state_dict())
    free.set_tokenizer(tokenizer)
    ids = free.tokenize(CORPUS[:6])
    plain_output, free_output = plain(ids, generator=seeded()), free(ids, generator=seeded())
    # Same reconstruction and true KL; the loss counts every dimension's KL (well below 50 nats) as 50.
    plain_kl, free_kl = plain_output.loss_terms["kl_loss"], free_output.loss_terms["kl_loss"]
    torch.testing.assert_close(free_output.decoder_loss, plain_output.decoder_loss)
    torch.testing.assert_close(free_kl, plain_kl)
    torch.testing.assert_close(plain_output.loss, plain_output.decoder_loss + plain_kl)
    assert free_kl < 50.0 * free.config.latent_dim
    torch.testing.assert_close(free_output.loss, free_output.decoder_loss + 50.0 * free.config.latent_dim)
    # So the KL term sends no gradient: the encoder learns from the reconstruction alone.
    free_output.loss.backward()
    free_variance_grad = [p.grad.clone() for p in free.encoder.parameters()]
    free.zero_grad()
    free.learner.losses(free.learner_context, ids, {}, seeded()).terms["decoder_loss"].backward()
    for with_floor, reconstruction_only in zip(free_variance_grad, (p.grad for p in free.encoder.parameters())):
        torch.testing.assert_close(with_floor, reconstruction_only)
    for bad in ({"vae_free_bits": -0.1}, {"vae_free_bits": float("nan")}):
        with pytest.raises(ValueError, match="vae_free_bits"):
            LatentEBMTextConfig(**base, **bad)
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['vae_free_bits'\] for MLELearnerConfig"):
        LatentEBMTextConfig(**TINY_TEXT, vae_free_bits=0.5)  # the variational learners' setting, not MLE's


def test_variational_ebm_learner_adds_the_energy_gap_to_the_elbo(tokenizer):
    """The vae_ebm loss is the VAE's (same encoder, decoder and noise) plus E(z+) - E(z-), z- from the prior chain,
    and trains the prior alone."""
    torch.manual_seed(0)
    base = {**TINY_TEXT, "vocab_size": len(tokenizer), "vae_free_bits": 0.1}
    model = LatentEBMForTextGeneration(LatentEBMTextConfig(**base, learner="vae_ebm"))
    vae = LatentEBMForTextGeneration(LatentEBMTextConfig(**base, learner="vae", prior_type="gaussian"))
    vae.load_state_dict(model.state_dict(), strict=False)  # all but the energy
    model.set_tokenizer(tokenizer)
    ids = model.tokenize(CORPUS[:6])
    output, vae_output = model(ids, generator=seeded()), vae(ids, generator=seeded())
    torch.testing.assert_close(output.decoder_loss, vae_output.decoder_loss)
    torch.testing.assert_close(output.posterior_latents, vae_output.posterior_latents)
    # The prior chain starts from the same p0 draws as the VAE's exact prior samples, then moves.
    assert not torch.allclose(output.prior_latents, vae_output.prior_latents)
    energy_gap = (model.prior.energy(output.posterior_latents).mean()
                  - model.prior.energy(output.prior_latents).mean())
    torch.testing.assert_close(output.loss_terms["kl_loss"], vae_output.loss_terms["kl_loss"])
    torch.testing.assert_close(output.energy_loss, energy_gap)
    torch.testing.assert_close(output.loss, vae_output.loss + energy_gap)
    optimizer = model.build_optimizer()
    assert sorted(group["name"] for group in optimizer.param_groups) == ["decoder", "encoder", "prior"]
    output.loss.backward()
    vae_output.loss.backward()
    for part in (model.prior, model.decoder, model.encoder):  # (the energy's output bias cancels in E(z+) - E(z-))
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters() if p.dim() > 1)
    # z+ reaches the energy detached: the encoder and decoder get exactly the VAE's gradients.
    for part, vae_part in ((model.encoder, vae.encoder), (model.decoder, vae.decoder)):
        for param, vae_param in zip(part.parameters(), vae_part.parameters()):
            torch.testing.assert_close(param.grad, vae_param.grad)
    mean, std = model.posterior_gaussian(ids)
    assert mean.shape == std.shape == (6, 4) and (std > 0).all()


def test_variational_ebm_learner_lowers_the_elbo_and_fits_the_prior_to_q(tokenizer):
    torch.manual_seed(0)
    config = LatentEBMTextConfig(**{**TINY_TEXT, "vocab_size": len(tokenizer), "learner": "vae_ebm",
                                    "decoder_learning_rate": 1e-2, "prior_learning_rate": 1e-3,
                                    "vae_free_bits": 1.0})  # (q stays near p0 without it on this tiny corpus)
    model = LatentEBMForTextGeneration(config)
    model.set_tokenizer(tokenizer)
    ids = model.tokenize(CORPUS[:6])
    optimizer = model.build_optimizer()

    def negative_elbo_to_p0():
        """Reconstruction + KL(q || p0) over 5 draws of z+: the loss without the prior's log-ratio to p0."""
        from dataclasses import replace

        # The model's context with p0 in place of its learned prior, as the variational learner sees it.
        with_p0 = replace(model.learner_context, prior=GaussianPrior(config.latent_dim, config.part_config("prior").sigma))
        model.eval()
        with torch.no_grad():
            losses = [model.learner.losses(with_p0, ids, {}, seeded(seed)).loss.item() for seed in range(5)]
        model.train()
        return sum(losses) / 5

    def energy_gap_to_q():
        """Mean energy at draws from p0 minus at draws from q: how much lower the energy is where q puts mass."""
        with torch.no_grad():
            posterior = model.posterior_latents(ids.repeat(20, 1), generator=seeded(2))
            reference = model.prior.sample_reference(posterior.shape[0], seeded(3))
            return (model.prior.energy(reference).mean() - model.prior.energy(posterior).mean()).item()

    before, gap_before = negative_elbo_to_p0(), energy_gap_to_q()
    generator = seeded(1)
    for _ in range(80):
        loss = model(ids, generator=generator).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert negative_elbo_to_p0() < before - 1.0
    # The energy has learned where q puts its mass (about 0.01 at initialisation, 1.6 after).
    assert energy_gap_to_q() > gap_before + 0.5
