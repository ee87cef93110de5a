"""Starting a job of several JAX processes on this machine: CPU devices, a local
coordinator, gloo collectives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from conftest import REPO


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def env(**extra) -> dict:
  out = dict(os.environ, HF_HUB_OFFLINE='1', TQDM_DISABLE='1', JAX_PLATFORMS='cpu', **extra)
  out.pop('XLA_FLAGS', None)  # one CPU device per process
  return out


def start(
    command: list[str], num_processes: int, *, per_process=None, extra_env=None, **popen
) -> list[subprocess.Popen]:
  """Starts `command` as process 0..n-1 of one job; `per_process(i)` adds arguments to process i."""
  port = free_port()
  return [
      subprocess.Popen(
          [*command, f'--coordinator_address=127.0.0.1:{port}', f'--num_processes={num_processes}',
           f'--process_id={i}', *(per_process(i) if per_process else [])],
          cwd=REPO, env=env(**(extra_env or {})), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen,
      )
      for i in range(num_processes)
  ]


def kill_when(processes: list[subprocess.Popen], ready, *, timeout: float = 300, poll: float = 0.005) -> None:
  """SIGKILLs every process (process 1 first, as a host dying; then the rest, as a scheduler
  stopping the job) once `ready()` holds, a process has exited, or `timeout` passed."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and all(p.poll() is None for p in processes) and not ready():
    time.sleep(poll)
  for p in processes[1:] + processes[:1]:
    p.send_signal(signal.SIGKILL)
  wait(processes)


def wait(processes: list[subprocess.Popen], timeout: float = 600) -> list[tuple[int, str, str]]:
  """(return code, stdout, stderr) of each process; kills them all if one overruns."""
  results = []
  try:
    for p in processes:
      out, err = p.communicate(timeout=timeout)
      results.append((p.returncode, out, err))
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
        p.communicate()
  return results


def run(command: list[str], num_processes: int, **kwargs) -> list[tuple[int, str, str]]:
  """Runs the job to its end; asserts every process exits 0."""
  results = wait(start(command, num_processes, **kwargs))
  for i, (code, _, err) in enumerate(results):
    assert code == 0, f'process {i} exited {code}:\n{err[-3000:]}'
  return results
