"""A stand-in object store for tests (`standin://bucket/...`): objects are files under
$WCSE_JAX_STANDIN_ROOT, kept by an object store's rules. An object is written whole
when its writer closes, or not at all; nothing appends to an object or renames one."""

from __future__ import annotations

import io
import os
import uuid

import fsspec
import upath.registry
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from upath.implementations.cloud import CloudPath

PROTOCOL = 'standin'
ROOT_ENV = 'WCSE_JAX_STANDIN_ROOT'


class _Upload(io.BytesIO):
  """Bytes kept in memory until close, then put in one step (a temporary name and a rename)."""

  def __init__(self, target: str):
    super().__init__()
    self.target = target

  def close(self):
    if not self.closed:
      os.makedirs(os.path.dirname(self.target), exist_ok=True)
      tmp = f'{self.target}.upload-{uuid.uuid4().hex}'
      with open(tmp, 'wb') as f:
        f.write(self.getvalue())
      os.replace(tmp, self.target)
    super().close()


class StandInStore(DirFileSystem):
  protocol = PROTOCOL
  sep = '/'  # a class attribute, as path classes read it from the class

  def __init__(self, **storage_options):
    super().__init__(path=os.environ[ROOT_ENV], fs=LocalFileSystem(auto_mkdir=True), **storage_options)

  @classmethod
  def _strip_protocol(cls, path):
    path = path[0] if isinstance(path, list) else path
    return path.removeprefix(f'{PROTOCOL}://').rstrip('/')

  def open(self, path, mode='rb', **kwargs):
    if 'a' in mode or '+' in mode:
      raise OSError(f'{PROTOCOL}: an object store cannot append to or update {path}')
    if 'w' in mode or 'x' in mode:
      upload = _Upload(self.fs._strip_protocol(self._join(self._strip_protocol(path))))
      return upload if 'b' in mode else io.TextIOWrapper(upload, encoding=kwargs.get('encoding') or 'utf-8')
    return super().open(path, mode, **kwargs)

  def mv(self, *args, **kwargs):
    raise OSError(f'{PROTOCOL}: an object store cannot rename atomically')

  rename = mv


class StandInPath(CloudPath):
  """Paths on the stand-in store, handled as `gs://` and `s3://` paths are."""

  __slots__ = ()


def register() -> None:
  fsspec.register_implementation(PROTOCOL, StandInStore, clobber=True)
  upath.registry.register_implementation(PROTOCOL, StandInPath, clobber=True)
