"""Our matrix products on CPU (`cpu_kernels.cc`), through the XLA FFI.

`cpu_kernels.cc` multiplies bfloat16 matrices into float32 with the CPU's own
matrix instructions: AMX tiles (`tdpbf16ps`, 16 x 16 x 32 per instruction)
where the CPU and the OS allow them, else a register-tiled AVX512-BF16 kernel
(`vdpbf16ps`). It also runs batched products with AVX-512 fused
multiply-adds: a decode step's attention over a float32 (or bfloat16) cache,
many tiny products (4 query rows against one row's 64 cached positions) that
XLA:CPU runs at ~13 GB/s, with the cache prefetched ahead of the sums (~23 GB/s
on a 2-core Xeon that streams 29). `product` is what `modules.dot` calls for
a product of any kind (`kind_of`) when the kernel is `chosen` for it; on any
other backend, CPU, dtype or shape it is XLA's `einsum`. A model's weights
can be packed once for it (`pack`, `packed_product`). The batched products
read only the slots a row's mask lets it see, read keys stored as slot rows
(`[S, H]`, transposed in registers: the same sums), and read a bfloat16 cache
held as its bits (`product_of_bits`); a shared prefix's keys and values are one
bfloat16 product per key/value head (`bf16_shared`). The attention's masked
softmax runs here too, in one pass (`masked_softmax`), and the sampler's top-k
(`top_k`: the same values and indices as `jax.lax.top_k`, without sorting rows).

Which is faster depends on the machine: on a 2-core Xeon with AMX our AMX
path ran a decode step's weight products at 1.3-2.4x XLA's (XLA's YNNPACK),
2-3x with the weight packed once, while the AVX512-BF16 path ran at a third of
XLA's; on an AMD EPYC without AMX the AVX512-BF16 path ran at 1.2-1.7x XLA's
(an earlier measurement, unpacked); the batched products ran at 2.5x XLA's on
the Xeon (float32; bfloat16 1.8x; in a compiled loop of 8, 1.8x and 2.9x). So unless told
(`WCSE_JAX_CPU_KERNELS`: `0` XLA's, `1` ours, `avx512` ours without AMX), the
choice is measured once per machine and kind and kept with the built kernel
(`chosen`).

The kernel is built on first use with the machine's C++ compiler (`$CXX`, else
`g++`) against JAX's FFI headers, for this CPU (`-march=native`), into the
project's cache (`$WCSE_JAX_CACHE/kernels`), once per source, JAX version and
CPU. Without a compiler, or on a CPU without AVX512-BF16, XLA's products are
used and one log line says why.

Sums are float32 in a fixed order (over k, whatever the tiling or threads),
so a product gives the same bits for any number of rows; they differ from
XLA's by float32 rounding. Gradients go through XLA's `einsum`.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import json
import logging
import math
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

ENV = 'WCSE_JAX_CPU_KERNELS'
_SOURCE = pathlib.Path(__file__).with_name('cpu_kernels.cc')
_TARGET = 'wcse_bf16_product'
_PARTS_TARGET = 'wcse_bf16_packed_parts'
_BATCHED_TARGET = 'wcse_f32_batched_product'
_SOFTMAX_TARGET = 'wcse_softmax'
_BITS_BATCHED_TARGET = 'wcse_f32_bits_batched_product'
_BF16_BATCHED_TARGET = 'wcse_f32_bf16_batched_product'
_LOGITS_TARGET = 'wcse_bf16_logits'
_LOGITS_TOP_K_TARGET = 'wcse_bf16_logits_top_k'
_TOP_K_TARGET = 'wcse_top_k'
_RMS_NORM_TARGET = 'wcse_rms_norm'
_GEGLU_TARGET = 'wcse_geglu'
_NORM_ROPE_TARGET = 'wcse_norm_rope'
STAT_BLOCK = 32  # vocabulary entries per block of `logits_with_statistics` (`kStatRows`)
# What each kernel is measured on against XLA's product (`chosen`): a decode step's
# weight product, its attention over a float32 or a bfloat16 cache (64 rows, 4
# query heads), and over a shared bfloat16 prefix (512 slots).
KINDS = {
    'bf16': ('MK,KN->MN', (64, 1024), (1024, 2048), jnp.bfloat16),
    'f32_batched': ('BKQH,BKHS->BKQS', (64, 1, 4, 256), (64, 1, 256, 64), jnp.float32),
    'bf16_batched': ('BKQH,BKHS->BKQS', (64, 1, 4, 256), (64, 1, 256, 64), jnp.bfloat16),
    'bf16_shared': ('BKQH,KSH->BKQS', (64, 1, 4, 256), (1, 512, 256), jnp.bfloat16),
}

log = logging.getLogger(__name__)


@functools.cache
def _cpuinfo() -> dict[str, str]:
  """The first processor's fields in /proc/cpuinfo ({} where there is none)."""
  try:
    text = pathlib.Path('/proc/cpuinfo').read_text()
  except OSError:
    return {}
  fields = {}
  for line in text.split('\n\n', 1)[0].splitlines():
    name, _, value = line.partition(':')
    fields[name.strip()] = value.strip()
  return fields


def _cpu_model() -> str:
  return _cpuinfo().get('model name') or platform.processor()


def _cpu_flags() -> set[str]:
  return set(_cpuinfo().get('flags', '').split())


