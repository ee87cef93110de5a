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

A run directory may also be a URL that fsspec knows (`gs://bucket/runs/x`,
`s3://...`; install the matching extra, `wcse_jax[gcs]`). Object stores
cannot append to an object or rename one atomically, but writing an object
is atomic: it is whole or absent. So there a shard's lines are appended as
numbered part objects beside it (`shard-...jsonl.parts/part-000003.jsonl`),
which finalising folds into the one sorted shard before it deletes them;
whole files (config, metrics, SFT sets) are written in one put. A crash
cannot tear a line, and a crash between the fold and the deletes leaves
copies that readers drop (each (problem, sample) counts once).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
from collections.abc import Iterable, Iterator

import upath

# Config keys that do not change results: they may differ when a run resumes.
RESUMABLE_KEYS = ('grader_workers', 'flush_every')
# ... and these too where batch shapes and the KV layout do not change a sample's numbers: on CPU in float32,
# where the tests show a sample's tokens independent of them (XLA:CPU's float32 dots
# accumulate each row alike whatever the batch). On GPU and TPU, and in bfloat16, a
# different batch or mesh may pick other kernels and round differently, so a resumed
# run there must keep them.
SHAPE_KEYS = ('num_slots', 'prefill_rows', 'chunk_steps', 'mesh_model', 'kv_layout', 'page_size')


def resumable_keys(backend: str, dtype: str) -> tuple[str, ...]:
  """The config keys a resumed run may change on `backend` ('cpu', 'gpu', 'tpu') in `dtype`."""
  return RESUMABLE_KEYS + (SHAPE_KEYS if (backend, dtype) == ('cpu', 'float32') else ())


# Settings added after runs were made, as those runs had them.
ADDED_KEYS = {'kv_layout': 'dense', 'page_size': 16}


class RunError(ValueError):
  """A run directory that cannot be used as asked."""


def run_path(location: str | os.PathLike) -> pathlib.Path:
  """A run directory (or a file in one): a local path, or a URL of any filesystem fsspec
  knows (`gs://bucket/runs/x`), as a pathlib-like `upath.UPath`."""
  if isinstance(location, pathlib.Path):
    return location
  location = os.fspath(location)
  if '://' in location and not location.startswith('file://'):
    return upath.UPath(location)
  return pathlib.Path(location.removeprefix('file://'))


def is_local(path: pathlib.Path) -> bool:
  """Whether `path` is on a filesystem of this machine (appends, fsync and renames work)."""
  return getattr(path, 'protocol', '') in ('', 'file', 'local')


def _write_atomic(path: pathlib.Path, text: str) -> None:
  """Replaces `path` with `text`: through a temporary file and a rename on a local
  filesystem; in one put on an object store, where a written object is whole or absent."""
  path.parent.mkdir(parents=True, exist_ok=True)
  if not is_local(path):
    path.write_text(text, encoding='utf-8')
    return
  tmp = path.with_suffix(path.suffix + '.tmp')
  tmp.write_text(text, encoding='utf-8')
  os.replace(tmp, path)


def write_json_atomic(path: pathlib.Path, data) -> None:
  _write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + '\n')


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
        if key not in resumable and before.get(key, ADDED_KEYS.get(key)) != config.get(key)
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


def _parts_dir(path: pathlib.Path) -> pathlib.Path:
  return path.with_name(path.name + '.parts')


def _parts(path: pathlib.Path) -> list[pathlib.Path]:
  """The part objects appended to `path` on an object store, in order (none locally)."""
  if is_local(path) or not _parts_dir(path).exists():
    return []
  return sorted(_parts_dir(path).glob('part-*.jsonl'), key=lambda p: p.name)


def read_lines(path: pathlib.Path, *, repair: bool = False) -> list[dict]:
  """The whole JSON lines of a file (and, on an object store, of its appended parts);
  with `repair`, cuts off a torn last line of a local file."""
  records = []
  for piece in ([path] if path.exists() else []) + _parts(path):
    data = piece.read_bytes()
    end = data.rfind(b'\n') + 1
    if end < len(data) and repair and is_local(piece):
      with open(piece, 'r+b') as f:
        f.truncate(end)
    for number, line in enumerate(data[:end].splitlines(), start=1):
      try:
        records.append(json.loads(line))
      except ValueError:
        raise RunError(f'{piece}:{number}: not a JSON line; the file was edited or damaged.') from None
  return records


def json_line(record: dict) -> str:
  return json.dumps(record, sort_keys=True, ensure_ascii=False) + '\n'


