"""Every `>>>` example in the package's docstrings runs, as a user would copy it."""

import doctest
import importlib
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'wcse_jax'
WITH_EXAMPLES = sorted(
    '.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts)
    for path in PACKAGE.rglob('*.py') if '>>>' in path.read_text()
)


def test_examples_were_found():
  assert len(WITH_EXAMPLES) >= 5, WITH_EXAMPLES


@pytest.mark.parametrize('module', WITH_EXAMPLES)
def test_docstring_examples_run(module):
  result = doctest.testmod(
      importlib.import_module(module), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
      verbose=False, report=True,
  )
  assert result.attempted > 0 and result.failed == 0, f'{result.failed} of {result.attempted} failed'