def _build(directory: pathlib.Path) -> pathlib.Path:
  """The kernel's shared library for this source, JAX and CPU, compiled once."""
  compiler = os.environ.get('CXX') or 'g++'
  if not shutil.which(compiler):
    raise RuntimeError(f'no C++ compiler ({compiler}; set $CXX)')
  # No contraction of a product and a sum into one fused multiply-add where the source has two
  # operations: the element-wise kernels round as XLA's loops do.
  flags = ['-O3', '-march=native', '-ffp-contract=off', '-std=c++17', '-shared', '-fPIC', '-w',
           f'-I{jax.ffi.include_dir()}']
  key = hashlib.sha256('\n'.join([
      _SOURCE.read_text(), compiler, *flags, jax.__version__, platform.machine(), *sorted(_cpu_flags())
  ]).encode()).hexdigest()[:16]
  library = directory / f'cpu_kernels-{key}.so'
  if library.exists():
    return library
  directory.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=directory) as tmp:
    built = pathlib.Path(tmp) / library.name
    result = subprocess.run([compiler, *flags, str(_SOURCE), '-o', str(built)], capture_output=True, text=True, timeout=300)
    if result.returncode:
      errors = [line for line in result.stderr.splitlines() if 'error' in line] or result.stderr.splitlines()
      raise RuntimeError(f'{compiler} failed: {" | ".join(errors[:3])[:600]}')
    os.replace(built, library)  # whole or not at all, for processes building at once
  return library


_registered: list[ctypes.CDLL] = []


def _register(path: str) -> ctypes.CDLL:
  """Loads the library at `path` and registers its handlers with XLA. XLA takes one
  handler per name in a process, so the first library registered stays."""
  if not _registered:
    library = ctypes.cdll.LoadLibrary(path)
    jax.ffi.register_ffi_target(_TARGET, jax.ffi.pycapsule(library.WcseBf16Product), platform='cpu')
    jax.ffi.register_ffi_target(_PARTS_TARGET, jax.ffi.pycapsule(library.WcseBf16PackedParts), platform='cpu')
    jax.ffi.register_ffi_target(
        _BATCHED_TARGET, jax.ffi.pycapsule(library.WcseF32Batched), platform='cpu'
    )
    jax.ffi.register_ffi_target(
        _BF16_BATCHED_TARGET, jax.ffi.pycapsule(library.WcseF32Bf16Batched), platform='cpu'
    )
    jax.ffi.register_ffi_target(
        _BITS_BATCHED_TARGET, jax.ffi.pycapsule(library.WcseF32BitsBatched), platform='cpu'
    )
    jax.ffi.register_ffi_target(_SOFTMAX_TARGET, jax.ffi.pycapsule(library.WcseSoftmax), platform='cpu')
    jax.ffi.register_ffi_target(_LOGITS_TARGET, jax.ffi.pycapsule(library.WcseBf16Logits), platform='cpu')
    jax.ffi.register_ffi_target(
        _LOGITS_TOP_K_TARGET, jax.ffi.pycapsule(library.WcseBf16LogitsTopK), platform='cpu'
    )
    jax.ffi.register_ffi_target(_TOP_K_TARGET, jax.ffi.pycapsule(library.WcseTopK), platform='cpu')
    jax.ffi.register_ffi_target(_RMS_NORM_TARGET, jax.ffi.pycapsule(library.WcseRmsNorm), platform='cpu')
    jax.ffi.register_ffi_target(_GEGLU_TARGET, jax.ffi.pycapsule(library.WcseGeglu), platform='cpu')
    jax.ffi.register_ffi_target(_NORM_ROPE_TARGET, jax.ffi.pycapsule(library.WcseNormRope), platform='cpu')
    _registered.append(library)
  return _registered[0]


@functools.cache
def _library() -> ctypes.CDLL | None:
  """The kernel's library, built and registered with XLA (once per process), or None."""
  if os.environ.get(ENV, 'auto') == '0':
    log.info('bfloat16 CPU kernels off (%s=0): XLA products', ENV)
    return None
  if platform.machine() not in ('x86_64', 'AMD64') or 'avx512_bf16' not in _cpu_flags():
    log.info('bfloat16 CPU kernels need an x86 CPU with AVX512-BF16: XLA products')
    return None
  from wcse_jax.checkpoints.load import cache_dir  # pylint: disable=g-import-not-at-top
  try:
    return _register(str(_build(cache_dir() / 'kernels')))
  except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as e:
    log.warning('bfloat16 CPU kernels not built (%s): XLA products', e)
    return None


def available() -> bool:
  """Whether the kernel is built and registered with XLA (`product` can run)."""
  return _library() is not None


def _require(what: str) -> None:
  """Raises unless `available()`: `what` needs the kernels."""
  if not available():
    raise RuntimeError(f'{what} needs the CPU kernels (cpu_kernels.available())')


@functools.cache
def isa() -> str:
  """The kernel's instructions in this process: 'amx' where the CPU has AMX-BF16 and
  the OS grants its tile state, else 'avx512' (AVX512-BF16). `WCSE_JAX_CPU_KERNELS=avx512`
  forces the latter. (A K that is not a multiple of 32 always runs AVX512-BF16.)"""
  library = _library()
  if library is None or os.environ.get(ENV) == 'avx512':
    return 'avx512'
  return 'amx' if library.WcseAmxAllowed() else 'avx512'


def _rates(kind: str = 'bf16', repeats: int = 10, rounds: int = 3) -> tuple[float, float]:
  """GFLOP/s of our kernel and of XLA's einsum on a decode step's product of `kind`
  (`KINDS`), the fastest of interleaved repeats of `_CALLS` products in a loop, the
  best of `rounds` such measurements a little apart: a machine busy for a moment
  slows our kernel (on every core) more than XLA's (often on one), and a choice
  once made is kept. It runs now, even when asked while a model is being traced."""
  with jax.ensure_compile_time_eval():
    measured = []
    for r in range(rounds):
      if r:
        time.sleep(0.2)
      measured.append(_measure_rates(kind, repeats))
    return max(m[0] for m in measured), max(m[1] for m in measured)


_CALLS = 8  # products per timed call, in a compiled loop as in a decode step (no dispatch between them)


