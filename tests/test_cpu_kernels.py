"""Our CPU products (`model.cpu_kernels`) against float32 sums of the same inputs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wcse_jax.model import cpu_kernels, modules

needs_kernel = pytest.mark.skipif(not cpu_kernels.available(), reason='no AVX512-BF16 CPU or no C++ compiler')


@pytest.fixture(params=['avx512', 'amx'])
def isa(request, monkeypatch):
  """Runs a test on each of the kernel's paths this machine has."""
  monkeypatch.setenv(cpu_kernels.ENV, request.param if request.param == 'avx512' else '1')
  cpu_kernels.isa.cache_clear()
  if cpu_kernels.isa() != request.param:
    cpu_kernels.isa.cache_clear()
    pytest.skip(f'no {request.param} here')
  yield request.param
  cpu_kernels.isa.cache_clear()


def _inputs(x_shape, y_shape, seed=0):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal(x_shape) * 3, jnp.bfloat16)
  y = jnp.asarray(rng.standard_normal(y_shape), jnp.bfloat16)
  return x, y


def _check(spec, x, y, out):
  """Within float32 rounding of the exact sum: |error| <= K * 2^-23 * sum |x y| (with slack 4)."""
  x32, y32 = x.astype(jnp.float32), y.astype(jnp.float32)
  exact = jnp.einsum(spec, x32, y32, precision='highest')
  scale = jnp.einsum(spec, jnp.abs(x32), jnp.abs(y32), precision='highest')
  bound = 4 * x.shape[-1] * 2.0**-23 * scale + 1e-30
  assert out.shape == exact.shape and out.dtype == jnp.float32
  excess = np.asarray(jnp.abs(out - exact) / bound)
  assert excess.max() <= 1.0, f'{spec}: error {excess.max():.2f}x the bound'


@needs_kernel
@pytest.mark.parametrize('spec,x_shape,y_shape', [
    ('BTD,DF->BTF', (64, 1, 640), (640, 2048)),  # a decode step's slots against a weight
    ('BTD,DNH->BTNH', (3, 5, 96), (96, 4, 32)),  # prefill rows; heads flattened
    ('BTX,XD->BTD', (7, 1, 48), (48, 112)),  # rows left over from the 6-row tiles; panels of 64 and 48
    ('MK,KN->MN', (1, 2), (2, 16)),  # smallest: one row, one pair, one register of columns
    ('MK,KN->MN', (13, 34), (34, 32)),
    ('VD,BD->VB', (1000, 64), (64, 64)),  # the logits: table rows against the slots, in row blocks
    ('VD,BD->VB', (301, 20), (80, 20)),  # ... with panels of 64 and 16
    ('VD,BD->VB', (40, 8), (800, 8)),  # ... few rows, many columns: panels
    ('VD,BD->VB', (40000, 32), (64, 32)),  # ... an output over 8 MB: written past the caches
    ('VD,BD->VB', (40020, 64), (64, 64)),  # ... and a last row block of 84 rows: AMX's 20 left over
    ('MK,KN->MN', (37, 96), (96, 48)),  # AMX: k tiles of 32; rows 32 + 5; a panel of 32 + 16 columns
    ('MK,NK->MN', (16, 1024), (16, 1024)),  # AMX: one tile of rows and of columns
])
def test_product_matches_float32_sums(spec, x_shape, y_shape, isa):
  x, y = _inputs(x_shape, y_shape)
  assert cpu_kernels.applies(spec, x, y, jnp.bfloat16)
  out = jax.jit(lambda x, y: cpu_kernels.product(spec, x, y))(x, y)
  _check(spec, x, y, out)
  xla = jnp.einsum(spec, x, y, preferred_element_type=jnp.float32)
  np.testing.assert_allclose(np.asarray(out), np.asarray(xla), rtol=2e-5, atol=2e-5 * float(jnp.abs(xla).max()))


@needs_kernel
@pytest.mark.parametrize('spec,x_shape,y_shape', [('MK,KN->MN', (150, 64), (64, 80)), ('VD,BD->VB', (700, 640), (48, 640))])
def test_rows_do_not_depend_on_the_others(spec, x_shape, y_shape, isa):
  """Each row's sums are the same bits alone, in any slice of rows, or with every row: a
  decode step and a prefill give the same logits for the same input."""
  x, y = _inputs(x_shape, y_shape, seed=1)
  product = jax.jit(lambda x, y: cpu_kernels.product(spec, x, y))
  whole = np.asarray(product(x, y))
  for rows in (slice(0, 1), slice(3, 5), slice(5, 11), slice(20, 34), slice(97, 150)):  # tiles of 1, 2, 6, 4, ...
    np.testing.assert_array_equal(np.asarray(product(x[rows], y)), whole[rows])


@needs_kernel
@pytest.mark.parametrize('m,k,n', [
    (64, 640, 2048),  # a decode step against a weight: AMX tiles of 32 k
    (5, 100, 80),  # 50 k pairs: groups of 16, 16, 16 and 2 (AVX512-BF16); panels of 64 and 16
    (1, 2, 16),  # one pair, one tile of columns
    (37, 96, 48),  # AMX: rows 32 + 5 (padded); one panel of 3 column tiles
    (150, 64, 80),  # many rows, few columns: row blocks
])
def test_a_packed_weight_gives_the_same_bits_as_packing_per_call(m, k, n, isa):
  """`pack` lays a weight out as the kernel packs it per call, so a product with the packed
  weight is the same sums in the same order: bit for bit the product with `w`."""
  x, w = _inputs((m, k), (k, n), seed=2)
  packed = cpu_kernels.pack(w)
  assert packed.shape == (k * n,) and packed.dtype == jnp.bfloat16
  out = jax.jit(lambda x, p: cpu_kernels.packed_product(x, p, n))(x, packed)
  plain = jax.jit(lambda x, w: cpu_kernels.product('MK,KN->MN', x, w))(x, w)
  np.testing.assert_array_equal(np.asarray(out), np.asarray(plain))
  _check('MK,KN->MN', x, w, out)
  np.testing.assert_array_equal(  # leading axes of x are kept
      np.asarray(cpu_kernels.packed_product(x.reshape(1, m, k), packed, n)), np.asarray(out)[None])


