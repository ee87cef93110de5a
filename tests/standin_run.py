"""`python tests/standin_run.py MODULE ARGS...`: runs `python -m MODULE ARGS...` with the
stand-in object store (`standin://`) registered."""

import runpy
import sys

import objectstore

if __name__ == '__main__':
  objectstore.register()
  module = sys.argv[1]
  sys.argv = [module, *sys.argv[2:]]
  runpy.run_module(module, run_name='__main__', alter_sys=True)