def _looped(f):
  """`f(x, y)` `_CALLS` times in one compiled loop, each call's x depending on the last result."""
  def run(x, y):
    def body(_, total):
      return total + f(x + (total * 1e-30).astype(x.dtype), y).sum() * 1e-30
    return jax.lax.fori_loop(0, _CALLS, body, jnp.float32(0))
  return jax.jit(run)


def _measure_rates(kind: str, repeats: int) -> tuple[float, float]:
  rng = np.random.default_rng(0)
  spec, x_shape, y_shape, dtype = KINDS[kind]
  x = jnp.asarray(rng.standard_normal(x_shape), dtype)
  y = jnp.asarray(rng.standard_normal(y_shape), dtype)
  xla = _looped(lambda x, y: jnp.einsum(spec, x, y, preferred_element_type=jnp.float32))
  if kind == 'bf16':  # a weight, as the sampler holds it on one CPU (`with_packed_weights`)
    ours, ours_y = _looped(lambda x, w: packed_product(x, w, y.shape[-1])), jnp.asarray(pack(y))
  else:
    ours, ours_y = _looped(lambda x, y: product(spec, x, y)), y
  operands = {ours: ours_y, xla: y}
  best = {ours: math.inf, xla: math.inf}
  for f in best:
    f(x, operands[f]).block_until_ready()
  for _ in range(repeats):
    for f in best:
      start = time.perf_counter()
      f(x, operands[f]).block_until_ready()
      best[f] = min(best[f], (time.perf_counter() - start) / _CALLS)
  flops = 2 * math.prod(jax.eval_shape(lambda: jnp.einsum(spec, x, y)).shape) * x.shape[-1]
  return flops / best[ours] / 1e9, flops / best[xla] / 1e9


@functools.cache
def chosen(kind: str = 'bf16') -> bool:
  """Whether `modules.dot` runs our kernel for the products of `kind` (`KINDS`).

  `WCSE_JAX_CPU_KERNELS`: `0` never, `1` (or `amx`, `avx512`) always; unset (or
  `auto`), where it is faster than XLA's own product on this machine. That is
  measured once per machine (kernel, CPU, JAX version) and kind, and kept beside
  the built kernel, so that every process on a machine makes the same choice.
  """
  choice = os.environ.get(ENV, 'auto')
  if choice == '0' or not available():
    return False
  if choice != 'auto':
    return True
  from wcse_jax.checkpoints.load import cache_dir  # pylint: disable=g-import-not-at-top
  library = pathlib.Path(_library()._name).name
  key = hashlib.sha256('\n'.join([library, isa(), _cpu_model(), str(os.cpu_count())]).encode()).hexdigest()[:16]
  record = cache_dir() / 'kernels' / f'choice-{key}.json'
  try:
    kept = json.loads(record.read_text())
  except (OSError, ValueError):
    kept = {}
  if not isinstance(kept.get(kind), dict):
    ours, xla = _rates(kind)
    kept[kind] = {'isa': isa(), 'ours_gflop_per_s': round(ours, 1), 'xla_gflop_per_s': round(xla, 1), 'ours': ours > xla}
    record.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile('w', dir=record.parent, delete=False) as tmp:
      tmp.write(json.dumps(kept))
    os.replace(tmp.name, record)
  measured = kept[kind]
  spec, x_shape, y_shape, _ = KINDS[kind]
  log.info('%s CPU products: %s (%s; %s %s x %s: ours %s, XLA %s GFLOP/s; %s)', kind,
           'ours' if measured['ours'] else "XLA's", measured['isa'], spec, list(x_shape), list(y_shape),
           measured['ours_gflop_per_s'], measured['xla_gflop_per_s'], record)
  return bool(measured['ours'])


def _forms(spec: str) -> tuple[str, int] | None:
  """('nn' or 'nt', leading axes of x) when `spec` is one product of x's leading
  axes by y's free axes over x's last axis; else None."""
  inputs, out = spec.replace(' ', '').split('->')
  xs, ys = inputs.split(',')
  if '.' in xs + ys or len(set(xs + ys)) != len(xs + ys) - 1:
    return None
  contracted = xs[-1]
  lead = xs[:-1]
  if ys[0] == contracted and out == lead + ys[1:]:
    return 'nn', len(lead)
  if ys[-1] == contracted and len(ys) == 2 and out == lead + ys[0]:
    return 'nt', len(lead)
  return None


def _batched_form(spec: str) -> int | None:
  """Batch axes when `spec` is x [P.., M, K] by y [P.., K, N] (or y [P.., N, K]:
  `_batched_nt`) into [P.., M, N] (the same P leading axes on all three, at least
  one); else None."""
  form = _batched(spec)
  return None if form is None else form[0]


def _batched_nt(spec: str) -> bool:
  """Whether a batched product (`_batched_form`) takes y as [P.., N, K]."""
  return _batched(spec)[1]


@functools.lru_cache(maxsize=64)
def _batched(spec: str) -> tuple[int, bool] | None:
  inputs, out = spec.replace(' ', '').split('->')
  xs, ys = inputs.split(',')
  if '.' in xs + ys or len(xs) < 3 or len(ys) != len(xs):
    return None
  lead, (m, k) = xs[:-2], xs[-2:]
  n = ys[-2] if ys[-1] == k else ys[-1]
  if out != lead + m + n or len(set(xs + n)) != len(xs) + 1:
    return None
  if ys == lead + k + n:
    return len(lead), False
  if ys == lead + n + k:
    return len(lead), True
  return None


def _batched_f32(spec: str, x, y) -> int | None:
  """`_batched_form(spec)` when x and y are float32 (the batched kernel's inputs), else None."""
  return _batched_form(spec) if x.dtype == y.dtype == jnp.float32 else None