@needs_kernel
@pytest.mark.parametrize('m,k,sizes', [
    (1, 640, (1024, 256, 256)),  # a decode step's q, k and v of one slot
    (64, 640, (2048, 2048)),  # gate and up
    (7, 96, (48, 16)),  # parts narrower than a panel
    (200, 64, (48, 128, 80, 16)),  # many rows (A streams), four parts
    (130, 32, (64,)),
])
def test_parts_of_a_packed_weight_give_each_parts_own_bits(m, k, sizes, isa):
  """`packed_product_parts`: weights side by side, each packed on its own, in one call:
  each part's result bit for bit its own `packed_product`, whatever the parts' widths."""
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.standard_normal((2, m, k)), jnp.float32)
  ws = [jnp.asarray(rng.standard_normal((k, n)), jnp.bfloat16) for n in sizes]
  packed = cpu_kernels.pack_parts(ws)
  assert packed.shape == (k * sum(sizes),)
  parts = jax.jit(lambda x, p: cpu_kernels.packed_product_parts(x, p, sizes))(x, packed)
  assert len(parts) == len(sizes)
  for w, n, got in zip(ws, sizes, parts):
    assert got.shape == (2, m, n) and got.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(got), np.asarray(cpu_kernels.packed_product(x, cpu_kernels.pack(w), n)))


@needs_kernel
def test_parts_check_shapes():
  packed = cpu_kernels.pack_parts([jnp.zeros((32, 16)), jnp.zeros((32, 48))])
  with pytest.raises(ValueError, match='is not'):
    cpu_kernels.packed_product_parts(jnp.zeros((2, 32)), packed, (16, 32))
  with pytest.raises(ValueError, match='1 to 4, each packable'):
    cpu_kernels.packed_product_parts(jnp.zeros((2, 32)), packed, (16, 24, 24))
  with pytest.raises(ValueError, match='1 to 4'):
    cpu_kernels.packed_product_parts(jnp.zeros((2, 32)), jnp.zeros((32 * 80,), jnp.bfloat16), (16,) * 5)


@needs_kernel
def test_packing_checks_shapes():
  with pytest.raises(ValueError, match='K must be even and N a multiple of 16'):
    cpu_kernels.pack(jnp.zeros((3, 16), jnp.bfloat16))
  with pytest.raises(ValueError, match='is not'):
    cpu_kernels.packed_product(jnp.zeros((2, 32)), cpu_kernels.pack(jnp.zeros((32, 16))), 32)


@needs_kernel
def test_dot_uses_it_for_bfloat16_only_and_gradients_follow_einsum(monkeypatch):
  monkeypatch.setenv(cpu_kernels.ENV, '1')
  cpu_kernels.chosen.cache_clear()
  x, y = _inputs((4, 3, 32), (32, 48))
  spec = 'BTD,DF->BTF'
  ours = modules.dot(spec, x, y, jnp.bfloat16)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(cpu_kernels.product(spec, x, y)))
  f32 = modules.dot(spec, x, y, jnp.float32)  # float32 is XLA's, exact to its own einsum
  np.testing.assert_array_equal(np.asarray(f32), np.asarray(jnp.einsum(spec, x.astype(jnp.float32), y.astype(jnp.float32))))

  def loss(product):
    return lambda x, y: jnp.sum(jnp.sin(product(x, y)))
  ours_grad = jax.grad(loss(lambda x, y: modules.dot(spec, x, y, jnp.bfloat16)), argnums=(0, 1))(x, y)
  ref_grad = jax.grad(loss(lambda x, y: jnp.einsum(spec, x, y, preferred_element_type=jnp.float32)), argnums=(0, 1))(x, y)
  for a, b in zip(ours_grad, ref_grad):
    assert a.dtype == b.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=2e-2, atol=1e-2)


@needs_kernel
@pytest.mark.parametrize('spec,x_shape,y_shape', [
    ('BKQH,BKHS->BKQS', (64, 1, 4, 256), (64, 1, 256, 64)),  # a decode step's scores over a span of 64 slots
    ('BKQS,BKSH->BKQH', (64, 1, 4, 64), (64, 1, 64, 256)),  # ... and their values
    ('BKQH,BKHS->BKQS', (3, 2, 5, 37), (3, 2, 37, 70)),  # rows 4 + 1; columns 64 + 6 (masked)
    ('PMK,PKN->PMN', (2, 7, 100), (2, 100, 16)),  # rows 6 + 1
    ('PMK,PKN->PMN', (5, 2, 1), (5, 1, 200)),  # one k; columns 3 x 64 + 8
    ('BKQH,BKSH->BKQS', (64, 1, 4, 256), (64, 1, 64, 256)),  # the scores over keys of slot rows
    ('PMK,PNK->PMN', (2, 7, 20), (2, 33, 20)),  # slot rows: 32 + 1; k 16 + 4; rows 4 + 2 + 1
    ('PMK,PNK->PMN', (2, 11, 37), (2, 50, 37)),  # many rows: y transposed once, then as above
])
@pytest.mark.parametrize('cache', [jnp.float32, jnp.bfloat16])
def test_batched_product_matches_exact_sums(spec, x_shape, y_shape, cache):
  """Over a float32 cache, float32 sums of float32 inputs; over a bfloat16 cache (the
  product in bfloat16), x is rounded to bfloat16 first, the cache's entries as they are."""
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
  y = jnp.asarray(rng.standard_normal(y_shape), cache)
  kind = 'f32_batched' if cache == jnp.float32 else 'bf16_batched'
  assert cpu_kernels.kind_of(spec, x, y, cache) == kind
  product = jax.jit(lambda x, y: cpu_kernels.product(spec, x, y))
  out = product(x, y)
  _check(spec, x.astype(cache), y, out)
  # Each batch entry's sums are the same bits alone or among the others.
  np.testing.assert_array_equal(np.asarray(product(x[1:2], y[1:2])), np.asarray(out)[1:2])


