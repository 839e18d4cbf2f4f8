"""Tokenizers trained on the user's corpus with `tokenizers`, wrapped as `PreTrainedTokenizerFast`."""

import warnings
from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}
TOKENIZER_KINDS = ("word", "bpe", "smiles", "selfies")
# One SMILES token: a bracket atom ([nH], [C@@H], [O-]: charge, chirality and hydrogens stay with their atom), a
# two-letter organic-subset atom (Br, Cl), a one-letter atom (aromatic ones in lowercase), a two-digit ring closure
# (%12), or one character of bond, branch, ring closure, disconnection or wildcard.
SMILES_TOKEN_PATTERN = r"\[[^\[\]]+\]|Br|Cl|%\d{2}|[BCNOPSFI]|[bcnops]|[-=#$:/\\().*~+@?>]|\d"
# One SELFIES token: a bracket group ([C], [=O], [Branch1], [Ring1]), or the "." between disconnected molecules.
SELFIES_TOKEN_PATTERN = r"\[[^\[\]]+\]|\."
# The kinds that split chemistry strings by a pattern into a word-level vocabulary: (pattern, name in errors).
_CHEMISTRY_KINDS = {"smiles": (SMILES_TOKEN_PATTERN, "SMILES"), "selfies": (SELFIES_TOKEN_PATTERN, "SELFIES")}


def _pattern_tokens(text: str, kind: str) -> list[str]:
    """`text` split by the pattern of `kind`; a ValueError names the characters no token of that kind takes."""
    import re

    pattern, name = _CHEMISTRY_KINDS[kind]
    tokens = re.findall(pattern, text)
    if "".join(tokens) != text:
        leftover = re.sub(pattern, "", text)
        raise ValueError(f"not a {name} string: {text!r} has characters no {name} token takes: "
                         f"{sorted(set(leftover))}")
    return tokens


def smiles_tokens(smiles: str) -> list[str]:
    """`smiles` as SMILES tokens (`SMILES_TOKEN_PATTERN`); a ValueError names characters that are not SMILES."""
    return _pattern_tokens(smiles, "smiles")


def selfies_tokens(selfies: str) -> list[str]:
    """`selfies` as SELFIES tokens (`SELFIES_TOKEN_PATTERN`); a ValueError names characters outside brackets."""
    return _pattern_tokens(selfies, "selfies")


