"""A diffusers-style tester mixin: every model variant gets the same suite by supplying a tiny config and inputs."""

import json
import re

import pytest
import torch
from transformers import AutoConfig, AutoModel

import hf_latent_ebm  # noqa: F401  (registers the Auto classes)


class ModelTesterMixin:
    """
    Subclasses set `model_class` and `config_class` and implement:
      get_config(**overrides) -> a tiny config;
      get_inputs(batch_size, seed) -> forward kwargs (without the generator);
      bad_config_overrides -> list of config kwargs that must be rejected;
      bad_inputs() -> list of (forward kwargs, substring of the error): wrong types, dtypes or shapes, which
          `forward` rejects without looking at values;
      bad_input_values() -> the same for bad values (ranges, NaN, ids), which the edges reject (`check_inputs`,
          the public calls, the trainer's data loading) and the training step does not look for.
    """

    model_class = None
    config_class = None
    bad_config_overrides: list[dict] = []

    def get_config(self, **overrides):
        raise NotImplementedError

    def get_inputs(self, batch_size: int = 3, seed: int = 0) -> dict:
        raise NotImplementedError

    def bad_inputs(self) -> list[tuple[dict, str]]:
        raise NotImplementedError

    def bad_input_values(self) -> list[tuple[dict, str]]:
        raise NotImplementedError

    def make_model(self, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        return self.model_class(self.get_config(**overrides)).eval()

    def run_forward(self, model, inputs, seed: int = 0, **kwargs):
        return model(**inputs, generator=torch.Generator().manual_seed(seed), **kwargs)

    # ---- config ----------------------------------------------------------------------------------------------
    def test_config_round_trip(self, tmp_path):
        config = self.get_config()
        config.save_pretrained(tmp_path)
        loaded = AutoConfig.from_pretrained(tmp_path)
        assert type(loaded) is self.config_class
        ignored = {"_name_or_path"}  # set to the load path by from_pretrained
        assert {k: v for k, v in loaded.to_dict().items() if k not in ignored} == \
            {k: v for k, v in config.to_dict().items() if k not in ignored}

    def test_bad_config_values_are_rejected(self):
        assert self.bad_config_overrides, "a tester must list bad config values"
        for overrides in self.bad_config_overrides:
            with pytest.raises(ValueError):
                self.get_config(**overrides)

    # ---- weights ---------------------------------------------------------------------------------------------
    def test_save_load_round_trip(self, tmp_path):
        model = self.make_model()
        model.save_pretrained(tmp_path)
        loaded = AutoModel.from_pretrained(tmp_path).eval()
        assert type(loaded) is self.model_class
        for (name, param), (_, loaded_param) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(param, loaded_param), name
        inputs = self.get_inputs()
        expected, actual = self.run_forward(model, inputs), self.run_forward(loaded, inputs)
        # Equal weights, but not bitwise-equal outputs: loaded tensors sit at other memory alignments (offsets in the
        # safetensors file), so SIMD kernels may sum in another order (seen as 1 ulp on a GRU posterior chain).
        torch.testing.assert_close(actual.loss, expected.loss)
        torch.testing.assert_close(actual.posterior_latents, expected.posterior_latents)

    def test_missing_checkpoint_raises_oserror(self, tmp_path):
        with pytest.raises(OSError):
            self.model_class.from_pretrained(tmp_path / "does-not-exist")

    def test_corrupt_checkpoint_raises_oserror(self, tmp_path):
        self.make_model().save_pretrained(tmp_path)
        weights = tmp_path / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        with pytest.raises(OSError, match="safetensors|checkpoint|load"):
            self.model_class.from_pretrained(tmp_path)

    def test_corrupt_config_raises_oserror(self, tmp_path):
        self.make_model().save_pretrained(tmp_path)
        (tmp_path / "config.json").write_text("{not json")
        with pytest.raises(OSError):
            self.model_class.from_pretrained(tmp_path)

    def test_save_pretrained_runs_no_part_of_the_model(self, tmp_path, monkeypatch):
        model = self.make_model()

        def refuse(*args, **kwargs):
            raise AssertionError("save_pretrained ran the model")

        for owner, name in ((model, "sample"), (model, "write_samples"), (model.prior, "forward"),
                            (model.decoder, "forward")):
            monkeypatch.setattr(owner, name, refuse)
        model.save_pretrained(tmp_path)
        assert {"config.json", "model.safetensors", "README.md"} <= {path.name for path in tmp_path.iterdir()}
        assert not list(tmp_path.glob("samples*"))

    def misfit_config(self, config: dict) -> str:
        """Edit a saved config (a dict, in place) so that the saved weights no longer fit it; return a regex of
        what the error must say about it (by default the config field, latent_dim, and its new value)."""
        config["latent_dim"] += 1
        return f"latent_dim={config['latent_dim']}"

    def test_weights_that_do_not_fit_the_config_raise_value_error(self, tmp_path):
        self.make_model().save_pretrained(tmp_path, write_card=False)
        config = json.loads((tmp_path / "config.json").read_text())
        what = self.misfit_config(config)
        (tmp_path / "config.json").write_text(json.dumps(config))
        # The message names the weight file and what does not fit the weights.
        expected = rf"(?s){re.escape(str(tmp_path / 'model.safetensors'))}.*{what}"
        with pytest.raises(ValueError, match=expected):
            AutoModel.from_pretrained(tmp_path)
        with pytest.raises(ValueError, match=expected):
            self.model_class.from_pretrained(tmp_path)
        loaded = AutoModel.from_pretrained(tmp_path, ignore_mismatched_sizes=True)  # asked for: re-initialised
        assert loaded.config.latent_dim == config["latent_dim"]

    def test_a_config_naming_an_unknown_part_raises_value_error(self, tmp_path):
        self.make_model().save_pretrained(tmp_path, write_card=False)
        config = json.loads((tmp_path / "config.json").read_text())
        config["prior_type"] = "no_such_prior"
        (tmp_path / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match=r"(?s)config\.json.*prior_type: unknown prior 'no_such_prior'"):
            AutoModel.from_pretrained(tmp_path)
        with pytest.raises(ValueError, match=rf"(?s){re.escape(str(tmp_path))}.*config\.json.*prior_type"):
            self.model_class.from_pretrained(tmp_path)

    # ---- forward ---------------------------------------------------------------------------------------------
    def test_determinism_under_seed(self):
        model, inputs = self.make_model(), self.get_inputs()
        first, second = self.run_forward(model, inputs, seed=5), self.run_forward(model, inputs, seed=5)
        other = self.run_forward(model, inputs, seed=6)
        assert torch.equal(first.loss, second.loss)
        assert torch.equal(first.prior_latents, second.prior_latents)
        assert not torch.equal(first.prior_latents, other.prior_latents)

    def test_output_shapes(self):
        config, inputs = self.get_config(), self.get_inputs(batch_size=3)
        output = self.run_forward(self.make_model(), inputs)
        assert output.loss.shape == ()
        assert torch.isfinite(output.loss)
        assert output.posterior_latents.shape == (3, config.latent_dim)
        assert output.prior_latents.shape == (3, config.latent_dim)

    def test_dict_and_tuple_outputs_agree(self):
        model, inputs = self.make_model(), self.get_inputs()
        as_dict = self.run_forward(model, inputs)
        as_tuple = self.run_forward(model, inputs, return_dict=False)
        assert isinstance(as_tuple, tuple)
        assert len(as_tuple) == len(as_dict.to_tuple())
        for a, b in zip(as_dict.to_tuple(), as_tuple):
            if isinstance(a, dict):
                assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            else:
                assert torch.equal(a, b)

    def test_loss_terms_are_named_detached_scalars(self):
        output = self.run_forward(self.make_model(), self.get_inputs())
        assert output.loss_terms and all(isinstance(name, str) for name in output.loss_terms)
        for term in output.loss_terms.values():
            assert term.shape == () and not term.requires_grad and torch.isfinite(term)
        assert output.loss.requires_grad

    def test_bad_inputs_raise_value_error(self):
        model = self.make_model()
        cases, value_cases = self.bad_inputs(), self.bad_input_values()
        assert cases and value_cases, "a tester must list bad inputs and bad input values"
        for inputs, message in cases:
            with pytest.raises(ValueError, match=message):
                self.run_forward(model, inputs)
        for inputs, message in cases + value_cases:
            with pytest.raises(ValueError, match=message):
                model.check_inputs(model.decoder.select(inputs))
            with pytest.raises(ValueError, match=message):
                model.anomaly_score(model.decoder.select(inputs))

    def test_optimizer_groups_cover_every_parameter_once(self):
        model = self.make_model()
        grouped = [param for group in model.build_optimizer().param_groups for param in group["params"]]
        assert len(grouped) == len({id(param) for param in grouped})
        assert {id(param) for param in grouped} == {id(param) for param in model.parameters()}

    def test_config_json_is_plain_json(self, tmp_path):
        self.make_model().save_pretrained(tmp_path)
        config = json.loads((tmp_path / "config.json").read_text())
        assert config["model_type"] == self.config_class.model_type


def load_script(path, name: str):
    """A script under scripts/ (not a package) imported as a module named `name`, for tests of its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