@needs_kernel
@pytest.mark.parametrize('cache', [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize('spec,x_shape,y_shape,over', [
    ('BKQH,BKHS->BKQS', (3, 2, 4, 40), (3, 2, 40, 70), 'n'),  # scores: the slots seen are columns
    ('BKQS,BKSH->BKQH', (3, 2, 4, 70), (3, 2, 70, 40), 'k'),  # values: the slots seen are rows
    ('BKQH,BKSH->BKQS', (3, 2, 4, 40), (3, 2, 70, 40), 'n'),  # scores over keys of slot rows
    ('BKQH,BKSH->BKQS', (3, 2, 4, 64), (3, 2, 70, 64), 'n'),  # ... by the dot-product instruction
])
def test_a_batched_product_reads_only_the_slots_seen(spec, x_shape, y_shape, over, cache):
  """Flags per row (shared by its key/value heads) say which slots count: a column not
  seen comes out 0 and the others are the same bits as without flags; a row not seen
  adds nothing, so with x 0 there (a masked slot's weight) the result is the same bits.
  What is not seen is not read: NaN there changes nothing."""
  rng = np.random.default_rng(4)
  x = rng.standard_normal(x_shape).astype(np.float32)
  y = rng.standard_normal(y_shape).astype(np.float32)
  slots = 70
  seen = rng.random((3, slots)) < 0.6
  seen[0] = False  # a row that sees nothing
  seen[1, :33] = True
  if over == 'k':
    x = np.where(seen[:, None, None, :], x, 0.0).astype(np.float32)
  product = jax.jit(lambda x, y, s: cpu_kernels.product(spec, x, y, s, over))
  plain = np.asarray(cpu_kernels.product(spec, jnp.asarray(x), jnp.asarray(y, cache)))
  slots_last = y_shape[-1] == slots
  poisoned = np.where(seen[:, None, None, :] if slots_last else seen[:, None, :, None], y, np.nan)
  out = np.asarray(product(jnp.asarray(x), jnp.asarray(poisoned, cache), jnp.asarray(seen)))
  assert not np.isnan(out).any()
  if over == 'n':
    np.testing.assert_array_equal(out, np.where(seen[:, None, None, :], plain, 0.0))
  else:
    np.testing.assert_array_equal(out, plain)
  with pytest.raises(ValueError, match='do not fit'):
    cpu_kernels.product(spec, jnp.asarray(x), jnp.asarray(y), jnp.asarray(seen[:, :7]), over)


@needs_kernel
@pytest.mark.parametrize('cache', [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize('rows,slots,size', [
    (4, 64, 256), (2, 70, 37), (1, 16, 16), (9, 33, 20), (8, 5, 3),
    # bfloat16, a multiple of 32 k and at most 8 rows: by the bfloat16 dot-product instruction
    (5, 70, 32), (8, 33, 96), (3, 17, 64), (1, 64, 128), (9, 40, 64)])
def test_keys_of_slot_rows_give_the_same_bits(rows, slots, size, cache):
  """Scores over keys stored as slot rows ([S, H], read 16 x 16 at a time and transposed
  in registers; for many rows transposed once) are the same bits as over keys stored
  [H, S], with and without the slots seen."""
  rng = np.random.default_rng(5)
  q = jnp.asarray(rng.standard_normal((3, 2, rows, size)), jnp.float32)
  keys = rng.standard_normal((3, 2, size, slots)).astype(np.float32)
  by_size, by_slot = jnp.asarray(keys, cache), jnp.asarray(np.swapaxes(keys, -1, -2), cache)
  assert cpu_kernels.kind_of('BKQH,BKSH->BKQS', q, by_slot, cache) == cpu_kernels.kind_of(
      'BKQH,BKHS->BKQS', q, by_size, cache) is not None
  seen = jnp.asarray(rng.random((3, slots)) < 0.7)
  for flags in ({}, {'seen': seen, 'over': 'n'}):
    np.testing.assert_array_equal(
        np.asarray(cpu_kernels.product('BKQH,BKSH->BKQS', q, by_slot, **flags)),
        np.asarray(cpu_kernels.product('BKQH,BKHS->BKQS', q, by_size, **flags)))


@needs_kernel
@pytest.mark.parametrize('spec,x_shape,y_shape', [
    ('BKQH,KSH->BKQS', (64, 1, 4, 256), (1, 512, 256)),  # every row's scores over a shared prefix's keys
    ('BKQS,KHS->BKQH', (64, 1, 4, 512), (1, 256, 512)),  # ... and its values (stored transposed)
    ('BKQH,KSH->BKQS', (3, 2, 5, 38), (2, 48, 38)),  # two key/value heads, 15 rows each
    ('BTKQH,KHS->BTKQS', (2, 3, 2, 1, 64), (2, 64, 32)),  # more leading axes; y [K, C, N]
])
def test_products_over_a_shared_prefix_match_exact_sums(spec, x_shape, y_shape):
  """One y per key/value head, read by every row: one bfloat16 matrix product per head
  (`bf16_shared`), within float32 rounding of the exact sums of the rounded inputs."""
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.standard_normal(x_shape), jnp.float32)
  y = jnp.asarray(rng.standard_normal(y_shape), jnp.bfloat16)
  assert cpu_kernels.kind_of(spec, x, y, jnp.bfloat16) == 'bf16_shared'
  out = jax.jit(lambda x, y: cpu_kernels.product(spec, x, y))(x, y)
  _check(spec, x.astype(jnp.bfloat16), y, out)
  # N not a multiple of 16, or heads that do not match: XLA's.
  assert cpu_kernels.kind_of(spec, x, y[..., :-1] if spec.endswith('S') and 'KHS' in spec else y[:, :-1],
                             jnp.bfloat16) is None
  assert cpu_kernels.kind_of(spec, x, jnp.concatenate([y, y]), jnp.bfloat16) is None


@needs_kernel
@pytest.mark.parametrize('spec,y_shape,over', [
    ('BKQH,BKSH->BKQS', (3, 2, 70, 40), 'n'),  # scores over keys of slot rows
    ('BKQS,BKSH->BKQH', (3, 2, 70, 40), 'k'),  # values
    ('BKQH,BKHS->BKQS', (3, 2, 40, 70), None),
])
def test_a_bfloat16_cache_held_as_bits_gives_the_same_bits(spec, y_shape, over):
  """`product_of_bits`: a bfloat16 y held as its bit patterns (uint16) is read as it is,
  the same sums as over the bfloat16 array, and a bfloat16 x gives those of its float32
  values; anything but a batched product of uint16 is refused."""
  rng = np.random.default_rng(7)
  x = jnp.asarray(rng.standard_normal((3, 2, 4, y_shape[-1] if over == 'k' else 40)), jnp.float32)
  if over == 'k':
    x = jnp.asarray(rng.standard_normal((3, 2, 4, 70)), jnp.float32)
  y = jnp.asarray(rng.standard_normal(y_shape), jnp.bfloat16)
  seen = jnp.asarray(rng.random((3, 70)) < 0.6) if over else None
  if over == 'k':
    x = jnp.where(seen[:, None, None, :], x, 0.0)
  bits = jax.lax.bitcast_convert_type(y, jnp.uint16)
  np.testing.assert_array_equal(
      np.asarray(jax.jit(lambda x, b: cpu_kernels.product_of_bits(spec, x, b, seen, over))(x, bits)),
      np.asarray(cpu_kernels.product(spec, x, y, seen, over)))
  narrow = x.astype(jnp.bfloat16)
  np.testing.assert_array_equal(
      np.asarray(jax.jit(lambda x, b: cpu_kernels.product_of_bits(spec, x, b, seen, over))(narrow, bits)),
      np.asarray(cpu_kernels.product_of_bits(spec, narrow.astype(jnp.float32), bits, seen, over)))
  with pytest.raises(ValueError, match='not a batched product'):
    cpu_kernels.product_of_bits(spec, x, y)


@needs_kernel
def test_dot_runs_the_batched_kernel_and_gradients_follow_einsum(monkeypatch):
  monkeypatch.setenv(cpu_kernels.ENV, '1')
  cpu_kernels.chosen.cache_clear()
  try:
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.standard_normal((3, 1, 4, 32)), jnp.float32)
    y = jnp.asarray(rng.standard_normal((3, 1, 32, 24)), jnp.float32)
    spec = 'BKQH,BKHS->BKQS'
    assert cpu_kernels.used(spec, x, y, jnp.float32)
    np.testing.assert_array_equal(np.asarray(modules.dot(spec, x, y, jnp.float32)),
                                  np.asarray(cpu_kernels.product(spec, x, y)))
    loss = lambda f: lambda x, y: jnp.sum(jnp.sin(f(x, y)))
    ours = jax.grad(loss(lambda x, y: modules.dot(spec, x, y, jnp.float32)), argnums=(0, 1))(x, y)
    ref = jax.grad(loss(lambda x, y: jnp.einsum(spec, x, y)), argnums=(0, 1))(x, y)
    for a, b in zip(ours, ref):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  finally:
    cpu_kernels.chosen.cache_clear()


@pytest.mark.parametrize('spec,x_shape,y_shape,dtype', [
    ('BKQH,BKHS->BKQS', (2, 1, 4, 32), (1, 1, 32, 8), jnp.float32),  # batched products broadcast over the batch
    ('BKQH,KHS->BKQS', (2, 1, 4, 32), (1, 32, 8), jnp.float32),  # ... or y without the batch (a shared prefix)
    ('...D,VD->...V', (2, 32), (64, 32), jnp.bfloat16),
    ('MK,KN->MN', (4, 32), (32, 48), jnp.float32),
    ('MK,KN->MN', (4, 31), (31, 48), jnp.bfloat16),  # K odd
    ('MK,KN->MN', (4, 32), (32, 40), jnp.bfloat16),  # N not a multiple of 16
    ('MK,NK->NM', (4, 32), (48, 32), jnp.bfloat16),  # output in another order
])
def test_other_products_are_xla_s(spec, x_shape, y_shape, dtype):
  x, y = (a.astype(dtype) for a in _inputs(x_shape, y_shape))
  assert not cpu_kernels.applies(spec, x, y, dtype)


def _clear():
  for cached in (cpu_kernels._library, cpu_kernels.isa, cpu_kernels.chosen):
    cached.cache_clear()


def test_without_compiler_or_when_off_xla_s_products(monkeypatch, tmp_path, caplog):
  monkeypatch.setenv('WCSE_JAX_CACHE', str(tmp_path))
  _clear()
  try:
    monkeypatch.setenv('CXX', str(tmp_path / 'no-such-compiler'))
    if 'avx512_bf16' in cpu_kernels._cpu_flags():
      with caplog.at_level('WARNING'):
        assert not cpu_kernels.available()
      assert 'no C++ compiler' in caplog.text
    _clear()
    monkeypatch.delenv('CXX')
    monkeypatch.setenv(cpu_kernels.ENV, '0')
    x, y = _inputs((4, 32), (32, 48))
    assert not cpu_kernels.applies('MK,KN->MN', x, y, jnp.bfloat16)
    assert not cpu_kernels.used('MK,KN->MN', x, y, jnp.bfloat16)
    assert not list(tmp_path.glob('kernels/*.so'))
  finally:
    _clear()


@needs_kernel
def test_the_choice_is_measured_once_per_machine_unless_told(monkeypatch, tmp_path):
  """Unset, `dot` runs ours only where it measured faster than XLA's, and every
  later process reads that measurement; `1` and `0` decide without measuring."""
  monkeypatch.setenv('WCSE_JAX_CACHE', str(tmp_path))
  x, y = _inputs((4, 32), (32, 48))
  _clear()
  try:
    for faster, expected in ((True, True), (False, False)):
      for record in tmp_path.glob('kernels/choice-*.json'):
        record.unlink()
      monkeypatch.delenv(cpu_kernels.ENV, raising=False)
      monkeypatch.setattr(cpu_kernels, '_rates', lambda kind: (200.0, 100.0) if faster else (100.0, 200.0))
      assert cpu_kernels.used('MK,KN->MN', x, y, jnp.bfloat16) is expected
      [record] = tmp_path.glob('kernels/choice-*.json')
      assert json.loads(record.read_text())['bf16']['ours'] is expected
      # Each kind measured on its own, into the same record.
      monkeypatch.setattr(cpu_kernels, '_rates', lambda kind: (100.0, 200.0) if faster else (200.0, 100.0))
      assert cpu_kernels.chosen('f32_batched') is not expected
      # Another process: no measuring, the record decides.
      cpu_kernels.chosen.cache_clear()
      monkeypatch.setattr(cpu_kernels, '_rates', lambda kind: pytest.fail('measured again'))
      assert cpu_kernels.chosen() is expected
      assert cpu_kernels.chosen('f32_batched') is not expected
      cpu_kernels.chosen.cache_clear()
      monkeypatch.setenv(cpu_kernels.ENV, '1')
      assert cpu_kernels.chosen()
      cpu_kernels.chosen.cache_clear()
      monkeypatch.setenv(cpu_kernels.ENV, '0')
      assert not cpu_kernels.used('MK,KN->MN', x, y, jnp.bfloat16)
      _clear()
  finally:
    _clear()


@needs_kernel
@pytest.mark.parametrize('kind', sorted(cpu_kernels.KINDS))
def test_rates_measure_both_products(kind):
  ours, xla = cpu_kernels._rates(kind, repeats=2)
  assert ours > 1 and xla > 1


@needs_kernel
def test_the_choice_can_be_measured_while_a_model_is_traced(monkeypatch, tmp_path):
  monkeypatch.setenv('WCSE_JAX_CACHE', str(tmp_path))
  monkeypatch.delenv(cpu_kernels.ENV, raising=False)
  cpu_kernels.chosen.cache_clear()
  try:
    x, y = _inputs((3, 64), (64, 32))

    def step(carry, _):
      return carry, modules.dot('MK,KN->MN', x, y, jnp.bfloat16)
    out = jax.jit(lambda: jax.lax.scan(step, 0, length=2)[1])()
    assert out.shape == (2, 3, 32)
    [record] = tmp_path.glob('kernels/choice-*.json')
    assert json.loads(record.read_text())['bf16']['ours'] is cpu_kernels.chosen()
  finally:
    cpu_kernels.chosen.cache_clear()


@needs_kernel
@pytest.mark.parametrize('v,b', [(1000, 64), (40000, 16), (77, 48)])  # blocks of 32 rows, the last partial
def test_logits_come_with_their_block_maxima_and_exp_sums(v, b, isa):
  table, hidden = _inputs((v, 64), (b, 64), seed=4)
  logits, maxima, sums = jax.jit(lambda t, h: cpu_kernels.logits_with_statistics(t, h))(table, hidden)
  np.testing.assert_array_equal(np.asarray(logits), np.asarray(cpu_kernels.product('VD,BD->VB', table, hidden)))
  blocks = -(-v // cpu_kernels.STAT_BLOCK)
  padded = np.full((blocks * cpu_kernels.STAT_BLOCK, b), -np.inf)
  padded[:v] = np.asarray(logits, np.float64)
  padded = padded.reshape(blocks, cpu_kernels.STAT_BLOCK, b)
  want_max = padded.max(axis=1)
  np.testing.assert_array_equal(np.asarray(maxima), want_max.astype(np.float32))
  want_sums = np.exp(padded - want_max[:, None, :]).sum(axis=1)
  np.testing.assert_allclose(np.asarray(sums), want_sums, rtol=1e-6)


@needs_kernel
@pytest.mark.parametrize('temperature', [0.0, 0.8])
def test_sampling_from_the_statistics_draws_the_same_tokens(temperature):
  from wcse_jax.sampling.rules import TokenRules, sample_next  # pylint: disable=g-import-not-at-top
  table, hidden = _inputs((5000, 64), (16, 64), seed=5)
  logits, maxima, sums = cpu_kernels.logits_with_statistics(table, hidden)
  keys = jax.random.split(jax.random.key(0), 16)
  rules = TokenRules(temperature=temperature, top_k=40)
  fused = sample_next(logits, keys, rules, vocab_major=True, block_statistics=(maxima, sums))
  plain = sample_next(logits, keys, rules, vocab_major=True)
  np.testing.assert_array_equal(np.asarray(fused[0]), np.asarray(plain[0]))
  np.testing.assert_allclose(np.asarray(fused[1]), np.asarray(plain[1]), rtol=1e-6, atol=1e-5)
  exact = jax.nn.log_softmax(np.asarray(logits, np.float64).T, axis=-1)[np.arange(16), np.asarray(fused[0])]
  np.testing.assert_allclose(np.asarray(fused[1]), exact, rtol=1e-6, atol=1e-5)


@needs_kernel
@pytest.mark.parametrize('v,b,k,kind', [
    (5000, 64, 40, 'normal'),  # a decode step's shape, smaller
    (40020, 80, 40, 'ties'),  # panels of 64 and 16 columns; a last row block of 84 rows; tied rows
    (77, 48, 77, 'normal'),  # k = V: every entry, sorted
    (1000, 16, 1, 'ties'),  # greedy: the first of the largest
    (300, 32, 256, 'ties'),  # the largest k, a buffer that fills
    (3000, 16, 8, 'specials'),  # NaN, infinities and signed zeros in the table
    (4096, 16, 40, 'ascending'),  # every block better than the last: every block enters
])
def test_the_logits_top_k_is_top_k_of_the_logits_to_the_bit(v, b, k, kind, isa):
  """`logits_top_k`: `jax.lax.top_k` of each column of the kernel's logits (values'
  bits and indices, ties to the lower index) and the same statistics, each row's best
  kept by each thread as its row blocks are computed and merged."""
  rng = np.random.default_rng(11)
  table = rng.standard_normal((v, 64)).astype(np.float32)
  if kind == 'ties':
    table = np.round(table[rng.integers(0, v // 4, v)])  # few distinct rows: many equal logits
  elif kind == 'specials':
    rows = rng.integers(0, v, 40)
    table[rows, rng.integers(0, 64, 40)] = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0]), 40)
  elif kind == 'ascending':
    table = table[:1] * np.linspace(-2, 2, v, dtype=np.float32)[:, None]
  table = jnp.asarray(table, jnp.bfloat16)
  hidden = jnp.asarray(np.abs(rng.standard_normal((b, 64))) if kind == 'ascending'
                       else rng.standard_normal((b, 64)), jnp.bfloat16)
  logits, maxima, sums = cpu_kernels.logits_with_statistics(table, hidden)
  values, indices, top_maxima, top_sums = jax.jit(cpu_kernels.logits_top_k, static_argnums=2)(table, hidden, k)
  want = jax.lax.top_k(logits.T, k)
  np.testing.assert_array_equal(np.asarray(values).view(np.int32), np.asarray(want[0]).view(np.int32))
  np.testing.assert_array_equal(indices, want[1])
  np.testing.assert_array_equal(top_maxima, maxima)
  np.testing.assert_array_equal(top_sums, sums)
  with pytest.raises(ValueError, match='k must be in'):
    cpu_kernels.logits_top_k(table, hidden, min(v, 256) + 1)


@needs_kernel
@pytest.mark.parametrize('rules', [
    dict(temperature=0.0), dict(temperature=0.8, top_k=40), dict(temperature=1.3, top_k=40, top_p=0.7),
    dict(temperature=0.7, top_k=7, min_p=0.1),
])
def test_sampling_from_the_kernels_top_k_draws_what_the_whole_logits_do(rules):
  from wcse_jax.sampling.rules import TokenRules, fused_top_k, sample_from_top, sample_next  # pylint: disable=g-import-not-at-top
  table, hidden = _inputs((5000, 64), (16, 64), seed=6)
  rules = TokenRules(**rules)
  k = fused_top_k(rules, 5000)
  assert k == (rules.top_k or 1)
  keys = jax.random.split(jax.random.key(3), 16)
  logits, maxima, sums = cpu_kernels.logits_with_statistics(table, hidden)
  whole = jax.jit(sample_next, static_argnums=2, static_argnames='vocab_major')(
      logits, keys, rules, vocab_major=True, block_statistics=(maxima, sums))
  values, indices, maxima, sums = cpu_kernels.logits_top_k(table, hidden, k)
  top = jax.jit(sample_from_top, static_argnums=4)(values, indices, (maxima, sums), keys, rules)
  np.testing.assert_array_equal(top[0], whole[0])
  np.testing.assert_array_equal(top[1], whole[1])
  assert fused_top_k(TokenRules(temperature=0.8), 5000) is None  # every logit drawn from
  assert fused_top_k(TokenRules(temperature=0.8, top_k=5000), 5000) is None  # as sample_next: all of them
  assert fused_top_k(TokenRules(temperature=0.8, top_k=257), 5000) is None  # beyond the kernel's limit
  with pytest.raises(ValueError, match='need every logit'):
    sample_from_top(values, indices, (maxima, sums), keys, TokenRules(temperature=0.8))


@needs_kernel
@pytest.mark.parametrize('shape', [(64, 1, 1, 4, 1024), (3, 2, 5, 3, 37), (2, 1, 1, 1, 1), (1, 2, 3, 2, 17)])
def test_the_attention_softmax_matches_jax(shape):
  """`masked_softmax`: jax.nn.softmax of the masked scores within a few float32 ulp
  (our exp, another summation order); masked slots exactly 0, a row that sees nothing
  uniform (as jax's); gradients the softmax's, none into masked scores."""
  rng = np.random.default_rng(8)
  b, k, t, g, s = shape
  x = jnp.asarray(rng.standard_normal(shape) * 8, jnp.float32)
  mask = rng.random((b, t, s)) < 0.6
  mask[0, 0] = False
  if s > 1:
    mask[-1, -1, 1:] = False  # one slot seen
  mask = jnp.asarray(mask)
  wide = mask[:, None, :, None, :]
  ref = lambda x: jax.nn.softmax(jnp.where(wide, x, -2.3819763e38), axis=-1)
  ours = np.asarray(jax.jit(cpu_kernels.masked_softmax)(x, mask))
  np.testing.assert_allclose(ours, np.asarray(ref(x)), rtol=2e-6, atol=1e-7)
  seen = np.broadcast_to(np.asarray(wide), shape)
  sees_some = np.broadcast_to(np.asarray(mask).any(-1)[:, None, :, None, None], shape)
  assert (ours[~seen & sees_some] == 0).all()
  np.testing.assert_allclose(ours[0, :, 0], 1.0 / s, rtol=1e-6)
  np.testing.assert_allclose(ours.sum(-1), 1.0, rtol=1e-5)
  w = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  loss = lambda f: lambda x: jnp.sum(jnp.sin(f(x)) * w)
  got, want = jax.grad(loss(lambda x: cpu_kernels.masked_softmax(x, mask)))(x), jax.grad(loss(ref))(x)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='does not fit'):
    cpu_kernels.masked_softmax(x, mask[:, :, :-1] if s > 1 else mask[:1, :1, :0])


@needs_kernel
@pytest.mark.parametrize('widths', [(512, 64, 64, 128, 64), (37, 5, 16, 3), (16,), (48, 32)])
def test_the_softmax_in_parts_is_the_softmax_of_the_whole(widths):
  """`masked_softmax_parts`: the parts' probabilities are those of `masked_softmax` over
  the parts concatenated (bit for bit where every part is a whole number of 16 slots:
  the same sums), a gap stands for masked slots, a row's result does not depend on a
  gap past its last seen slot, and 'bfloat16' rounds as XLA's conversion does;
  gradients (through a rounding: 1) are the whole softmax's."""
  rng = np.random.default_rng(sum(widths))
  b, k, t, g = 3, 2, 1, 4
  gap = widths[-1]  # the last width: a gap (no keys) in the layout
  real = widths[:-1] or widths
  xs = [jnp.asarray(rng.standard_normal((b, k, t, g, w)) * 6, jnp.float32) for w in real]
  masks = [rng.random((b, t, w)) < 0.7 for w in real]
  masks[0][0] = False
  for m in masks[1:]:
    m[0] = False  # row 0 sees nothing: uniform over every slot, the gap's too
  masks = [jnp.asarray(m) for m in masks]
  layout = [None] * len(real) + ([gap] if len(widths) > 1 else [])
  whole_x = jnp.concatenate(xs + ([jnp.zeros((b, k, t, g, gap))] if len(widths) > 1 else []), axis=-1)
  whole_m = jnp.concatenate(masks + ([jnp.zeros((b, t, gap), bool)] if len(widths) > 1 else []), axis=-1)
  whole = np.asarray(cpu_kernels.masked_softmax(whole_x, whole_m))
  kinds = ['float32', 'bfloat16'] * len(real)
  parts = jax.jit(lambda xs, ms: cpu_kernels.masked_softmax_parts(xs, ms, layout, kinds[:len(real)]))(xs, masks)
  ends = np.cumsum(real)
  for i, (p, kind) in enumerate(zip(parts, kinds)):
    want = whole[..., ends[i] - real[i]:ends[i]]
    if kind != 'float32':
      want = np.asarray(jnp.asarray(want).astype(jnp.bfloat16).astype(jnp.float32))
    assert p.dtype == (jnp.bfloat16 if kind == 'bfloat16' else jnp.float32)
    got = np.asarray(p.astype(jnp.float32)); want = want.astype(np.float32)
    if all(w % 16 == 0 for w in widths):
      np.testing.assert_array_equal(got, want)
    else:
      np.testing.assert_allclose(got, want, rtol=1e-6 if kind == 'float32' else 8e-3, atol=1e-7)
  np.testing.assert_allclose(np.asarray(parts[0][0, :, 0]), 1.0 / sum(widths) if len(widths) > 1 else 1.0 / widths[0], rtol=1e-6)
  # without the gap, rows that see something are unchanged (bits), row 0 is uniform over fewer slots
  if len(widths) > 1:
    no_gap = cpu_kernels.masked_softmax_parts(xs, masks, [None] * len(real), kinds[:len(real)])
    for p, q in zip(parts, no_gap):
      np.testing.assert_array_equal(np.asarray(p[1:].astype(jnp.float32)), np.asarray(q[1:].astype(jnp.float32)))
  w = [jnp.asarray(rng.standard_normal(x.shape), jnp.float32) for x in xs]
  loss_parts = lambda xs: sum(jnp.sum(jnp.sin(p.astype(jnp.float32)) * wi) for p, wi in
                              zip(cpu_kernels.masked_softmax_parts(xs, masks, layout, ['float32'] * len(xs)), w))
  def loss_whole(xs):
    full = jnp.concatenate(xs + ([jnp.zeros((b, k, t, g, gap))] if len(widths) > 1 else []), axis=-1)
    p = cpu_kernels.masked_softmax(full, whole_m)
    return sum(jnp.sum(jnp.sin(p[..., e - r:e]) * wi) for e, r, wi in zip(ends, real, w))
  for got, want in zip(jax.grad(loss_parts)(xs), jax.grad(loss_whole)(xs)):
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='one None per part'):
    cpu_kernels.masked_softmax_parts(xs, masks, [None] * (len(real) + 1), kinds[:len(real)])
  with pytest.raises(ValueError, match='do not fit'):
    cpu_kernels.masked_softmax_parts(xs, masks, layout, ['float16'] * len(real))


@needs_kernel
@pytest.mark.parametrize('shape', [(64, 1, 640), (3, 5, 256), (2, 37), (1, 1, 16)])
@pytest.mark.parametrize('add', [False, True])
def test_rms_norm_matches_jax(shape, add):
  """`rms_norm`: the reference's values within a float32 ulp or two (another order of
  the sum of squares; bfloat16 results within one bfloat16 ulp), each row's the same
  whatever the batch; gradients the reference's."""
  rng = np.random.default_rng(len(shape) + add)
  x = jnp.asarray(rng.standard_normal(shape) * 3, jnp.float32)
  scale = jnp.asarray(rng.standard_normal(shape[-1:]) * 0.5, jnp.bfloat16)
  residual = jnp.asarray(rng.standard_normal(shape), jnp.float32) if add else None
  for dtype in (jnp.float32, jnp.bfloat16):
    got = jax.jit(lambda x, s, r: cpu_kernels.rms_norm(x, s, 1e-6, r, dtype))(x, scale, residual)
    want = cpu_kernels.rms_norm_reference(x, scale, 1e-6, residual, dtype)
    assert got.dtype == dtype and got.shape == shape
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32),
                               rtol=4e-7 if dtype == jnp.float32 else 8e-3, atol=1e-6)
  one = cpu_kernels.rms_norm(x.reshape(-1, shape[-1])[-1:], scale, 1e-6,
                             None if residual is None else residual.reshape(-1, shape[-1])[-1:])
  np.testing.assert_array_equal(np.asarray(one[0]), np.asarray(cpu_kernels.rms_norm(x, scale, 1e-6, residual)).reshape(-1, shape[-1])[-1])
  w = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  loss = lambda f: lambda x, s, r: jnp.sum(jnp.sin(f(x, s, 1e-6, r)) * w)
  got = jax.grad(loss(cpu_kernels.rms_norm), argnums=(0, 1, 2) if add else (0, 1))(x, scale, residual)
  want = jax.grad(loss(cpu_kernels.rms_norm_reference), argnums=(0, 1, 2) if add else (0, 1))(x, scale, residual)
  for g, h in zip(got, want):
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(h, np.float32), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='rms_norm'):
    cpu_kernels.rms_norm(x.astype(jnp.bfloat16), scale, 1e-6)


