"""Our bfloat16 matrix products on CPU (`cpu_kernels.cc`), through the XLA FFI.

XLA:CPU runs bfloat16 products with few rows, a decode step's slots against a
weight, at about two thirds of what the CPU's bfloat16 dot-product instruction
does; `cpu_kernels.cc` is a register-tiled kernel for that instruction
(AVX512-BF16). `product` is what `modules.dot` calls for a bfloat16 product
that is one matrix product (the weight products and the logits); on any other
backend, CPU, dtype or shape it is XLA's `einsum`.

The kernel is built on first use with the machine's C++ compiler (`$CXX`, else
`g++`) against JAX's FFI headers, for this CPU (`-march=native`), into the
project's cache (`$WCSE_JAX_CACHE/kernels`), once per source, JAX version and
CPU. Without a compiler, or on a CPU without AVX512-BF16, or with
`WCSE_JAX_CPU_KERNELS=0`, XLA's products are used and one log line says why.

Sums are float32 in a fixed order (over k, whatever the tiling or threads),
so a product gives the same bits for any number of rows; they differ from
XLA's by float32 rounding. Gradients go through XLA's `einsum`.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import pathlib
import platform
import shutil
import subprocess
import tempfile

import jax
import jax.numpy as jnp

ENV = 'WCSE_JAX_CPU_KERNELS'
_SOURCE = pathlib.Path(__file__).with_name('cpu_kernels.cc')
_TARGETS = {'nn': 'wcse_bf16_product_nn', 'nt': 'wcse_bf16_product_nt'}
_SYMBOLS = {'nn': 'WcseBf16ProductNN', 'nt': 'WcseBf16ProductNT'}

log = logging.getLogger(__name__)


def _cpu_flags() -> set[str]:
  try:
    text = pathlib.Path('/proc/cpuinfo').read_text()
  except OSError:
    return set()
  for line in text.splitlines():
    if line.startswith('flags'):
      return set(line.split(':', 1)[1].split())
  return set()


def _build(directory: pathlib.Path) -> pathlib.Path:
  """The kernel's shared library for this source, JAX and CPU, compiled once."""
  compiler = os.environ.get('CXX') or 'g++'
  if not shutil.which(compiler):
    raise RuntimeError(f'no C++ compiler ({compiler}; set $CXX)')
  flags = ['-O3', '-march=native', '-std=c++17', '-shared', '-fPIC', '-w', f'-I{jax.ffi.include_dir()}']
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


@functools.cache
def _register(path: str) -> None:
  """Loads the library at `path` and registers its handlers with XLA (once a process)."""
  library = ctypes.cdll.LoadLibrary(path)
  for form, target in _TARGETS.items():
    jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, _SYMBOLS[form])), platform='cpu')


@functools.cache
def available() -> bool:
  """Whether the kernel is built and registered with XLA (once per process)."""
  if os.environ.get(ENV, '1') == '0':
    log.info('bfloat16 CPU kernels off (%s=0): XLA products', ENV)
    return False
  if platform.machine() not in ('x86_64', 'AMD64') or 'avx512_bf16' not in _cpu_flags():
    log.info('bfloat16 CPU kernels need an x86 CPU with AVX512-BF16: XLA products')
    return False
  from wcse_jax.checkpoints.load import cache_dir  # pylint: disable=g-import-not-at-top
  try:
    _register(str(_build(cache_dir() / 'kernels')))
  except (OSError, RuntimeError, subprocess.SubprocessError, AttributeError) as e:
    log.warning('bfloat16 CPU kernels not built (%s): XLA products', e)
    return False
  return True


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


def applies(spec: str, x, y, dtype) -> bool:
  """Whether `product(spec, x, y)` runs our kernel: bfloat16 on a CPU default
  backend, one matrix product, K even and N a multiple of 16."""
  if jnp.dtype(dtype) != jnp.bfloat16 or jax.default_backend() != 'cpu':
    return False
  form = _forms(spec)
  if form is None:
    return False
  kind, _ = form
  k = x.shape[-1]
  n = y.shape[0] if kind == 'nt' else math.prod(y.shape[1:])
  return k % 2 == 0 and n % 16 == 0 and k > 0 and n > 0 and available()


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def product(spec: str, x, y):
  """`einsum(spec, x, y)` in bfloat16 with float32 sums, by our kernel (see `applies`)."""
  kind, lead = _forms(spec)
  a = x.astype(jnp.bfloat16).reshape(-1, x.shape[-1])
  b = y.astype(jnp.bfloat16)
  b = b if kind == 'nt' else b.reshape(b.shape[0], -1)
  n = b.shape[0] if kind == 'nt' else b.shape[1]
  call = jax.ffi.ffi_call(_TARGETS[kind], jax.ShapeDtypeStruct((a.shape[0], n), jnp.float32),
                         vmap_method='sequential')
  return call(a, b).reshape(*x.shape[:lead], *(y.shape[:1] if kind == 'nt' else y.shape[1:]))


def _product_fwd(spec, x, y):
  return product(spec, x, y), (x, y)


def _product_bwd(spec, residuals, g):
  x, y = residuals
  _, vjp = jax.vjp(
      lambda x, y: jnp.einsum(spec, x.astype(jnp.bfloat16), y.astype(jnp.bfloat16),
                              preferred_element_type=jnp.float32), x, y)
  return vjp(g)


product.defvjp(_product_fwd, _product_bwd)
