"""The tokenizer a Gemma GGUF file describes, built from its metadata alone.

A GGUF carries no `tokenizer.json`: it stores the SentencePiece vocabulary as
metadata (`tokenizer.ggml.tokens`, `.token_type`, the special ids and the
add-BOS rule). Gemma's SentencePiece model is a byte-fallback BPE, so it is
rebuilt here as a `tokenizers` BPE with no torch anywhere (transformers' own
GGUF path reads the file through torch):

    tokens  ['<pad>', '<eos>', '<bos>', ..., '\\n', '  ', ..., '▁the', ...]
                                                  |
                      spaces are spelled '▁' as the normalizer writes them
    merges  one per way of cutting a token into two vocabulary entries,
            ranked by the token's position in the file (Gemma files list no
            merges, and their scores do not follow the merge order: the
            position does), longer left pieces first

    'Q: 12  apples\\n'  ->  normalize ' ' -> '▁'  ->  BPE with byte fallback
                       ->  [<bos>] + ids             (when add_bos_token)

Control tokens (`<bos>`, `<start_of_turn>`, ...) are special added tokens;
user-defined ones (runs of newlines, `[multimodal]`) are matched whole in the
raw text, as llama.cpp does. The result gives exactly transformers' GGUF
tokenizer's ids (tested on every GSM8K and MATH question).
"""

from __future__ import annotations

import pathlib

import tokenizers
from tokenizers import AddedToken, decoders, normalizers, pre_tokenizers, processors

from wcse_jax.checkpoints.assemble import CheckpointError

VERSION = 1  # part of the cache key: bump when the built tokenizer changes
_CONTROL, _USER_DEFINED = 3, 4  # llama.cpp's token types
_SPACE = '\u2581'


def _field(reader, key, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def _respell(token: str) -> str:
  """Gemma files store tokens of several spaces as spaces; BPE sees them as '▁'."""
  return _SPACE * len(token) if ' ' in token and not token.strip() else token


def _merges(tokens: list[str], vocab: dict[str, int]) -> list[tuple[str, str]]:
  """Every split of a token into two vocabulary entries, best first."""
  ranked = []
  for rank, token in enumerate(tokens):
    for cut in range(len(token) - 1, 0, -1):  # longer left pieces first
      left, right = token[:cut], token[cut:]
      if left in vocab and right in vocab:
        ranked.append((rank, left, right))
  ranked.sort(key=lambda m: m[0])  # stable: keeps the longer-left-first order
  return [(left, right) for _, left, right in ranked]


def build_backend(reader, source: pathlib.Path | str) -> tuple[tokenizers.Tokenizer, dict]:
  """(a `tokenizers.Tokenizer`, special token names) from an open GGUFReader."""
  model = _field(reader, 'tokenizer.ggml.model')
  if model != 'llama' or _field(reader, 'general.architecture') not in ('gemma', 'gemma2', 'gemma3'):
    raise CheckpointError(
        f'{source}: the GGUF tokenizer is {model!r} for architecture '
        f'{_field(reader, "general.architecture")!r}; only Gemma 1/2/3 SentencePiece '
        'vocabularies are supported. Pass --tokenizer with a tokenizer directory.'
    )
  raw = _field(reader, 'tokenizer.ggml.tokens')
  types = _field(reader, 'tokenizer.ggml.token_type') or [1] * len(raw)
  if not raw or len(types) != len(raw):
    raise CheckpointError(f'{source}: the GGUF vocabulary is missing or torn; the file is partial.')
  tokens = [_respell(t) for t in raw]
  vocab = {token: index for index, token in enumerate(tokens)}
  unk = tokens[_field(reader, 'tokenizer.ggml.unknown_token_id', 3)]
  backend = tokenizers.Tokenizer(
      tokenizers.models.BPE(
          vocab=vocab, merges=_merges(tokens, vocab), unk_token=unk, fuse_unk=True,
          byte_fallback=True, dropout=None,
      )
  )
  backend.normalizer = normalizers.Replace(' ', _SPACE)
  backend.pre_tokenizer = pre_tokenizers.Split(' ', behavior='merged_with_previous')
  backend.decoder = decoders.Sequence(
      [decoders.Replace(_SPACE, ' '), decoders.ByteFallback(), decoders.Fuse()]
  )
  backend.add_special_tokens(
      [AddedToken(t, normalized=False, special=True) for t, k in zip(raw, types) if k == _CONTROL]
  )
  backend.add_tokens(
      [AddedToken(t, normalized=False, special=False)
       for t, k in zip(raw, types) if k == _USER_DEFINED and t in vocab]
  )
  special = {
      name: raw[index]
      for name, key in (('bos_token', 'bos'), ('eos_token', 'eos'), ('unk_token', 'unknown'),
                        ('pad_token', 'padding'))
      if (index := _field(reader, f'tokenizer.ggml.{key}_token_id')) is not None
  }
  add_bos = bool(_field(reader, 'tokenizer.ggml.add_bos_token', True))
  add_eos = bool(_field(reader, 'tokenizer.ggml.add_eos_token', False))
  single = ['$A']
  if add_bos and 'bos_token' in special:
    single.insert(0, special['bos_token'])
  if add_eos and 'eos_token' in special:
    single.append(special['eos_token'])
  backend.post_processor = processors.TemplateProcessing(
      single=' '.join(single),
      pair=' '.join(single + [s.replace('$A', '$B:1') for s in single]),
      special_tokens=[(t, vocab[t]) for t in single if t != '$A'],
  )
  return backend, dict(special, add_bos_token=add_bos, add_eos_token=add_eos)


def wrap(backend: tokenizers.Tokenizer, special: dict):
  """The `tokenizers.Tokenizer` as a transformers tokenizer (no torch needed)."""
  import transformers  # pylint: disable=g-import-not-at-top

  return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, **special)