@needs_kernel
@pytest.mark.parametrize('shape', [(64, 1, 2048), (3, 37), (5,), (4, 70000)])
def test_geglu_matches_jax(shape):
  """`geglu`: gelu_tanh(gate) * up within a few float32 ulp of the exact value over
  the whole range of gate (jax's `1 + tanh` loses digits where gate is far below 0:
  there within 1e-5 of it), its bfloat16 result that float32 rounded; gradients jax's."""
  rng = np.random.default_rng(shape[-1])
  gate = rng.standard_normal(shape).astype(np.float32) * 4
  gate.reshape(-1)[:6] = [0.0, -0.0, 1e-30, -60.0, 60.0, 1e4][:gate.size]
  gate, up = jnp.asarray(gate), jnp.asarray(rng.standard_normal(shape), jnp.float32)
  x = np.asarray(gate, np.float64)
  two_y = np.minimum(-2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x**3), 700)
  exact = x / (1 + np.exp(two_y)) * np.asarray(up, np.float64)
  got = np.asarray(jax.jit(cpu_kernels.geglu)(gate, up))
  assert got.dtype == np.float32 and got.shape == shape
  # a float32 y carries a relative error of an ulp or so, e^(-2y) that much times |2y|
  assert (np.abs(got - exact) <= (3e-6 + 3e-7 * np.abs(two_y)) * np.abs(exact) + 1e-37).all()
  np.testing.assert_allclose(got, np.asarray(jax.nn.gelu(gate, approximate=True) * up), rtol=1e-5, atol=1e-5)
  rounded = jax.jit(lambda g, u: cpu_kernels.geglu(g, u, jnp.bfloat16))(gate, up)
  assert rounded.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(rounded, np.float32), np.asarray(jnp.asarray(got).astype(jnp.bfloat16), np.float32))
  w = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  loss = lambda f: lambda g, u: jnp.sum(f(g, u) * w)
  got = jax.grad(loss(cpu_kernels.geglu), argnums=(0, 1))(gate, up)
  want = jax.grad(loss(lambda g, u: jax.nn.gelu(g, approximate=True) * u), argnums=(0, 1))(gate, up)
  for g, h in zip(got, want):
    np.testing.assert_allclose(np.asarray(g), np.asarray(h), rtol=1e-6, atol=1e-6)
  with pytest.raises(ValueError, match='geglu'):
    cpu_kernels.geglu(gate, up[..., :1])


