"""Page tables on the host: the pages each sequence holds, shared by reference count.

The device holds the page pools (`wcse_jax.model.paged`); which page holds
which positions of which sequence is decided here and handed to each call
as tables. A sequence is a list of page numbers per kind of layer, entry i
for its positions `i * page_size` onwards (`NULL_PAGE` where it holds none).

    tables = PageTables({'global': 64, 'local': 24}, page_size=4, width=8,
                        windows={'global': None, 'local': 6})
    prefix = tables.new()
    tables.grow(prefix, 10)                  # positions 0..9: 3 pages
    problem, copies = tables.fork(prefix, 10)  # shares 2, copies the third
    tables.grow(problem, 15)

A fork shares every whole page the child can still see and copies the page
where parent and child part (`copies` lists (kind, source, target) for the
device); `trim` gives back the pages of local layers that have left the
window; `free` gives back a sequence's pages. A page returns to the free
list when no sequence holds it.
"""

from __future__ import annotations

import itertools

import numpy as np

from wcse_jax.model.paged import NULL_PAGE, pages_for


class PagesExhaustedError(RuntimeError):
  """The page pool holds too few pages for the sequences asked of it."""


Sequence = dict  # kind -> list[int]


class PageTables:
  """Free lists and reference counts of one page pool per kind of layer."""

  def __init__(
      self,
      num_pages: dict[str, int],
      *,
      page_size: int,
      width: int,
      windows: dict[str, int | None],
  ):
    self.page_size = page_size
    self.width = width
    self.windows = windows
    self.free_pages = {kind: list(range(n - 1, NULL_PAGE, -1)) for kind, n in num_pages.items()}
    self.refs = {kind: np.zeros(n, np.int32) for kind, n in num_pages.items()}

  def new(self) -> Sequence:
    return {kind: [] for kind in self.free_pages}

  def _take(self, kind: str) -> int:
    if not self.free_pages[kind]:
      raise PagesExhaustedError(
          f'The {kind} page pool ({len(self.refs[kind]) - 1} pages) is exhausted.'
      )
    page = self.free_pages[kind].pop()
    self.refs[kind][page] = 1
    return page

  def _hold(self, kind: str, page: int):
    if page != NULL_PAGE:
      self.refs[kind][page] += 1

  def _drop(self, kind: str, page: int):
    if page == NULL_PAGE:
      return
    self.refs[kind][page] -= 1
    if self.refs[kind][page] == 0:
      self.free_pages[kind].append(page)

  def first_seen(self, kind: str, position: int) -> int:
    """The first logical page a query at `position` (or later) can see."""
    window = self.windows[kind]
    return 0 if window is None else max(0, position - window + 1) // self.page_size

  def adopt(self, seq: Sequence):
    """Holds the pages of `seq`, a sequence of another `PageTables` over the same pools
    (a prefix kept from one run to the next), as if this one had given them."""
    for kind, entries in seq.items():
      for page in entries:
        if page != NULL_PAGE:
          if self.refs[kind][page] == 0:
            self.free_pages[kind].remove(page)
          self.refs[kind][page] += 1

  def grow(self, seq: Sequence, end: int):
    """Gives `seq` pages for every position below `end`."""
    needed = pages_for(end, self.page_size)
    if needed > self.width:
      raise PagesExhaustedError(
          f'{end} positions need {needed} pages; a table holds {self.width}.'
      )
    for kind, entries in seq.items():
      while len(entries) < needed:
        entries.append(self._take(kind))

  def fork(self, parent: Sequence, length: int) -> tuple[Sequence, list[tuple[str, int, int]]]:
    """A sequence continuing `parent`'s first `length` positions, and the page copies it needs."""
    child, copies = self.new(), []
    whole, partial = divmod(length, self.page_size)
    for kind, entries in parent.items():
      first = self.first_seen(kind, length)
      mine = child[kind]
      for i in range(whole):
        page = entries[i] if i >= first else NULL_PAGE
        self._hold(kind, page)
        mine.append(page)
      if partial:
        page = self._take(kind)
        copies.append((kind, entries[whole], page))
        mine.append(page)
    return child, copies

  def trim(self, seq: Sequence, position: int):
    """Gives back the pages a query at `position` (or later) can no longer see."""
    for kind, entries in seq.items():
      for i in range(min(self.first_seen(kind, position), len(entries))):
        self._drop(kind, entries[i])
        entries[i] = NULL_PAGE

  def free(self, seq: Sequence):
    for kind, entries in seq.items():
      for page in entries:
        self._drop(kind, page)
      entries.clear()

  def table(self, seqs: list[Sequence | None], kind: str) -> np.ndarray:
    """`[len(seqs), width]` int32: each sequence's pages (null for none)."""
    out = np.full((len(seqs), self.width), NULL_PAGE, np.int32)
    for r, seq in enumerate(seqs):
      if seq is not None:
        out[r, : len(seq[kind])] = seq[kind]
    return out

  def view(
      self,
      seqs: list[Sequence | None],
      reach: list[tuple[int, int] | None],
      prefixed: list[bool],
      *,
      unit: int,
      whole: frozenset[str] = frozenset(),
      prefix: Sequence | None = None,
      prefix_pages: int = 0,
      columns: int | None = None,
      whole_cascade: bool = False,
  ) -> tuple[dict, dict[str, int]]:
    """What a call of rows `seqs` hands the device (`PagedKVCache.view`), and the
    pages of each kind it reads.

    `reach[r]` is (first query position, end) of row r's tokens in the call
    (None: an idle row). Kinds in `whole` (a kernel reads them) get whole
    tables, and no `first`. Every other kind gets the same number of columns (`shape_count`
    pages, few shapes to compile), from the first page any row can see
    (`first`: the window's start for local layers). With `prefix`, its first
    `prefix_pages` pages are read once (a cascade) for the rows `prefixed`
    marks, whose own columns then begin past them. `columns` sets the count of
    columns (a precompile's shapes) in place of the rows' reach. With
    `whole_cascade` (a kernel that merges a prefix read apart: GPU's) the kinds
    in `whole` get the prefix too, when every active row continues it: the kernel
    then reads each row's pages past the prefix's, and the prefix's pages once.
    """
    cascade = prefix is not None and prefix_pages > 0
    active = [r for r, span in enumerate(reach) if span is not None and seqs[r] is not None]
    end = max((pages_for(reach[r][1], self.page_size) for r in active), default=1)
    lowest = {}
    for kind in self.free_pages:
      lowest[kind] = min(
          (max(prefix_pages if cascade and prefixed[r] else 0, self.first_seen(kind, reach[r][0]))
           for r in active),
          default=0,
      )
    count = columns if columns is not None else shape_count(
        max((end - lo for lo in lowest.values()), default=1), unit, self.width
    )
    view = dict(tables={}, first={})
    read = {}
    # Kinds whose prefix is read apart: the XLA path's (its rows' masks say which
    # rows continue it), and a kernel's where every active row does.
    apart = [kind for kind in self.free_pages if kind not in whole]
    if whole_cascade and all(prefixed[r] for r in active):
      apart += [kind for kind in self.free_pages if kind in whole]
    for kind, lo in lowest.items():
      table = self.table(seqs, kind)
      if kind in whole:  # no `first`: the table is whole, which a kernel reads it as
        view['tables'][kind] = table
        past = prefix_pages if cascade and kind in apart else 0
        read[kind] = int(np.count_nonzero(table[:, past:]))
        continue
      first = max(0, min(lo, self.width - count))
      view['tables'][kind], view['first'][kind] = table[:, first : first + count], np.int32(first)
      read[kind] = table.shape[0] * count
    if cascade:
      view['prefix'] = {kind: np.asarray(prefix[kind][:prefix_pages], np.int32) for kind in apart}
      view['prefixed'] = np.asarray(prefixed, bool)
      for kind in view['prefix']:
        read[kind] += prefix_pages
    return view, read

  def in_use(self, kind: str) -> int:
    return int(np.count_nonzero(self.refs[kind]))