def _batched_kind(spec: str, x, y, dtype) -> str | None:
  """'f32_batched' or 'bf16_batched' for a product batched over the same leading axes of
  x and y (`_batched_form`) in float32 (x and y float32) or bfloat16; else None."""
  lead = _batched_form(spec)
  if lead is None or x.shape[:lead] != y.shape[:lead] or 0 in x.shape or 0 in y.shape:
    return None
  if dtype == jnp.float32:
    return 'f32_batched' if x.dtype == y.dtype == jnp.float32 else None
  return 'bf16_batched' if dtype == jnp.bfloat16 else None


@functools.lru_cache(maxsize=64)
def _shared(spec: str) -> bool | None:
  """For x [P.., K, M, C] by y [K, N, C] (True: 'nt') or [K, C, N] (False) into
  [P.., K, M, N] (one y per K shared by every P: a prefix's keys or values read by
  every row, per key/value head); else None."""
  inputs, out = spec.replace(' ', '').split('->')
  xs, ys = inputs.split(',')
  if '.' in xs + ys or len(xs) < 4 or len(ys) != 3 or len(set(xs)) != len(xs):
    return None
  heads, m, c = xs[-3:]
  if ys[0] != heads or c not in ys[1:]:
    return None
  n = ys[1] if ys[2] == c else ys[2]
  if n in xs or out != xs[:-1] + n:
    return None
  return ys[2] == c


def _isa_code() -> np.int32:
  """The kernels' `isa` attribute: 1 for AMX, 0 for AVX512-BF16."""
  return np.int32(isa() == 'amx')


def kind_of(spec: str, x, y, dtype) -> str | None:
  """Which of our kernels `product(spec, x, y)` runs (`KINDS`), or None (XLA's einsum).

  'bf16': a bfloat16 product that is one matrix product, K even and N a
  multiple of 16. 'f32_batched': float32 inputs in a float32 product, batched
  over the same leading axes of both (the attention over a float32 cache);
  'bf16_batched': the same in a bfloat16 product (over a bfloat16 cache).
  'bf16_shared': a bfloat16 product of x [P.., K, M, C] by one y per K (`_shared`:
  a shared prefix's keys or values), C even and N a multiple of 16: one matrix
  product per K. Any of them on a CPU default backend, with the kernel built.
  """
  if jax.default_backend() != 'cpu':
    return None
  dtype = jnp.dtype(dtype)
  batched = _batched_kind(spec, x, y, dtype)
  if batched is not None:
    return batched if available() else None
  if dtype != jnp.bfloat16:
    return None
  nt = _shared(spec)
  if nt is not None:
    c, n = x.shape[-1], (y.shape[1] if nt else y.shape[2])
    fits = c % 2 == 0 and n % 16 == 0 and c > 0 and n > 0 and y.shape[0] == x.shape[-3]
    return 'bf16_shared' if fits and available() else None
  form = _forms(spec)
  if form is None:
    return None
  kind, _ = form
  k = x.shape[-1]
  n = y.shape[0] if kind == 'nt' else math.prod(y.shape[1:])
  return 'bf16' if k % 2 == 0 and n % 16 == 0 and k > 0 and n > 0 and available() else None


def reads_slot_rows(compute_dtype, cache_dtype) -> bool:
  """Whether a decode step's attention over a cache of `cache_dtype` (the model
  computing in `compute_dtype`) runs our batched kernel here (`chosen`). It reads
  keys stored as slot rows (`LayerCache.slot_rows`: the transposed batched form),
  which a step writes as one contiguous row each; XLA:CPU reads them slower."""
  if jax.default_backend() != 'cpu':
    return False
  cache_dtype = jnp.dtype(cache_dtype)
  if cache_dtype == jnp.float32:
    kind = 'f32_batched'
  elif cache_dtype == jnp.bfloat16 and jnp.dtype(compute_dtype) == jnp.bfloat16:
    kind = 'bf16_batched'
  else:
    return False
  return available() and chosen(kind)


def applies(spec: str, x, y, dtype) -> bool:
  """Whether `product(spec, x, y)` runs one of our kernels (`kind_of`)."""
  return kind_of(spec, x, y, dtype) is not None


def used(spec: str, x, y, dtype) -> bool:
  """Whether `modules.dot` runs our kernel for this product: it applies and is `chosen`."""
  kind = kind_of(spec, x, y, dtype)
  return kind is not None and chosen(kind)


_OVER = {None: 0, 'n': 1, 'k': 2}


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 4))
def product(spec: str, x, y, seen=None, over: str | None = None):
  """`einsum(spec, x, y)` with float32 sums by our kernel (see `kind_of`): bfloat16
  inputs for a bfloat16 product, float32 for a batched float32 one (x and y float32;
  a batched product with y in bfloat16 is a bfloat16 one: x is rounded to bfloat16).

  A batched product may be told which of y's columns (`over='n'`) or rows (`'k'`)
  count (`seen`: flags over the leading batch axes, then that axis): the others are
  not read, a column comes out 0 and a row adds nothing. The attention over a cache
  passes its mask, so that a step reads only the slots a row may see (a masked
  slot's score is masked anyway, and its weight is 0). Gradients are einsum's.
  """
  if _batched_form(spec) is not None:
    return _batched_product(spec, x, y, seen, over)
  nt = _shared(spec)
  if nt is not None:  # one product per key/value head, of every row's queries
    heads = [
        product(f'MC,{"NC" if nt else "CN"}->MN', x[..., j, :, :].reshape(-1, x.shape[-1]), y[j])
        .reshape(*x.shape[:-3], x.shape[-2], -1)
        for j in range(y.shape[0])
    ]
    return jnp.stack(heads, axis=-3)
  kind, lead = _forms(spec)
  a = x.astype(jnp.bfloat16).reshape(-1, x.shape[-1])
  b = y.astype(jnp.bfloat16)
  b = b if kind == 'nt' else b.reshape(b.shape[0], -1)
  n = b.shape[0] if kind == 'nt' else b.shape[1]
  call = jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct((a.shape[0], n), jnp.float32),
                         vmap_method='sequential')
  out = call(a, b, nt=kind == 'nt', packed=False, isa=_isa_code())
  return out.reshape(*x.shape[:lead], *(y.shape[:1] if kind == 'nt' else y.shape[1:]))


