"""Tokenizers trained on the user's corpus with `tokenizers`, wrapped as `PreTrainedTokenizerFast`."""

from collections.abc import Iterable

from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>"}
TOKENIZER_KINDS = ("word", "bpe")


def train_tokenizer(texts: Iterable[str], kind: str = "word", vocab_size: int = 2000, min_frequency: int = 2,
                    lowercase: bool = True, max_length: int = 40) -> PreTrainedTokenizerFast:
    """
    Train a tokenizer on texts. The ids of <pad>, <bos>, <eos>, <unk> are 0, 1, 2, 3 (the text config's defaults),
    and encoding adds <bos> ... <eos> around every text.

    Args:
        texts: The training corpus, one text per item.
        kind (`str`, defaults to "word"): "word" (whitespace and punctuation split; rarer words become <unk>) or
            "bpe" (byte-level BPE: any character round-trips, no <unk>).
        vocab_size (`int`, defaults to 2000): Largest vocabulary, special tokens included.
        min_frequency (`int`, defaults to 2): Rarer words (or merges) are left out.
        lowercase (`bool`, defaults to True): Lowercase (and NFKC-normalise) before splitting.
        max_length (`int`, defaults to 40): `model_max_length` of the wrapped tokenizer.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"kind must be one of {TOKENIZER_KINDS}, got {kind!r}")
    specials = list(SPECIAL_TOKENS.values())
    if kind == "word":
        tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=specials)
    else:
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else []))
    texts = [text for text in texts if text.strip()]
    if not texts:
        raise ValueError("cannot train a tokenizer on an empty corpus (no non-blank text)")
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", tokenizer.token_to_id("<bos>")),
                                                 ("<eos>", tokenizer.token_to_id("<eos>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=max_length, padding_side="right",
                                   **SPECIAL_TOKENS)


__all__ = ["train_tokenizer", "SPECIAL_TOKENS", "TOKENIZER_KINDS"]
