"""The benchmarks' yardsticks and profile summaries (`wcse_jax.perf`)."""

import jax
import jax.numpy as jnp
import pytest

from wcse_jax import perf


def test_a_trace_summary_counts_the_jitted_work_once(tmp_path):
  product = jax.jit(lambda x: (x @ x).sum())
  x = jnp.ones((256, 256))
  product(x).block_until_ready()
  with jax.profiler.trace(str(tmp_path)):
    for _ in range(3):
      product(x).block_until_ready()
  summary = perf.trace_summary(tmp_path)
  assert 0 < summary['device_busy_ms'] <= summary['span_ms']
  mine = [op for op in summary['top'] if op['module'].startswith('jit_')]
  assert mine == summary['top'] and all(op['count'] % 3 == 0 for op in mine)
  assert sum(op['ms'] for op in summary['top_kinds']) == pytest.approx(summary['kernel_ms'], rel=1e-3, abs=1e-3)


def test_a_folder_without_a_trace_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='No \\*.trace.json.gz'):
    perf.trace_summary(tmp_path)


def test_the_gpu_yardsticks_are_none_without_a_cuda_gpu():
  torch = pytest.importorskip('torch')
  if torch.cuda.is_available():
    pytest.skip('a CUDA GPU is here')
  assert perf.torch_device_copy_bandwidth(gib=0.01) is None
  assert perf.torch_matmul_peak_flops(jnp.bfloat16, n=64, device='cuda') is None
  assert perf.torch_matmul_peak_flops(jnp.bfloat16, n=64, repeats=1) > 0