def product_of_bits(spec: str, x, bits, seen=None, over: str | None = None):
  """`product(spec, x, y, seen, over)` of a batched bfloat16 product whose y is held
  as its bits, uint16 (a cache, `LayerCache.bits_of`): the kernel reads them as they
  are, with no conversion or copy. No gradients (the sampler's caches only)."""
  if bits.dtype != jnp.uint16 or _batched_form(spec) is None:
    raise ValueError(f'product_of_bits: {spec} is not a batched product of a uint16 y')
  return _batched_product(spec, x, bits, seen, over)


def _batched_product(spec, x, y, seen, over):
  batch, nt = x.shape[:_batched_form(spec)], _batched_nt(spec)
  n = y.shape[-2] if nt else y.shape[-1]
  out = jax.ShapeDtypeStruct((math.prod(batch), x.shape[-2], n), jnp.float32)
  wide = x.dtype == y.dtype == jnp.float32
  bits = y.dtype == jnp.uint16
  target = _BATCHED_TARGET if wide else _BITS_BATCHED_TARGET if bits else _BF16_BATCHED_TARGET
  call = jax.ffi.ffi_call(target, out, vmap_method='sequential')
  # A bfloat16 product's inputs: x rounded to bfloat16 (the kernel widens it, entry by
  # entry), y's bits.
  a = (x if wide else x.astype(jnp.bfloat16)).reshape(-1, *x.shape[-2:])
  b = (y if wide or bits else y.astype(jnp.bfloat16)).reshape(-1, *y.shape[-2:])
  if nt and over == 'k':
    over = None  # y's rows are its columns in memory: all are read (the same sums where x is 0)
  if over is None:
    flags = jnp.zeros((1, 1), bool)
  else:
    size = n if over == 'n' else y.shape[-2]
    if seen.ndim - 1 > len(batch) or seen.shape[-1] != size:
      raise ValueError(f'flags {seen.shape} do not fit a batch {batch} over {size} of {spec}')
    flags = jnp.broadcast_to(seen.astype(bool), (*batch[:seen.ndim - 1], size)).reshape(-1, size)
  return call(a, b, flags, over=np.int32(_OVER[over]), nt=nt).reshape(*batch, x.shape[-2], n)


PANEL, TILE_PAIRS = 64, 16  # columns per panel, k pairs per tile (`kPanel`, `kTileK2`)


def packable(k: int, n: int) -> bool:
  """Whether a [k, n] matrix can be `pack`ed: k even and n a multiple of 16."""
  return k > 0 and n > 0 and k % 2 == 0 and n % 16 == 0