@needs_kernel
@pytest.mark.parametrize('shape', [(64, 1, 4, 256), (2, 7, 1, 32), (1, 3, 2, 40)])
def test_norm_rope_matches_jax(shape):
  """`norm_rope`: the model's head norm, rotary embedding and query scaling within a
  float32 ulp or two (another order of the sum of squares); gradients the reference's."""
  from wcse_jax.model.modules import rope_rotation
  rng = np.random.default_rng(shape[-1])
  b, t, n, h = shape
  x = jnp.asarray(rng.standard_normal(shape) * 3, jnp.float32)
  scale = jnp.asarray(rng.standard_normal(h) * 0.5, jnp.bfloat16)
  positions = jnp.asarray(rng.integers(0, 4096, (b, t)), jnp.int32)
  sin, cos = rope_rotation(positions, h, base=10_000.0)
  got = jax.jit(lambda x: cpu_kernels.norm_rope(x, scale, 1e-6, sin, cos, 0.0625))(x)
  want = cpu_kernels.norm_rope_reference(x, scale, 1e-6, sin, cos, 0.0625)
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, atol=1e-6)
  narrow = cpu_kernels.norm_rope(x, scale, 1e-6, sin, cos, 0.0625, jnp.bfloat16)
  assert narrow.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(narrow, np.float32), np.asarray(got.astype(jnp.bfloat16), np.float32))
  w = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  loss = lambda f: lambda x, s: jnp.sum(jnp.sin(f(x, s, 1e-6, sin, cos, 0.0625)) * w)
  for g, r in zip(jax.grad(loss(cpu_kernels.norm_rope), argnums=(0, 1))(x, scale),
                  jax.grad(loss(cpu_kernels.norm_rope_reference), argnums=(0, 1))(x, scale)):
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(r, np.float32), rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match='norm_rope'):
    cpu_kernels.norm_rope(x, scale, 1e-6, sin[:, :, :, :-1], cos, 1.0)