def shape_count(needed: int, unit: int, cap: int) -> int:
  """`needed` (pages, or slots) rounded up to `unit` times 1, 2, 3, 4, 6, 8, 12, 16, ...
  (few shapes to compile), at most `cap`.

  >>> [shape_count(n, 4, 40) for n in (1, 4, 5, 9, 13, 17, 30)]
  [4, 4, 8, 12, 16, 24, 32]
  """
  units = -(-max(needed, 1) // unit)
  sizes = (m << k for k in itertools.count() for m in (2, 3))  # 2, 3, 4, 6, 8, 12, ...
  count = 1 if units == 1 else next(n for n in sizes if n >= units)
  return min(count * unit, cap)


def worst_case_pages(
    *,
    page_size: int,
    row_len: int,
    prefix_len: int,
    sequences: int,
    window: int | None,
    chunk: int,
) -> int:
  """Pages of one kind (null page included) that `sequences` live rows of at most
  `row_len` positions past the fork and a shared prefix of at most `prefix_len` can
  hold at once: a row holds its own pages from where it forks (one copied), and a
  local row no more than its window and the chunk it is writing."""
  own = pages_for(row_len, page_size) + 1
  prefix = pages_for(prefix_len, page_size)
  if window is not None:
    span = pages_for(window + chunk, page_size) + 1
    own, prefix = min(own, span), min(prefix, span)
  return 1 + prefix + sequences * own
