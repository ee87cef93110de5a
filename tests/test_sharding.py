"""A (data=2, model=2) mesh of four CPU devices gives the logits of one device."""

import numpy as np

from conftest import run_with_devices

SCRIPT = '''
import sys, numpy as np, jax, jax.numpy as jnp
from wcse_jax import parallel
from wcse_jax.checkpoints import load_model
mesh = parallel.make_mesh(data={data}, model={model})
loaded = load_model({directory!r}, mesh=mesh, dtype=jnp.float32, with_tokenizer=False)
specs = {{str(p): tuple(leaf.sharding.spec) for p, leaf in jax.tree_util.tree_leaves_with_path(loaded.params)}}
tokens = np.arange(1, 41, dtype=np.int32).reshape(4, 10) % 300
positions = np.broadcast_to(np.arange(10), (4, 10))
fn = jax.jit(lambda params, t, p: __import__('flax').nnx.merge(loaded.graphdef, params)(t, p)[0])
logits = fn(loaded.params, jnp.asarray(tokens), jnp.asarray(positions))
np.save({out!r}, np.asarray(logits))
print(sum('model' in str(s) for s in specs.values()), sum('data' in str(s) for s in specs.values()))
'''


def test_four_devices_match_one(tiny_hf, tmp_path):
  directory, _ = tiny_hf[3]
  outputs = {}
  for data, model in ((1, 1), (2, 2)):
    out = tmp_path / f'{data}x{model}.npy'
    code = SCRIPT.format(data=data, model=model, directory=str(directory), out=str(out))
    printed = run_with_devices(code, num_devices=data * model)
    outputs[data, model] = np.load(out)
    if (data, model) == (2, 2):
      num_model_sharded = int(printed.split()[0])
      assert num_model_sharded >= 6  # q, k, v, o, gate, up, down, embedding...
  np.testing.assert_allclose(outputs[2, 2], outputs[1, 1], atol=1e-5, rtol=1e-5)