_SPECIALS = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0], np.float32)


@needs_kernel
@pytest.mark.parametrize('kind', ['normal', 'ties', 'specials', 'ascending', 'descending'])
def test_top_k_is_jaxs_top_k_to_the_bit(kind):
  """Values (bits: NaN, -0) and indices (ties to the lower index) for k from 1 to every
  entry, rows shorter and longer than the kernel's buffer, entries in either order."""
  rng = np.random.default_rng(['normal', 'ties', 'specials', 'ascending', 'descending'].index(kind))
  for _ in range(25):
    rows, n = int(rng.integers(1, 6)), int(rng.choice([int(rng.integers(1, 40)), int(rng.integers(200, 1500))]))
    k = int(rng.integers(1, min(n, cpu_kernels._TOP_K_LIMIT) + 1))
    if kind == 'ties':
      x = rng.integers(-3, 4, (rows, n)).astype(np.float32)
    elif kind == 'specials':
      x = rng.choice(_SPECIALS, (rows, n))
    else:
      x = rng.standard_normal((rows, n)).astype(np.float32)
      x = {'ascending': np.sort(x), 'descending': -np.sort(x)}.get(kind, x)
    assert cpu_kernels.top_k_applies(x, k)
    got = jax.jit(lambda x, k=k: cpu_kernels.top_k(x, k))(x)
    want = jax.lax.top_k(x, k)
    np.testing.assert_array_equal(np.asarray(got[0]).view(np.int32), np.asarray(want[0]).view(np.int32))
    np.testing.assert_array_equal(got[1], want[1])


