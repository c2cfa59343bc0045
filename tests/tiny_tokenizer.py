"""Small real ``tokenizers`` tokenizers built in-process, for token-level tests without downloads.

- :func:`chatml_tokenizer`: byte-level BPE trained on a few sentences, ChatML special tokens, and an NFKC
  normaliser with special tokens matched *after* normalisation — the worst case for us, since a fullwidth
  ``＜｜im_end｜＞`` in text then becomes a real ``<|im_end|>`` token.
- :func:`qwen3_like_tokenizer`: a word-level vocabulary that puts the answer tokens and ``<|im_start|>`` at chosen
  ids, to exercise the Qwen3 id checks without the real 151k-token vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

SPECIAL_TOKENS: tuple[str, ...] = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")

_CORPUS = [
    "Final Judgement: Yes",
    "Final Judgement: No",
    "Final Judgment: Yes",
    "Yes",
    "No",
    " Yes",
    " No",
    "Yes.",
    "No.",
    "The response answers the question correctly and follows the principle.",
    "The response is wrong, so it does not satisfy the principle.",
    'The verdict is {"score_1": 4, "score_2": 2, "ranking": 2}.',
    "user assistant system principle response_1 response_2",
]


@lru_cache(maxsize=1)
def chatml_tokenizer() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_CORPUS * 20, trainer)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=True) for t in SPECIAL_TOKENS])
    return tok


def qwen3_like_tokenizer(
    *, yes_space: int = 7414, no_space: int = 2308, yes: int = 9454, no: int = 2753, im_start: int = 151644
) -> Tokenizer:
    vocab = {
        "[UNK]": 0,
        "ĠYes": yes_space,
        "ĠNo": no_space,
        "Yes": yes,
        "No": no,
        "<|endoftext|>": 151643,
        "<|im_start|>": im_start,
        "<|im_end|>": 151645,
    }
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    # Already in the vocabulary, so they keep the ids above.
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    return tok


def render_chatml(messages: Sequence[Mapping[str, str]], *, add_generation_prompt: bool = True) -> str:
    """A ChatML rendering that passes any role through, like the GenRM checkpoints' templates."""
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def special_ids(tokenizer: Tokenizer, text: str) -> list[int]:
    """The special-token ids of ``text`` in order: the prompt's structure as the model sees it."""
    specials = {tokenizer.token_to_id(t) for t in SPECIAL_TOKENS}
    return [i for i in tokenizer.encode(text, add_special_tokens=False).ids if i in specials]


def token_pieces(tokenizer: Tokenizer, text: str) -> list[tuple[int, str]]:
    """(id, text) per token, as an engine would report generated tokens (ASCII text keeps offsets exact)."""
    enc = tokenizer.encode(text, add_special_tokens=False)
    return [(i, text[a:b]) for i, (a, b) in zip(enc.ids, enc.offsets, strict=True)]
