"""A run is a directory; every stage appends whole lines and can resume.

    runs/<name>/config.json                  the resolved config
    runs/<name>/samples/<model>/shard-00000-of-00001.jsonl
                                             one graded sample a line (one shard per host)
    runs/<name>/metrics.json                 coverage@k, diversity@k, FLOPs, tokens
    runs/<name>/sft/<model>.jsonl            the filtered training set
    runs/<name>/finetune/<tag>/              a finetuning run on one of those sets
    runs/<name>/eval/<tag>-<dataset>.json    pass@1 (and maj@k) of its best checkpoint

Sample shards are appended and flushed a whole line at a time while a run
goes; a line cut short by a crash is dropped on restart, and the pairs
(problem, sample) already on disk are not drawn again. When a model's shard
is complete it is rewritten sorted by (problem, sample) through a temporary
file and an atomic rename, so a run killed any number of times ends with
exactly the files of an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable, Iterator

# Config keys that do not change results: they may differ when a run resumes.
RESUMABLE_KEYS = ('grader_workers', 'flush_every')
# ... and these too where batch shapes do not change a sample's numbers: on CPU in float32,
# where the tests show a sample's tokens independent of them (XLA:CPU's float32 dots
# accumulate each row alike whatever the batch). On GPU and TPU, and in bfloat16, a
# different batch or mesh may pick other kernels and round differently, so a resumed
# run there must keep them.
SHAPE_KEYS = ('num_slots', 'prefill_rows', 'chunk_steps', 'mesh_model')


def resumable_keys(backend: str, dtype: str) -> tuple[str, ...]:
  """The config keys a resumed run may change on `backend` ('cpu', 'gpu', 'tpu') in `dtype`."""
  return RESUMABLE_KEYS + (SHAPE_KEYS if (backend, dtype) == ('cpu', 'float32') else ())


class RunError(ValueError):
  """A run directory that cannot be used as asked."""


def write_json_atomic(path: pathlib.Path, data) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + '.tmp')
  tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + '\n')
  os.replace(tmp, path)


def check_or_write_config(
    run_dir: pathlib.Path, config: dict, *, has_work: bool = True, resumable: Iterable[str] = RESUMABLE_KEYS,
    write: bool = True,
) -> None:
  """Writes config.json, or checks that a resumed run asks for the same work.

  Every key but the `resumable` ones must be as before (see resumable_keys).

  `has_work=False` says the directory holds nothing the settings must match yet
  (a run that stopped before saving anything), so its config is replaced.
  `write=False` only checks: in a multi-host job every host checks and one
  writes, so that hosts sharing the directory never race on the file.
  """
  path = run_dir / 'config.json'
  config = json.loads(json.dumps(config))  # compare as stored: tuples are lists there
  if path.exists() and has_work:
    before = json.loads(path.read_text())
    changed = sorted(
        key for key in set(before) | set(config)
        if key not in resumable and before.get(key) != config.get(key)
    )
    if changed:
      raise RunError(
          f'{run_dir} holds a run with other settings ({", ".join(changed)}); '
          'resume it with the same settings or choose another --output_dir.'
      )
  if write:
    write_json_atomic(path, config)


def model_dir_name(role: str, model: str) -> str:
  """'wc', 'gemma3-270m' -> 'wc-gemma3-270m' (paths by their last component)."""
  name = pathlib.Path(model.rstrip('/')).name or model
  return f'{role}-{name.removesuffix(".gguf")}'


def finetune_dir(data: str, tag: str) -> pathlib.Path:
  """Where finetuning on `data` writes by default: inside the sampling run that made
  the SFT set ('runs/R/sft/wc-m.jsonl', 'x' -> 'runs/R/finetune/x'), else 'runs/finetune/x'."""
  sft = pathlib.Path(data).parent
  return (sft.parent if sft.name == 'sft' else pathlib.Path('runs')) / 'finetune' / tag


def eval_path(model: str, tag: str, dataset: str) -> pathlib.Path:
  """Where evaluating `model` (named `tag` in file names) writes by default: beside the
  sampling run of a finetuned model ('runs/R/finetune/x/best' -> 'runs/R/eval/<tag>-<dataset>.json'),
  else 'runs/eval/<tag>-<dataset>.json'."""
  parts = pathlib.Path(model.rstrip('/')).parts
  in_run = len(parts) >= 3 and parts[-3] == 'finetune'
  root = pathlib.Path(*parts[:-3]) if in_run else pathlib.Path('runs')
  return root / 'eval' / f'{tag}-{dataset}.json'


def shard_path(run_dir: pathlib.Path, model_dir: str, index: int = 0, count: int = 1) -> pathlib.Path:
  return run_dir / 'samples' / model_dir / f'shard-{index:05d}-of-{count:05d}.jsonl'


def read_lines(path: pathlib.Path, *, repair: bool = False) -> list[dict]:
  """The whole JSON lines of a shard; with `repair`, cuts off a torn last line."""
  if not path.exists():
    return []
  data = path.read_bytes()
  end = data.rfind(b'\n') + 1
  if end < len(data) and repair:
    with open(path, 'r+b') as f:
      f.truncate(end)
  records = []
  for number, line in enumerate(data[:end].splitlines(), start=1):
    try:
      records.append(json.loads(line))
    except ValueError:
      raise RunError(f'{path}:{number}: not a JSON line; the file was edited or damaged.') from None
  return records


def json_line(record: dict) -> str:
  return json.dumps(record, sort_keys=True, ensure_ascii=False) + '\n'


def write_lines_atomic(path: pathlib.Path, records: Iterable[dict]) -> None:
  """Replaces `path` with these records, through a temporary file and a rename."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_suffix(path.suffix + '.tmp')
  with open(tmp, 'w', encoding='utf-8') as f:
    f.writelines(json_line(r) for r in records)
  os.replace(tmp, path)