def pack(w) -> np.ndarray:
  """The matrix `w` [K, N] as our kernel packs it for a product `x @ w` (`cpu_kernels.cc`,
  `Pack`), bfloat16, flat `[K * N]`: panels of 64 columns, each in tiles of 16 k pairs
  by 16 columns, the two bfloat16 of consecutive k side by side. `packed_product` reads
  it without packing it again: a model's weights are packed once (`config.packed_weights`).
  """
  w = np.asarray(jax.device_get(w)).astype(jnp.bfloat16)
  k, n = w.shape
  if not packable(k, n):
    raise ValueError(f'cannot pack a [{k}, {n}] matrix: K must be even and N a multiple of 16')
  pairs = k // 2
  whole = pairs - pairs % TILE_PAIRS
  parts = []
  for n0 in range(0, n, PANEL):
    width = min(PANEL, n - n0)
    panel = w[:, n0:n0 + width].reshape(pairs, 2, width // 16, 16)  # [pair, k % 2, tile, column]
    head = panel[:whole].reshape(whole // TILE_PAIRS, TILE_PAIRS, 2, width // 16, 16)
    parts.append(head.transpose(0, 3, 1, 4, 2).ravel())  # [group, tile, pair, column, k % 2]
    parts.append(panel[whole:].transpose(2, 0, 3, 1).ravel())  # the last group: fewer pairs
  return np.concatenate(parts)


def packed_product(x, packed, n: int):
  """`x @ w` [..., N] in float32 for `packed = pack(w)` (w [K, N]), x [..., K] rounded to
  bfloat16: our kernel, where it is `chosen` (the caller's choice: a packed weight has
  no other product). Not differentiable."""
  k = x.shape[-1]
  if packed.shape != (k * n,):
    raise ValueError(f'packed weight of {packed.shape} elements is not [{k}, {n}]')
  a = x.astype(jnp.bfloat16).reshape(-1, k)
  call = jax.ffi.ffi_call(_TARGET, jax.ShapeDtypeStruct((a.shape[0], n), jnp.float32), vmap_method='sequential')
  return call(a, packed, nt=False, packed=True, isa=_isa_code()).reshape(*x.shape[:-1], n)


def pack_parts(ws) -> np.ndarray:
  """Matrices `w_i` [K, N_i] that multiply the same x, side by side, as
  `packed_product_parts` reads them: each `pack`ed on its own, one after the other."""
  return np.concatenate([pack(w) for w in ws])


def packed_product_parts(x, packed, sizes) -> tuple:
  """`x @ w_i` [..., N_i] in float32 for each of `sizes`' parts of `packed = pack_parts(w)`,
  computed in one call, each into a result of its own (at most 4 parts): q, k and v, or
  the GeGLU's gate and up, in one walk over their weights, with the same sums as each
  part's `packed_product` and no slice copied out of a whole. Not differentiable."""
  k, sizes = x.shape[-1], tuple(int(n) for n in sizes)
  if not 1 <= len(sizes) <= 4 or not all(packable(k, n) for n in sizes):
    raise ValueError(f'parts {sizes} of a packed weight of {k} rows: 1 to 4, each packable')
  if packed.shape != (k * sum(sizes),):
    raise ValueError(f'packed weight of {packed.shape} elements is not [{k}, {sum(sizes)}]')
  a = x.astype(jnp.bfloat16).reshape(-1, k)
  call = jax.ffi.ffi_call(
      _PARTS_TARGET, tuple(jax.ShapeDtypeStruct((a.shape[0], n), jnp.float32) for n in sizes),
      vmap_method='sequential')
  return tuple(c.reshape(*x.shape[:-1], n) for c, n in zip(call(a, packed, isa=_isa_code()), sizes))


def logits_with_statistics(table, hidden):
  """`product('VD,BD->VB', table, hidden)` (the vocabulary-major logits `[V, B]` of
  hidden states `[B, D]`), with each column's maximum over each block of
  `STAT_BLOCK` vocabulary entries and the sum of `exp(logit - that maximum)` over
  the block, in vocabulary order (`[ceil(V / STAT_BLOCK), B]` each), computed as
  the logits are written: the log-normaliser of `rules.sample_next` without two
  more passes over them. For where `used('VD,BD->VB', table, hidden, bfloat16)`."""
  v, b = table.shape[0], hidden.shape[0]
  blocks = -(-v // STAT_BLOCK)
  call = jax.ffi.ffi_call(_LOGITS_TARGET, (
      jax.ShapeDtypeStruct((v, b), jnp.float32),
      jax.ShapeDtypeStruct((blocks, b), jnp.float32),
      jax.ShapeDtypeStruct((blocks, b), jnp.float32),
  ), vmap_method='sequential')
  return tuple(call(table.astype(jnp.bfloat16), hidden.astype(jnp.bfloat16), isa=_isa_code()))


def logits_top_k(table, hidden, k: int):
  """`jax.lax.top_k` of each row's logits, with the statistics of
  `logits_with_statistics`, without the logits: values and indices `[B, k]`
  (descending, ties to the lower index; the same bits as `top_k` of the
  `product('VD,BD->VB', table, hidden)` logits' columns), maxima and exp-sums
  `[ceil(V / STAT_BLOCK), B]`. Each row's best k are kept as the logits are
  computed (a block of them whose largest does not enter is passed over in one
  comparison), so the `[V, B]` logits (67 MB a decode step for Gemma 3 and 64
  slots) are never written or read again. Needs `k <= min(V, 256)`; for where
  `used('VD,BD->VB', table, hidden, bfloat16)`."""
  v, b = table.shape[0], hidden.shape[0]
  if not 1 <= k <= min(v, _TOP_K_LIMIT):
    raise ValueError(f'logits_top_k: k must be in [1, {min(v, _TOP_K_LIMIT)}], not {k}')
  blocks = -(-v // STAT_BLOCK)
  call = jax.ffi.ffi_call(_LOGITS_TOP_K_TARGET, (
      jax.ShapeDtypeStruct((b, k), jnp.float32),
      jax.ShapeDtypeStruct((b, k), jnp.int32),
      jax.ShapeDtypeStruct((blocks, b), jnp.float32),
      jax.ShapeDtypeStruct((blocks, b), jnp.float32),
  ), vmap_method='sequential')
  return tuple(call(table.astype(jnp.bfloat16), hidden.astype(jnp.bfloat16), isa=_isa_code()))


def instruction_peak_flops(threads: int | None = None, seconds: float = 0.2) -> float | None:
  """FLOP/s of the bfloat16 dot-product instruction our products run on (AMX's
  `tdpbf16ps` where `isa()` is 'amx', else AVX512-BF16's `vdpbf16ps`) from
  registers, on `threads` threads at once (default: every CPU this process may
  use): the compute roof no bfloat16 product here can pass, measured with no
  library between. None where the kernels are not built."""
  library = _library()
  if library is None:
    return None
  threads = threads or len(os.sched_getaffinity(0))
  peak = library.WcseBf16PeakFlops
  peak.restype, peak.argtypes = ctypes.c_double, [ctypes.c_int32, ctypes.c_int32, ctypes.c_double]
  return peak(int(isa() == 'amx'), threads, seconds) or None


def _product_fwd(spec, x, y, seen, over):
  return product(spec, x, y, seen, over), (x, y)


def _product_bwd(spec, over, residuals, g):
  x, y = residuals
  dtype = jnp.float32 if _batched_f32(spec, x, y) is not None else jnp.bfloat16
  _, vjp = jax.vjp(
      lambda x, y: jnp.einsum(spec, x.astype(dtype), y.astype(dtype),
                              preferred_element_type=jnp.float32), x, y)
  return (*vjp(g), None)


product.defvjp(_product_fwd, _product_bwd)


def softmax_applies() -> bool:
  """Whether the attention's softmax runs `masked_softmax` (on a CPU default backend
  with the kernels built, unless `WCSE_JAX_CPU_KERNELS=0`)."""
  return jax.default_backend() == 'cpu' and os.environ.get(ENV, 'auto') != '0' and available()


_TOP_K_LIMIT = 256  # k beyond which XLA's sort is used: the kernel's buffer and selections grow as k


def top_k_applies(x, k: int) -> bool:
  """Whether `top_k(x, k)` runs our kernel: float32 `x` with at least k entries per row,
  k up to 256, on a CPU default backend with the kernels built (`softmax_applies`)."""
  return (softmax_applies() and jnp.dtype(x.dtype) == jnp.float32 and x.ndim >= 1
          and 1 <= k <= min(_TOP_K_LIMIT, x.shape[-1]) and x.size > 0)


def top_k(x, k: int):
  """`jax.lax.top_k(x, k)` of float32 `x` [..., N] by our kernel where `top_k_applies`
  (else XLA's): the same values and indices (descending in the total order of floats,
  NaN first; ties to the lower index): each row's entries are compared 16 at a time
  with a rising threshold, those above it kept in a buffer from which the best k are
  selected as it fills (XLA:CPU sorts every row). Not differentiable (a sampling
  step's)."""
  if not top_k_applies(x, k):
    return jax.lax.top_k(x, k)
  shape = (*x.shape[:-1], k)
  call = jax.ffi.ffi_call(_TOP_K_TARGET, (jax.ShapeDtypeStruct(shape, jnp.float32),
                                          jax.ShapeDtypeStruct(shape, jnp.int32)), vmap_method='broadcast_all')
  return call(x)


def masked_softmax(scores, mask):
  """`jax.nn.softmax(where(mask, scores, masked), axis=-1)` of attention scores
  [B, K, T, G, S] (float32) under a mask [B, T, S] shared by the K x G heads, by our
  kernel in one pass (its exp to ~2 ulp; XLA:CPU's takes several, its exp slower).
  Needs `available()`. Gradients are the softmax's."""
  b, k, t, g, s = scores.shape
  if mask.shape != (b, t, s):
    raise ValueError(f'masked_softmax: mask {mask.shape} does not fit scores {scores.shape}')
  return masked_softmax_parts([scores], [mask], [None], ['float32'])[0]


def rms_norm_reference(x, scale, eps: float, residual=None, dtype=None):
  """RMS normalisation in jax (the model's `RMSNorm` where our kernel does not run, and
  what `rms_norm` computes): `x / rms(x) * (1 + scale)` in float32, as x's dtype; plus
  `residual` if given; then as `dtype` (x's if None)."""
  x32 = x.astype(jnp.float32)
  y = (x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, -1, keepdims=True) + eps)
       * (1.0 + scale.astype(jnp.float32))).astype(x.dtype)
  return (y if residual is None else residual + y).astype(dtype or x.dtype)


def rms_norm(x, scale, eps: float, residual=None, dtype=jnp.float32):
  """`rms_norm_reference` of float32 x [..., D] by our kernel in one pass (XLA:CPU
  runs a reduction and a loop or two, mostly fixed cost at a decode step's size);
  `dtype` float32 or bfloat16 (rounded to nearest even, as XLA converts). Each row's
  sum of squares runs in one order whatever the batch. Needs `available()`.
  Gradients are the reference's."""
  _require('rms_norm')
  if (x.dtype != jnp.float32 or scale.shape != x.shape[-1:] or jnp.dtype(dtype) not in (jnp.float32, jnp.bfloat16)
      or (residual is not None and residual.shape != x.shape)):
    raise ValueError(f'rms_norm: x {x.shape} {x.dtype}, scale {scale.shape}, dtype {dtype}: not float32 x [..., D], '
                     'scale [D], residual like x, a float32 or bfloat16 result')
  return _rms_norm(x, scale, residual, float(eps), jnp.dtype(dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _rms_norm(x, scale, residual, eps, dtype):
  d = x.shape[-1]
  call = jax.ffi.ffi_call(_RMS_NORM_TARGET, jax.ShapeDtypeStruct((x.size // max(d, 1), d), dtype),
                          vmap_method='sequential')
  rows = x.reshape(-1, d)
  extra = rows if residual is None else residual.astype(jnp.float32).reshape(-1, d)
  return call(rows, scale.astype(jnp.float32), extra, eps=np.float32(eps), add=residual is not None).reshape(x.shape)


def _rms_norm_fwd(x, scale, residual, eps, dtype):
  return _rms_norm(x, scale, residual, eps, dtype), (x, scale, residual)


def _rms_norm_bwd(eps, dtype, residuals, g):
  x, scale, residual = residuals
  _, vjp = jax.vjp(lambda x, s, r: rms_norm_reference(x, s, eps, r), x, scale, residual)
  return vjp(g.astype(jnp.float32))


_rms_norm.defvjp(_rms_norm_fwd, _rms_norm_bwd)


def norm_rope_reference(x, scale, eps: float, sin, cos, factor: float):
  """What `norm_rope` computes, in jax: `rms_norm_reference` over each head of x
  [B, T, N, H], the rotary embedding by sin and cos [B, T, 1, H / 2] (`apply_rope`'s),
  then times `factor`."""
  y = rms_norm_reference(x, scale, eps)
  first, second = jnp.split(y, 2, axis=-1)
  return jnp.concatenate([first * cos - second * sin, second * cos + first * sin], axis=-1) * factor


def norm_rope(x, scale, eps: float, sin, cos, factor: float = 1.0, dtype=jnp.float32):
  """`norm_rope_reference` of float32 x [B, T, N, H] by our kernel, in one pass where
  XLA:CPU runs five or six small loops (a layer's query or key), as `dtype` (float32,
  or bfloat16 rounded to nearest even). Needs `available()`. Gradients are the
  reference's."""
  _require('norm_rope')
  b, t, n, h = x.shape
  if (x.dtype != jnp.float32 or scale.shape != (h,) or h % 2 or sin.shape != (b, t, 1, h // 2)
      or cos.shape != sin.shape or jnp.dtype(dtype) not in (jnp.float32, jnp.bfloat16)):
    raise ValueError(f'norm_rope: x {x.shape} {x.dtype}, scale {scale.shape}, sin {sin.shape}, cos {cos.shape}, '
                     f'dtype {dtype}: not float32 x [B, T, N, H], scale [H], sin and cos [B, T, 1, H / 2], '
                     'a float32 or bfloat16 result')
  return _norm_rope(x, scale, sin, cos, float(eps), float(factor), jnp.dtype(dtype))


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _norm_rope(x, scale, sin, cos, eps, factor, dtype):
  b, t, n, h = x.shape
  call = jax.ffi.ffi_call(_NORM_ROPE_TARGET, jax.ShapeDtypeStruct((b * t * n, h), dtype),
                          vmap_method='sequential')
  half = lambda a: a.astype(jnp.float32).reshape(b * t, h // 2)
  out = call(x.reshape(-1, h), scale.astype(jnp.float32), half(sin), half(cos),
             heads=np.int64(n), eps=np.float32(eps), factor=np.float32(factor))
  return out.reshape(x.shape)


def _norm_rope_fwd(x, scale, sin, cos, eps, factor, dtype):
  return _norm_rope(x, scale, sin, cos, eps, factor, dtype), (x, scale, sin, cos)


def _norm_rope_bwd(eps, factor, dtype, residuals, g):
  return jax.vjp(lambda *a: norm_rope_reference(*a[:2], eps, *a[2:], factor), *residuals)[1](g.astype(jnp.float32))


_norm_rope.defvjp(_norm_rope_fwd, _norm_rope_bwd)


def geglu(gate, up, dtype=jnp.float32):
  """`gelu(gate, approximate=True) * up` (float32 [...]) as `dtype` (float32 or
  bfloat16, rounded to nearest even) by our kernel, in one pass: gelu as
  `x / (1 + e^(-2y))`, the tanh form with no cancellation, within a few float32 ulp
  of jax's. Needs `available()`. Gradients are jax's."""
  _require('geglu')
  if gate.shape != up.shape or gate.dtype != jnp.float32 or up.dtype != jnp.float32 or \
      jnp.dtype(dtype) not in (jnp.float32, jnp.bfloat16):
    raise ValueError(f'geglu: gate {gate.shape} {gate.dtype}, up {up.shape} {up.dtype}, dtype {dtype}: '
                     'float32 gate and up of one shape, a float32 or bfloat16 result')
  return _geglu(gate, up, jnp.dtype(dtype))


def _geglu_reference(gate, up):
  return jax.nn.gelu(gate, approximate=True) * up


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _geglu(gate, up, dtype):
  call = jax.ffi.ffi_call(_GEGLU_TARGET, jax.ShapeDtypeStruct(gate.shape, dtype), vmap_method='broadcast_all')
  return call(gate, up)


def _geglu_fwd(gate, up, dtype):
  return _geglu(gate, up, dtype), (gate, up)


def _geglu_bwd(dtype, residuals, g):
  return jax.vjp(_geglu_reference, *residuals)[1](g.astype(jnp.float32))


_geglu.defvjp(_geglu_fwd, _geglu_bwd)


SOFTMAX_KINDS = ('float32', 'bfloat16')


def masked_softmax_parts(scores, masks, layout, kinds):
  """`masked_softmax` of a row cut in parts, never concatenated: `scores[i]`
  [B, K, T, G, S_i] (float32) under `masks[i]` [B, T, S_i]. `layout` lists the parts
  in row order, None for the next part and an int w for a gap of w slots no token
  sees (no scores; a row that sees nothing is uniform over every slot, gaps too).
  Part i's probabilities come out as `kinds[i]` says: 'float32' or 'bfloat16'
  (rounded to nearest even): a product's inputs as it takes them, with no
  conversion after. The row's sum runs 16
  slots at a time from each part's first, so it does not depend on gaps past the
  last seen slot. Needs `available()`. Gradients are the softmax's (a rounding's, 1)."""
  _require('masked_softmax')
  if not (len(scores) == len(masks) == len(kinds) == sum(w is None for w in layout)) or not scores:
    raise ValueError('masked_softmax_parts: one mask and one kind per part, one None per part in the layout')
  b, k, t, g, _ = scores[0].shape
  for x, m, kind in zip(scores, masks, kinds):
    if x.shape[:4] != (b, k, t, g) or m.shape != (b, t, x.shape[-1]) or kind not in SOFTMAX_KINDS:
      raise ValueError(f'masked_softmax_parts: scores {x.shape}, mask {m.shape}, kind {kind!r} do not fit')
  layout = tuple(-1 if w is None else int(w) for w in layout)
  return list(_softmax_parts(tuple(scores), tuple(masks), layout, tuple(kinds)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _softmax_parts(scores, masks, layout, kinds):
  b, k, t, g, _ = scores[0].shape
  dtypes = [jnp.bfloat16 if kind == 'bfloat16' else jnp.float32 for kind in kinds]
  call = jax.ffi.ffi_call(
      _SOFTMAX_TARGET, [jax.ShapeDtypeStruct((b * k * t * g, x.shape[-1]), d) for x, d in zip(scores, dtypes)],
      vmap_method='sequential')
  out = call(*(x.astype(jnp.float32).reshape(-1, x.shape[-1]) for x in scores),
             *(m.astype(bool).reshape(-1, m.shape[-1]) for m in masks),
             heads=np.int64(k), steps=np.int64(t), group=np.int64(g), layout=np.asarray(layout, np.int64))
  return tuple(o.reshape(x.shape) for o, x in zip(out, scores))


def _softmax_parts_fwd(scores, masks, layout, kinds):
  return _softmax_parts(scores, masks, layout, kinds), (scores, masks)


def _softmax_parts_bwd(layout, kinds, residuals, g):
  scores, masks = residuals
  probs = jnp.concatenate(_softmax_parts(scores, masks, layout, ('float32',) * len(scores)), axis=-1)
  g = jnp.concatenate([x.astype(jnp.float32) for x in g], axis=-1)
  mask = jnp.concatenate(masks, axis=-1)
  grad = probs * (g - jnp.sum(g * probs, axis=-1, keepdims=True))
  # A masked score is a constant in the softmax (`where`): no gradient, even in a row
  # that sees nothing (there the probabilities are uniform, not 0).
  grad = jnp.where(mask[:, None, :, None, :], grad, 0.0)
  ends = np.cumsum([x.shape[-1] for x in scores])[:-1]
  return tuple(jnp.split(grad, ends, axis=-1)), None


_softmax_parts.defvjp(_softmax_parts_fwd, _softmax_parts_bwd)
