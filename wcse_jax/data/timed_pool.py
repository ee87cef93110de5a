"""Worker processes that run one function, one call at a time, each call under a hard time limit.

    with TimedPool(math_answers_match, workers=2, timeout_s=5.0, memory_limit_mb=2048) as pool:
      pool.map([('1/2', '0.5'), ('(10^{100})!', '1')])
      # [Outcome('ok', True), Outcome('timeout', None)]

A call that runs past `timeout_s` of wall-clock time is stopped by killing its
worker with SIGKILL, which no signal handler, C loop or swap storm can delay; a
fresh worker takes its place. A worker that dies mid-call gives 'crash', an
exception in the call gives 'error', and each worker's address space is capped
(RLIMIT_AS), so a call that asks for too much memory fails inside the worker.

Workers are forked from a forkserver that has imported `preload` once, so a
replacement starts in milliseconds, the parent may hold threads (JAX) safely,
and, unlike plain multiprocessing, the caller's __main__ is not re-imported in
workers (no `if __name__ == '__main__'` guard needed, no JAX import per worker).
(concurrent.futures cannot do this: it cannot stop one overrunning task, and a
dead worker breaks its whole pool.)
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import resource
import signal
import sys
import time
import types
from collections.abc import Callable, Sequence
from multiprocessing import connection

_STARTUP_TIMEOUT_S = 120.0  # first start imports the preloaded modules (sympy: seconds)


@dataclasses.dataclass(frozen=True)
class Outcome:
  status: str  # 'ok', 'timeout', 'crash' or 'error'
  value: object = None  # the return value when 'ok'; the exception's type name when 'error'


def _serve(conn, fn: Callable, memory_limit_bytes: int | None) -> None:
  """A worker's life: cap memory, say ready, then answer calls until the pipe closes."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
  if memory_limit_bytes:
    try:
      resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    except (ValueError, OSError):  # macOS refuses RLIMIT_AS; the time limit still holds
      pass
  conn.send('ready')
  while True:
    try:
      args = conn.recv()
    except EOFError:
      return
    try:
      outcome = Outcome('ok', fn(*args))
    except Exception as e:  # pylint: disable=broad-except
      outcome = Outcome('error', type(e).__name__)
    conn.send(outcome)


@dataclasses.dataclass
class _Worker:
  process: multiprocessing.Process
  conn: connection.Connection


class TimedPool:
  """`workers` processes running the module-level function `fn`; use as a context manager."""

  def __init__(
      self,
      fn: Callable,
      *,
      workers: int,
      timeout_s: float,
      memory_limit_mb: int | None = None,
      preload: Sequence[str] = (),
  ):
    if workers < 1 or timeout_s <= 0:
      raise ValueError(f'need workers >= 1 and timeout_s > 0, got {workers} and {timeout_s}')
    methods = multiprocessing.get_all_start_methods()
    self._context = multiprocessing.get_context('forkserver' if 'forkserver' in methods else 'spawn')
    if preload and self._context.get_start_method() == 'forkserver':
      self._context.set_forkserver_preload(list(preload))
    self._fn = fn
    self._timeout_s = timeout_s
    self._memory_limit_bytes = memory_limit_mb * 2**20 if memory_limit_mb else None
    self._workers: list[_Worker] = []
    self.replaced = 0  # workers killed after a timeout or found dead
    try:
      for _ in range(workers):
        self._workers.append(self._start())
    except BaseException:
      self.close()
      raise

  def _start(self) -> _Worker:
    ours, theirs = self._context.Pipe()
    process = self._context.Process(
        target=_serve, args=(theirs, self._fn, self._memory_limit_bytes), daemon=True
    )
    # A new process normally re-imports the parent's __main__ (a script, or e.g.
    # wcse_jax.sample with all of JAX). Workers need none of it: show them a bare one.
    main = sys.modules['__main__']
    sys.modules['__main__'] = types.ModuleType('__main__')
    try:
      process.start()
    finally:
      sys.modules['__main__'] = main
    theirs.close()
    worker = _Worker(process, ours)
    if not ours.poll(_STARTUP_TIMEOUT_S) or ours.recv() != 'ready':
      self._stop(worker)
      raise RuntimeError(f'a worker process did not start within {_STARTUP_TIMEOUT_S:.0f}s')
    return worker

  @staticmethod
  def _stop(worker: _Worker) -> None:
    worker.conn.close()
    worker.process.kill()
    worker.process.join()

  def _replace(self, index: int) -> None:
    self._stop(self._workers[index])
    self._workers[index] = self._start()
    self.replaced += 1

  def map(self, calls: Sequence[tuple]) -> list[Outcome]:
    """fn(*args) for each args tuple, spread over the workers; outcomes in input order."""
    if not self._workers:
      raise RuntimeError('this TimedPool is closed')
    outcomes: list[Outcome | None] = [None] * len(calls)
    waiting = collections.deque(range(len(calls)))
    running: dict[int, tuple[int, float]] = {}  # worker index -> (call index, deadline)
    try:
      while waiting or running:
        self._hand_out(calls, waiting, running)
        self._collect(outcomes, running)
    except BaseException:
      for w in running:  # interrupted (Ctrl-C): their late answers must not reach a later map
        self._replace(w)
      raise
    return outcomes

  def _hand_out(self, calls, waiting: collections.deque, running: dict) -> None:
    """Gives each idle worker the next waiting call."""
    for w in range(len(self._workers)):
      if w in running or not waiting:
        continue
      i = waiting.popleft()
      try:
        self._workers[w].conn.send(calls[i])
      except OSError:  # the worker died while idle
        self._replace(w)
        waiting.appendleft(i)
        continue
      running[w] = (i, time.monotonic() + self._timeout_s)

  def _collect(self, outcomes: list, running: dict) -> None:
    """Waits for an answer or the next deadline; replaces workers that died or overran."""
    by_conn = {self._workers[w].conn: w for w in running}
    next_deadline = min(deadline for _, deadline in running.values())
    for conn in connection.wait(list(by_conn), timeout=max(0.0, next_deadline - time.monotonic())):
      w = by_conn[conn]
      i, _ = running.pop(w)
      try:
        outcomes[i] = conn.recv()
      except (EOFError, OSError):
        outcomes[i] = Outcome('crash')
        self._replace(w)
    now = time.monotonic()
    for w, (i, deadline) in list(running.items()):
      if deadline <= now:
        outcomes[i] = Outcome('timeout')
        del running[w]
        self._replace(w)

  def close(self) -> None:
    for worker in self._workers:
      self._stop(worker)
    self._workers = []

  def __enter__(self) -> TimedPool:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()