class ShardWriter:
  """Appends records as whole, flushed lines."""

  def __init__(self, path: pathlib.Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    self.path = path
    self._file = open(path, 'a', encoding='utf-8')

  def write(self, records: Iterable[dict]) -> None:
    self._file.write(''.join(json_line(r) for r in records))
    self._file.flush()
    os.fsync(self._file.fileno())

  def close(self) -> None:
    self._file.close()

  def __enter__(self) -> ShardWriter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def finalize_shard(path: pathlib.Path) -> None:
  """Rewrites a complete shard sorted by (problem, sample), atomically."""
  records = sorted(read_lines(path), key=lambda r: (r['problem_index'], r['sample']))
  write_lines_atomic(path, records)


def has_samples(run_dir: pathlib.Path) -> bool:
  """Whether any sample shard of the run holds a sample (its settings then bind it)."""
  return any(path.stat().st_size for path in (run_dir / 'samples').glob('*/shard-*.jsonl'))


def samples_of(run_dir: pathlib.Path, model_dir: str) -> Iterator[dict]:
  """Every sample of one model, over all host shards, each (problem, sample) once.

  A run resumed with another number of hosts keeps its earlier shards (named
  `-of-<old count>`) and draws only what none of them holds, so shards never
  disagree on a pair; should two hold one, the first shard's copy counts.
  """
  seen = set()
  for path in sorted((run_dir / 'samples' / model_dir).glob('shard-*.jsonl')):
    for record in read_lines(path):
      key = (record['problem_index'], record['sample'])
      if key not in seen:
        seen.add(key)
        yield record


def unseen_shards(run_dir: pathlib.Path, model_dir: str, lines_by_host: Iterable[int]) -> list[str]:
  """The shards of a multi-host run this host cannot see whole: each host `h` says it
  wrote `lines_by_host[h]` lines to its shard; returns 'path (n of m lines)' for each
  shard here with fewer (missing, or not yet copied in full)."""
  counts = list(lines_by_host)
  missing = []
  for host, wrote in enumerate(counts):
    path = shard_path(run_dir, model_dir, host, len(counts))
    seen = len(read_lines(path))
    if seen < wrote:
      missing.append(f'{path} ({seen} of {wrote} lines)')
  return missing