def train_tokenizer(texts: Iterable[str], kind: str = "bpe", vocab_size: int = 2000, min_frequency: int = 2,
                    lowercase: bool | None = None, max_length: int = 40) -> PreTrainedTokenizerFast:
    """
    Train a tokenizer on texts. The ids of <pad>, <bos>, <eos>, <unk> are 0, 1, 2, 3 (the text config's defaults),
    and encoding adds <bos> ... <eos> around every text.

    Args:
        texts: The training corpus, one text per item.
        kind (`str`, defaults to "bpe"): "bpe" (byte-level BPE: any text round-trips, hyphens and punctuation
            included, lowercase aside, and no text encodes to <unk>) or "word" (whitespace and punctuation split;
            rarer words become <unk>, and decoding puts a space between all tokens: "t - shirt ,") or "smiles"
            (molecules: one token per atom, bond, branch or ring closure, `SMILES_TOKEN_PATTERN`, so Cl, Br and
            bracket atoms such as [nH] stay whole; decoding joins the tokens back into the SMILES string) or
            "selfies" (the same for SELFIES strings: one token per bracket group such as [C], [=O], [Branch1],
            [Ring1], `SELFIES_TOKEN_PATTERN`).
        vocab_size (`int`, defaults to 2000): Largest vocabulary, special tokens included.
        min_frequency (`int`, defaults to 2): Rarer words (or merges) are left out.
        lowercase (`bool`, *optional*): Lowercase (and NFKC-normalise) before splitting; defaults to True for text
            and is refused for "smiles" and "selfies", where case is chemistry (c is an aromatic carbon).
        max_length (`int`, defaults to 40): `model_max_length` of the wrapped tokenizer.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"kind must be one of {TOKENIZER_KINDS}, got {kind!r}")
    specials = list(SPECIAL_TOKENS.values())
    chemistry = kind in _CHEMISTRY_KINDS
    if chemistry and lowercase:
        raise ValueError(f"lowercase=True would change {_CHEMISTRY_KINDS[kind][1]} (case is chemistry: lowercase "
                         "atoms are aromatic, Cl is not CL): leave it unset")
    lowercase = not chemistry if lowercase is None else lowercase
    texts = [text for text in texts if text.strip()]
    if chemistry:
        for text in texts:
            _pattern_tokens(text, kind)  # a line that is not of this kind is named before any training
        tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(_CHEMISTRY_KINDS[kind][0]), behavior="isolated")
        tokenizer.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=specials)
    elif kind == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=specials)
    else:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        # The first word is encoded as if after a space (as every other word is); decoding drops that one space.
        tokenizer.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Strip(" ", 1, 0)])
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    if not chemistry:
        tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC()]
                                                    + ([normalizers.Lowercase()] if lowercase else []))
    if not texts:
        raise ValueError("cannot train a tokenizer on an empty corpus (no non-blank text)")
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", tokenizer.token_to_id("<bos>")),
                                                 ("<eos>", tokenizer.token_to_id("<eos>"))])
    # No clean-up on decode: it would join "it 's" to "it's" and so change text that round-trips byte for byte.
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=max_length, padding_side="right",
                                   clean_up_tokenization_spaces=False, **SPECIAL_TOKENS)


def unknown_words(tokenizer, texts: list[str]) -> list[str]:
    """The distinct pieces of `texts` (in order of first appearance) that `tokenizer` encodes as its unknown token:
    unseen words of a word-level tokenizer; none for byte-level BPE."""
    if tokenizer.unk_token_id is None:
        return []
    encoded = tokenizer(texts, return_offsets_mapping=True)
    found = {}
    for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"]):
        for token_id, (start, end) in zip(ids, offsets):
            if token_id == tokenizer.unk_token_id:
                found.setdefault(text[start:end], None)
    return list(found)


def warn_unknown_words(tokenizer, texts: list[str], stacklevel: int = 3) -> None:
    """Warn, naming up to ten of them, when `texts` have words the tokenizer encodes as its unknown token: a model
    scores such text (it was trained with <unk>), but the words are lost on the way."""
    unknown = unknown_words(tokenizer, texts)
    if unknown:
        shown = ", ".join(repr(word) for word in unknown[:10]) + (", ..." if len(unknown) > 10 else "")
        warnings.warn(f"{len(unknown)} distinct words are not in the tokenizer's vocabulary and were encoded as "
                      f"{tokenizer.unk_token}: {shown}", UserWarning, stacklevel=stacklevel)


# What `PreTrainedTokenizerFast.save_pretrained` writes: a folder with either holds a tokenizer.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def _unreadable(files: list[str]) -> str:
    """The tokenizer files that are not valid JSON (the damaged ones), else all of them."""
    import json
    from pathlib import Path

    damaged = []
    for file in files:
        try:
            json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            damaged.append(file)
    return " and ".join(damaged or files)


class TokenizerMixin:
    """
    For models whose text travels with a tokenizer: `set_tokenizer` attaches one after checking its vocabulary and
    special ids against what the model's text parts expect (`expected_tokenizer_ids`), `save_pretrained` writes it
    beside the weights and `from_pretrained` loads it back when the folder has one.
    """

    tokenizer = None

    def expected_tokenizer_ids(self) -> dict:
        """{"vocab_size", "pad_token_id", "bos_token_id", "eos_token_id"} of the model's text parts."""
        raise NotImplementedError

    def set_tokenizer(self, tokenizer) -> None:
        """Attach a tokenizer after checking that its vocabulary and special ids are the model's."""
        expected = self.expected_tokenizer_ids()
        found = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                 "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
        if found != expected:
            raise ValueError(f"tokenizer does not match the model: model expects {expected}, tokenizer has {found}")
        self.tokenizer = tokenizer

    def save_pretrained(self, save_directory, *args, write_card: bool = True, **kwargs):
        super().save_pretrained(save_directory, *args, write_card=False, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)
        if write_card:
            self.write_card(save_directory)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """The model, and the tokenizer saved with it when the folder (or Hub repo) has one. A tokenizer file that
        cannot be read, or a tokenizer that does not fit the model, is a ValueError naming the file."""
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        from transformers import AutoTokenizer
        from transformers.utils import cached_file

        hub_kwargs = {k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only", "subfolder")
                      if k in kwargs}
        files = [cached_file(pretrained_model_name_or_path, name, _raise_exceptions_for_missing_entries=False,
                             _raise_exceptions_for_connection_errors=False, **hub_kwargs)
                 for name in TOKENIZER_FILES]
        files = [file for file in files if file is not None]
        if not files:
            return model  # saved without a tokenizer: text methods will ask for one
        try:
            tokenizer = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, **hub_kwargs)
        except Exception as error:
            raise ValueError(f"cannot load the tokenizer saved with the model from {_unreadable(files)}: "
                             f"{type(error).__name__}: {error}") from error
        try:
            model.set_tokenizer(tokenizer)
        except ValueError as error:
            raise ValueError(f"{' and '.join(files)}: {error}") from error
        return model

    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError("this method works on text and needs a tokenizer: call model.set_tokenizer(tokenizer) "
                             "or load a folder saved with one")
        return self.tokenizer


__all__ = ["train_tokenizer", "unknown_words", "warn_unknown_words", "TokenizerMixin", "SPECIAL_TOKENS", "TOKENIZER_KINDS",
           "SMILES_TOKEN_PATTERN", "smiles_tokens", "SELFIES_TOKEN_PATTERN", "selfies_tokens"]