@needs_kernel
def test_top_k_keeps_leading_axes_and_leaves_what_it_does_not_run_to_xla():
  x = np.random.default_rng(0).standard_normal((3, 4, 300)).astype(np.float32)
  got, want = cpu_kernels.top_k(x, 9), jax.lax.top_k(x, 9)
  assert got[0].shape == (3, 4, 9) and got[1].dtype == jnp.int32
  np.testing.assert_array_equal(got[1], want[1])
  np.testing.assert_array_equal(jax.vmap(lambda r: cpu_kernels.top_k(r, 9)[1])(x), want[1])
  for other, k in [(x.astype(jnp.bfloat16), 9), (x, cpu_kernels._TOP_K_LIMIT + 1), (x[..., :5], 6)]:
    assert not cpu_kernels.top_k_applies(other, k)
  np.testing.assert_array_equal(cpu_kernels.top_k(x, 257)[1], jax.lax.top_k(x, 257)[1])


@needs_kernel
def test_the_instruction_peak_is_a_roof_over_our_products():
  """The dot-product instruction from registers (the roofline's compute roof) runs
  faster than a product of it can, and each thread adds at most its own rate (less
  where threads share a core)."""
  from wcse_jax import perf  # pylint: disable=g-import-not-at-top
  one = max(cpu_kernels.instruction_peak_flops(threads=1, seconds=0.05) for _ in range(3))
  every = perf.instruction_peak_flops()
  product = perf.kernel_matmul_peak_flops(n=1024, repeats=3)
  assert every > product > 0
  threads = len(__import__('os').sched_getaffinity(0))
  assert 0.8 * one < every < 1.2 * threads * one