def write_lines_atomic(path: pathlib.Path, records: Iterable[dict]) -> None:
  """Replaces `path` (and on an object store its appended parts) with these records,
  atomically as `_write_atomic`; parts left by a crash after the put are copies."""
  parts = _parts(path)
  _write_atomic(path, ''.join(json_line(r) for r in records))
  if parts:
    parts_dir = _parts_dir(path)
    parts_dir.fs.rm(parts_dir.path, recursive=True)


def orbax_path(path: pathlib.Path):
  """`path` as Orbax takes it: absolute if local, else the URL (Orbax reads gs:// itself)."""
  if is_local(path):
    return pathlib.Path(path).absolute()
  from etils import epath  # pylint: disable=g-import-not-at-top

  return epath.Path(str(path))


class ShardWriter:
  """Appends records as whole lines, each call's durable when it returns: flushed and
  synced to a local file, or one new part object on an object store."""

  def __init__(self, path: pathlib.Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    self.path = path
    self._file = None
    if is_local(path):
      self._file = open(path, 'a', encoding='utf-8')
    else:
      done = [int(m.group(1)) for p in _parts(path) if (m := re.fullmatch(r'part-(\d+)\.jsonl', p.name))]
      self._next_part = max(done, default=-1) + 1

  def write(self, records: Iterable[dict]) -> None:
    text = ''.join(json_line(r) for r in records)
    if self._file is None:
      if text:
        part = _parts_dir(self.path) / f'part-{self._next_part:06d}.jsonl'
        part.parent.mkdir(parents=True, exist_ok=True)
        part.write_text(text, encoding='utf-8')
        self._next_part += 1
      return
    self._file.write(text)
    self._file.flush()
    os.fsync(self._file.fileno())

  def close(self) -> None:
    if self._file is not None:
      self._file.close()

  def __enter__(self) -> ShardWriter:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def finalize_shard(path: pathlib.Path) -> int:
  """Rewrites a complete shard sorted by (problem, sample), each pair once, atomically
  (folding in its parts on an object store); returns its line count."""
  if not path.exists() and not _parts(path):
    return 0
  records = {(r['problem_index'], r['sample']): r for r in reversed(read_lines(path))}
  write_lines_atomic(path, [records[key] for key in sorted(records)])
  return len(records)


def _shards(model_dir: pathlib.Path) -> list[pathlib.Path]:
  """A model's shards, including (on an object store) those that are parts only so far."""
  names = {p.name for p in model_dir.glob('shard-*.jsonl')}
  names |= {p.name.removesuffix('.parts') for p in model_dir.glob('shard-*.jsonl.parts')}
  return [model_dir / name for name in sorted(names)]


def has_samples(run_dir: pathlib.Path) -> bool:
  """Whether any sample shard of the run holds a sample (its settings then bind it)."""
  return any(
      (path.exists() and path.stat().st_size) or _parts(path)
      for model_dir in (run_dir / 'samples').glob('*') for path in _shards(model_dir)
  )


def read_samples(run_dir: pathlib.Path, model_dir: str) -> tuple[list[dict], dict[str, int]]:
  """Every sample of one model over all host shards, each (problem, sample) once, and
  each shard's line count by file name: one read of the shards.

  A run resumed with another number of hosts keeps its earlier shards (named
  `-of-<old count>`) and draws only what none of them holds, so shards never
  disagree on a pair; should two hold one, the first shard's copy counts.
  """
  seen, samples, lines = set(), [], {}
  for path in _shards(run_dir / 'samples' / model_dir):
    records = read_lines(path)
    lines[path.name] = len(records)
    for record in records:
      key = (record['problem_index'], record['sample'])
      if key not in seen:
        seen.add(key)
        samples.append(record)
  return samples, lines


def samples_of(run_dir: pathlib.Path, model_dir: str) -> list[dict]:
  """Every sample of one model, over all host shards, each (problem, sample) once."""
  return read_samples(run_dir, model_dir)[0]


def unseen_shards(model_dir: pathlib.Path, lines_seen: dict[str, int], lines_by_host: Iterable[int]) -> list[str]:
  """The shards of a multi-host run this host cannot see whole: host `h` says it wrote
  `lines_by_host[h]` lines to its shard, and `lines_seen` (from `read_samples`) is what
  this host reads in each; returns 'path (n of m lines)' for each shard here with fewer
  (missing, or not yet copied in full)."""
  counts = list(lines_by_host)
  missing = []
  for host, wrote in enumerate(counts):
    name = shard_path(model_dir.parents[1], model_dir.name, host, len(counts)).name
    if lines_seen.get(name, 0) < wrote:
      missing.append(f'{model_dir / name} ({lines_seen.get(name, 0)} of {wrote} lines)')
  return missing
