// Matrix products for XLA:CPU, called through the XLA FFI: bfloat16 products
// (`WcseBf16Product`), the logits with their block statistics (`WcseBf16Logits`)
// and batched float32 products (`WcseF32Batched`, further down).
//
// C[M, N] (float32) = A[M, K] (bfloat16, row-major) x B, where B is [K, N]
// ("nn") or [N, K] ("nt"), both bfloat16 and row-major. The sums are float32,
// as XLA's own `dot` with `preferred_element_type=float32`.
//
// XLA:CPU runs products with few rows (a decode step's slots) at about two
// thirds of what the CPU's bfloat16 dot-product instruction (AVX512-BF16
// `vdpbf16ps`: 16 lanes, each adding two bfloat16 products to a float32 sum)
// can do. This kernel keeps a 6 x 64 tile of C in 24 registers, broadcasts a
// pair of A's bfloat16 (one 32-bit word) against 64 columns of B laid out as
// pairs, and so does 24 dot-product instructions per 4 loads of B.
//
// B is packed into panels of 64 columns (the last may be 16, 32 or 48 wide), each
// cut into tiles of 16 k pairs by 16 columns, the two bfloat16 of consecutive k
// for one column side by side: a tile is 1 KB, contiguous, AMX's B operand as it
// is loaded. Panel p starts at element p * K * 64; inside it, the tiles of k pairs
// 16i..16i+15 come in column order, and the last group holds the K / 2 % 16
// pairs left over (tiles of fewer rows). A panel is packed once per call and used
// by every row of A, or the caller packs B once for many calls (`packed`: a
// model's weights, `cpu_kernels.pack`): then a call reads each weight once, in
// order, and packs nothing.
//
// Each C element is one sum over k in increasing order of k pairs, whatever the
// tiling or the number of threads, so results do not depend on M or on how the
// work is split.
//
// Threads: the work is split in items (a panel, or a block of A's rows) taken
// from an atomic counter by the calling thread and by helpers scheduled on
// XLA's intra-op thread pool; the call returns when every item is done. A
// helper that starts late finds no item left and returns.

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kPanel = 64;  // columns of B per panel (4 registers of 16)
constexpr int64_t kRowBlock = 96;  // rows of A per item when items are row blocks

constexpr int64_t kTileK2 = 16;  // k pairs per tile of a packed panel

// C[0:MT, 0:16*NT] = A[0:MT, :] x panel, the panel packed in tiles (above).
// `ahead`: `ahead_lines` cache lines from there are fetched into the L2 cache, spread
// over the groups (a panel the thread will take later, streaming from memory). With
// `a_streams` (A streams from memory: the logits' table), the next tile's rows of A are
// fetched into L1 a tile ahead (without it the logits took 26.6 ms against 25.1); where
// A stays in the caches (a step's activations, at most a block of rows) they are not.
template <int MT, int NT>
inline void Tile(const uint16_t* a, int64_t lda, const uint16_t* panel, int64_t k2s, float* c, int64_t ldc,
                 bool a_streams, const char* ahead = nullptr, int64_t ahead_lines = 0) {
  const int64_t groups = (k2s + kTileK2 - 1) / kTileK2, per_group = (ahead_lines + groups - 1) / groups;
  __m512 acc[MT][NT];
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t g = 0; g < k2s; g += kTileK2) {
    // A group of tiles: `rows` k pairs of each 16 columns, one tile after the other.
    const int64_t rows = std::min(kTileK2, k2s - g);
    const uint16_t* group = panel + g * NT * 32;
    for (int i = 0; i < MT && a_streams; ++i) _mm_prefetch(reinterpret_cast<const char*>(a + (MT + i) * lda + 2 * g), _MM_HINT_T0);
    for (int64_t l = 0; l < per_group && ahead_lines > 0; ++l, --ahead_lines, ahead += 64) _mm_prefetch(ahead, _MM_HINT_T1);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t k2 = g + r;
      __m512bh bv[NT];
      for (int j = 0; j < NT; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(group + (j * rows + r) * 32);
      for (int i = 0; i < MT; ++i) {
        int32_t pair;
        std::memcpy(&pair, a + i * lda + 2 * k2, sizeof(pair));
        const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
        for (int j = 0; j < NT; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
      }
    }
  }
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j) _mm512_storeu_ps(c + i * ldc + 16 * j, acc[i][j]);
}

// `ahead`: `ahead_bytes` from there are fetched into the L2 cache, spread over the tiles
// of rows (the panel a thread will likely take next: a weight streams from memory).
template <int NT>
void Rows(const uint16_t* a, int64_t m0, int64_t m1, int64_t k, const uint16_t* panel, float* c, int64_t ldc,
          bool a_streams, const char* ahead, int64_t ahead_bytes) {
  // Tiles of 6 rows, and of 4 where 6s would leave 2 (32 rows: 6, 6, 6, 6, 4, 4), so that
  // few rows go through the narrow tiles, whose few sums wait on each other.
  const int64_t rows = m1 - m0, fours = rows >= 8 && rows % 6 == 2 ? 2 : rows % 6 >= 4 ? 1 : 0;
  const int64_t six_end = m0 + (rows - 4 * fours) / 6 * 6;
  // `ahead`'s lines, shared out over the tiles of 4 and 6 rows
  const int64_t lines = (ahead_bytes + 63) / 64, tiles = (six_end - m0) / 6 + fours;
  const int64_t share = tiles > 0 ? (lines + tiles - 1) / tiles : 0;
  int64_t fetched = 0;
  auto next = [&](int64_t& count) {
    count = std::min(share, lines - fetched);
    const char* at = ahead + 64 * fetched;
    fetched += count;
    return at;
  };
  int64_t m = m0, count;
  for (; m < six_end; m += 6) {
    const char* at = next(count);
    Tile<6, NT>(a + m * k, k, panel, k / 2, c + m * ldc, ldc, a_streams, at, count);
  }
  for (; m + 4 <= m1; m += 4) {
    const char* at = next(count);
    Tile<4, NT>(a + m * k, k, panel, k / 2, c + m * ldc, ldc, a_streams, at, count);
  }
  for (; m + 2 <= m1; m += 2) Tile<2, NT>(a + m * k, k, panel, k / 2, c + m * ldc, ldc, a_streams);
  for (; m < m1; ++m) Tile<1, NT>(a + m * k, k, panel, k / 2, c + m * ldc, ldc, a_streams);
  for (; fetched < lines; ++fetched) _mm_prefetch(ahead + 64 * fetched, _MM_HINT_T1);
}

// Rows m0..m1 of A against one packed panel `width` columns wide; c points at the panel's
// first column (`a_streams` and `ahead` as in Tile and Rows).
void PanelRows(const uint16_t* a, int64_t m0, int64_t m1, int64_t k, const uint16_t* panel, int64_t width,
               float* c, int64_t ldc, bool a_streams, const char* ahead = nullptr, int64_t ahead_bytes = 0) {
  switch (width / 16) {
    case 4: return Rows<4>(a, m0, m1, k, panel, c, ldc, a_streams, ahead, ahead_bytes);
    case 3: return Rows<3>(a, m0, m1, k, panel, c, ldc, a_streams, ahead, ahead_bytes);
    case 2: return Rows<2>(a, m0, m1, k, panel, c, ldc, a_streams, ahead, ahead_bytes);
    default: return Rows<1>(a, m0, m1, k, panel, c, ldc, a_streams, ahead, ahead_bytes);
  }
}

// ---- AMX (Advanced Matrix Extensions) ---------------------------------------------
//
// On CPUs with AMX-BF16 one instruction (`tdpbf16ps`) adds a 16 x 32 by 32 x 16
// bfloat16 product to a 16 x 16 float32 tile held in a tile register: 16 times
// the work of `vdpbf16ps`. A packed panel's tiles (above) are B's tiles as AMX
// loads them (rows 64 bytes apart). A's tiles are 16 rows of 32 k, read in place.
// Eight tile registers hold a 2 x 2 block of C tiles (32 rows x 32 columns), two
// of A and two of B. A panel is walked two column tiles at a time, all of A's
// rows against them, so that its tiles are read in the order they lie.
//
// Each C element is the sum over k tiles in increasing order of the instruction's
// own sums, for any M, tiling or thread split, so rows stay independent here too.
// Linux hands out the tile registers' state only on request (`arch_prctl`), once
// per process; where that fails the AVX512-BF16 path runs.

#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <sys/syscall.h>
#include <unistd.h>

constexpr int64_t kAmxK = 32;  // k per tile

bool AmxAllowed() {
  static const bool allowed = [] {
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return allowed;
}

struct alignas(64) TileConfig {
  uint8_t palette = 1;
  uint8_t start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Every tile 16 rows of 64 bytes: C tiles 0-3, A tiles 4-5, B tiles 6-7.
void AmxConfigure() {
  TileConfig config;
  for (int t = 0; t < 8; ++t) {
    config.colsb[t] = 64;
    config.rows[t] = 16;
  }
  _tile_loadconfig(&config);
}

void AmxRelease() { _tile_release(); }

// C[0:16*RT, 0:16*CT] = A[0:16*RT, 0:K] x B, B the panel's column tiles t.. (of `tiles`).
template <int RT, int CT>
inline void AmxBlock(const uint16_t* a, int64_t k, const uint16_t* panel, int64_t tiles, int64_t t, float* c,
                     int64_t ldc) {
  constexpr int64_t kTile = kTileK2 * 32;  // bfloat16 per tile
  const int64_t lda = k * 2, ldb = 64, ldcb = ldc * 4;
  _tile_zero(0);
  if constexpr (CT == 2) _tile_zero(1);
  if constexpr (RT == 2) _tile_zero(2);
  if constexpr (RT == 2 && CT == 2) _tile_zero(3);
  for (int64_t k0 = 0; k0 < k; k0 += kAmxK) {
    const uint16_t* b = panel + (k0 / 2 * tiles + t * kTileK2) * 32;  // group k0 / 32, tile t
    _tile_loadd(4, a + k0, lda);
    _tile_loadd(6, b, ldb);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (CT == 2) {
      _tile_loadd(7, b + kTile, ldb);
      _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (RT == 2) {
      _tile_loadd(5, a + 16 * k + k0, lda);
      _tile_dpbf16ps(2, 5, 6);
      if constexpr (CT == 2) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, c, ldcb);
  if constexpr (CT == 2) _tile_stored(1, c + 16, ldcb);
  if constexpr (RT == 2) _tile_stored(2, c + 16 * ldc, ldcb);
  if constexpr (RT == 2 && CT == 2) _tile_stored(3, c + 16 * ldc + 16, ldcb);
}

// Rows m0..m1 (a multiple of 16 of them) of A against column tiles t, t + 1 (if CT == 2).
template <int CT>
inline void AmxRows(const uint16_t* a, int64_t m0, int64_t m1, int64_t k, const uint16_t* panel, int64_t tiles,
                    int64_t t, float* c, int64_t ldc) {
  int64_t m = m0;
  for (; m + 32 <= m1; m += 32) AmxBlock<2, CT>(a + m * k, k, panel, tiles, t, c + m * ldc + 16 * t, ldc);
  for (; m < m1; m += 16) AmxBlock<1, CT>(a + m * k, k, panel, tiles, t, c + m * ldc + 16 * t, ldc);
}

// Rows m0..m1 of A against one packed panel (the AMX counterpart of PanelRows). Rows
// short of a whole tile go through zero-padded copies, computed the same way.
void AmxPanelRows(const uint16_t* a, int64_t m0, int64_t m1, int64_t k, const uint16_t* panel, int64_t width,
                  float* c, int64_t ldc) {
  const int64_t tiles = width / 16, whole = m0 + (m1 - m0) / 16 * 16;
  for (int64_t t = 0; t < tiles; t += 2) {
    if (t + 1 < tiles) AmxRows<2>(a, m0, whole, k, panel, tiles, t, c, ldc);
    else AmxRows<1>(a, m0, whole, k, panel, tiles, t, c, ldc);
  }
  if (whole == m1) return;
  // The last rows (fewer than a tile): a copy padded with zero rows.
  thread_local std::vector<float> staged;
  thread_local std::vector<uint16_t> padded;
  const int64_t rows = m1 - whole;
  padded.assign(16 * k, 0);
  std::memcpy(padded.data(), a + whole * k, rows * k * sizeof(uint16_t));
  staged.resize(16 * kPanel);
  for (int64_t t = 0; t < tiles; t += 2) {
    if (t + 1 < tiles) AmxBlock<1, 2>(padded.data(), k, panel, tiles, t, staged.data() + 16 * t, kPanel);
    else AmxBlock<1, 1>(padded.data(), k, panel, tiles, t, staged.data() + 16 * t, kPanel);
  }
  for (int64_t i = 0; i < rows; ++i) std::memcpy(c + (whole + i) * ldc, staged.data() + i * kPanel, width * sizeof(float));
}

// `iterations` of four `tdpbf16ps` on tiles already loaded: the instruction's own rate,
// no memory. Returns one of the sums, so that the loop cannot be left out.
float AmxPeakLoop(int64_t iterations) {
  alignas(64) uint16_t ones[16 * 32];
  std::fill(ones, ones + 16 * 32, uint16_t{0x3c00});  // bfloat16 1/128
  alignas(64) float out[16 * 16];
  AmxConfigure();
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  for (int64_t i = 0; i < iterations; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, out, 64);
  AmxRelease();
  return out[0];
}
constexpr double kAmxLoopFlops = 4.0 * 16 * 16 * 32 * 2;  // per iteration
#else
constexpr int64_t kAmxK = 32;
float AmxPeakLoop(int64_t) { return 0; }
constexpr double kAmxLoopFlops = 0;
bool AmxAllowed() { return false; }
void AmxConfigure() {}
void AmxRelease() {}
void AmxPanelRows(const uint16_t*, int64_t, int64_t, int64_t, const uint16_t*, int64_t, float*, int64_t) {}
#endif

// Packs columns n0..n0+width of B into `out`, one panel in tiles (above): the 32-bit
// word (pair k2, column 16t + w) lies at (group start k2 - k2 % 16) * tiles * 16 +
// t * (pairs in the group) * 16 + k2 % 16 * 16 + w.
void Pack(const uint16_t* b, bool nt, int64_t k, int64_t n, int64_t n0, int64_t width, uint16_t* out) {
  uint32_t* out32 = reinterpret_cast<uint32_t*>(out);
  const int64_t k2s = k / 2, tiles = width / 16;
  for (int64_t k2 = 0; k2 < k2s; ++k2) {
    const int64_t g = k2 - k2 % kTileK2, rows = std::min(kTileK2, k2s - g);
    for (int64_t t = 0; t < tiles; ++t) {
      uint32_t* to = out32 + (g * tiles + t * rows + k2 - g) * 16;
      if (nt) {  // B is [N, K]: a pair of consecutive k is one 32-bit word of a row.
        for (int64_t w = 0; w < 16; ++w) to[w] = reinterpret_cast<const uint32_t*>(b + (n0 + 16 * t + w) * k)[k2];
        continue;
      }
      // B is [K, N]: rows k and k + 1 interleaved, 16 columns at a time.
      const uint16_t* r0 = b + 2 * k2 * n + n0 + 16 * t;
      const __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0)));
      const __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0 + n)));
      _mm512_storeu_si512(to, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

struct Work {
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  int64_t items = 0;
};

// Runs body(i) for i in [0, items) on the calling thread and up to helpers of the pool's threads.
template <typename Body>
void ParallelFor(ffi::ThreadPool& pool, int64_t items, Body body) {
  auto work = std::make_shared<Work>();
  work->items = items;
  auto drain = [work, body]() {
    for (int64_t i; (i = work->next.fetch_add(1)) < work->items;) {
      body(i);
      work->done.fetch_add(1, std::memory_order_release);
    }
  };
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), items) - 1;
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([drain] { drain(); });
  drain();
  while (work->done.load(std::memory_order_acquire) < items) std::this_thread::yield();
}

// e^x for each lane, to about 2 ulp: e^x = 2^i e^r with i = round(x / ln 2) and
// |r| <= ln 2 / 2, e^r by its Taylor series to r^7 (relative error below 1e-8).
// Lanes below -104 give 0 (e^-104 is below the smallest float32).
inline __m512 Exp(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));
  const __m512 i = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504089f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(i, _mm512_set1_ps(0.693145751953125f), x);  // ln 2 in two parts
  r = _mm512_fnmadd_ps(i, _mm512_set1_ps(1.428606765330187e-06f), r);
  __m512 p = _mm512_set1_ps(1.0f / 5040);
  for (const float c : {1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, i);
}

// ---- the k best of a stream of entries ----------------------------------------
//
// Each row's k largest entries of x [..., N] (float32) and their indices, as
// `jax.lax.top_k` gives them: in descending total order (NaN above +inf, +0 above
// -0, -NaN below -inf), ties to the lower index. Entries are compared with a
// threshold, the k-th largest key kept so far, and those above it are appended to
// a buffer; when the buffer fills, its best k are selected and the threshold rises
// to the k-th. Entries are offered in increasing index order, so an entry equal to
// the threshold comes after every kept one of that key (a lower index): it can
// never be among the k. At the end the best k are selected and sorted. XLA:CPU's
// TopK sorts rows.

// The float's bits as an integer that orders as the total order of the floats.
inline __m512i OrderKeys(__m512i bits) {
  return _mm512_xor_si512(bits, _mm512_and_si512(_mm512_srai_epi32(bits, 31), _mm512_set1_epi32(0x7fffffff)));
}
inline int32_t OrderKey(int32_t bits) { return bits ^ ((bits >> 31) & 0x7fffffff); }  // its own inverse

// The best k entries (keys and indices) of those offered so far.
struct Best {
  int64_t k = 0, capacity = 0, count = 0;
  int32_t threshold = INT32_MIN;  // the k-th best key once `any`; until then every entry enters
  bool any = false;
  std::vector<int32_t> keys, where;
  std::vector<int64_t> ranked;

  void Reset(int64_t best, int64_t room = 0) {
    k = best, capacity = std::max<int64_t>({4 * best, 256, room}), count = 0, threshold = INT32_MIN, any = false;
    keys.resize(capacity + 16), where.resize(capacity + 16), ranked.resize(capacity + 16);
  }
  bool Enters(int32_t key) const { return !any || key > threshold; }
  void Add(int32_t key, int32_t index) {
    keys[count] = key, where[count] = index;
    if (++count >= capacity) Select(false);
  }
  // Keeps the buffer's best k (key descending, then index ascending: one int64 each), sorted if `sort`.
  void Select(bool sort) {
    for (int64_t j = 0; j < count; ++j) ranked[j] = (int64_t(keys[j]) << 32) | uint32_t(INT32_MAX - where[j]);
    const int64_t kept = std::min(count, k);
    if (sort) {
      std::partial_sort(ranked.begin(), ranked.begin() + kept, ranked.begin() + count, std::greater<int64_t>());
    } else if (count > k) {
      std::nth_element(ranked.begin(), ranked.begin() + (k - 1), ranked.begin() + count, std::greater<int64_t>());
    }
    for (int64_t j = 0; j < kept; ++j) keys[j] = int32_t(ranked[j] >> 32), where[j] = INT32_MAX - int32_t(ranked[j]);
    count = kept;
    if (count == k) {
      threshold = *std::min_element(keys.begin(), keys.begin() + k);
      any = true;
    }
  }
  // The best k, sorted, as floats and indices.
  void Write(float* values, int32_t* indices) {
    Select(true);
    for (int64_t j = 0; j < k; ++j) {
      const int32_t bits = OrderKey(keys[j]);
      std::memcpy(values + j, &bits, sizeof(bits));
      indices[j] = where[j];
    }
  }
};

// Each column's best k of the logits (`LogitsTopK`), kept per thread while the row
// blocks are computed and merged at the end. A thread takes its row blocks in
// increasing order, so it offers each column's entries in increasing index order;
// each of the k best of all is among the k best of the thread that saw it.
class ColumnsBest {
 public:
  ColumnsBest(int64_t k, int64_t columns) : k_(k), columns_(columns), call_(++calls_) {}

  // Offers the column's entries of a staging block `rows` x width <= 64 (row i of the
  // vocabulary's rows r0.., columns c0..c0 + width): 16 columns whose largest keys do
  // not enter are passed over in one comparison; otherwise the rows are walked in
  // order, 16 columns a row, and only entries above their column's threshold are added.
  void Offer(const float* s, int64_t stride, int64_t rows, int64_t r0, int64_t c0, int64_t width) {
    Part& part = Mine();
    // Each 16 columns' largest key, the groups' chains side by side (a panel has at most 4
    // groups; a narrower one's last group is taken again in the place of those it lacks).
    const int groups = static_cast<int>(width / 16);
    auto key_at = [&](int64_t i, int64_t j) { return OrderKeys(_mm512_load_si512(s + i * stride + j)); };
    auto column = [&](int g) { return int64_t{16} * std::min(g, groups - 1); };
    __m512i tops[4];
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) tops[g] = key_at(0, column(g));
    for (int64_t i = 1; i < rows; ++i)
#pragma GCC unroll 4
      for (int g = 0; g < 4; ++g) tops[g] = _mm512_max_epi32(tops[g], key_at(i, column(g)));
    for (int g = 0; g < groups; ++g) {
      const int64_t j = 16 * g;
      int32_t* threshold = part.threshold.data() + c0 + j;
      uint16_t& open = part.open[(c0 + j) / 16];
      __m512i bar = _mm512_loadu_si512(threshold);
      if (!(_mm512_cmpgt_epi32_mask(tops[g], bar) | open)) continue;
      alignas(64) int32_t keys[16];
      for (int64_t i = 0; i < rows; ++i) {
        const __m512i key = key_at(i, j);
        __mmask16 enter = _mm512_cmpgt_epi32_mask(key, bar) | open;
        if (!enter) continue;
        _mm512_store_si512(keys, key);
        for (; enter; enter &= enter - 1) {
          const int64_t lane = __builtin_ctz(enter);
          Best& best = part.best[c0 + j + lane];
          best.Add(keys[lane], int32_t(r0 + i));
          threshold[lane] = best.threshold;
          if (best.any) open &= ~(1u << lane);
        }
        bar = _mm512_loadu_si512(threshold);
      }
    }
  }

  // Each column's best k over every thread's, sorted: values and indices [columns, k].
  void Write(float* values, int32_t* indices) {
    Best all;
    for (int64_t c = 0; c < columns_; ++c) {
      int64_t room = 0;
      for (const auto& part : parts_) room += part->best[c].count;
      all.Reset(k_, room);
      for (const auto& part : parts_) {
        const Best& best = part->best[c];
        for (int64_t j = 0; j < best.count; ++j) all.Add(best.keys[j], best.where[j]);
      }
      all.Write(values + c * k_, indices + c * k_);
    }
  }

 private:
  struct Part {
    std::vector<Best> best;
    std::vector<int32_t> threshold;  // each column's best's, side by side for vector compares
    std::vector<uint16_t> open;  // per 16 columns: those whose best has no threshold yet
  };

  // This thread's part for this call, made on first use.
  Part& Mine() {
    thread_local Part* part = nullptr;
    thread_local uint64_t part_call = 0;
    if (part_call != call_) {
      auto made = std::make_unique<Part>();
      made->best.resize(columns_);
      for (Best& best : made->best) best.Reset(k_);
      made->threshold.assign(columns_, INT32_MIN);
      made->open.assign(columns_ / 16, 0xFFFF);
      std::lock_guard<std::mutex> lock(mutex_);
      part = made.get(), part_call = call_;
      parts_.push_back(std::move(made));
    }
    return *part;
  }

  static inline std::atomic<uint64_t> calls_{0};
  const int64_t k_, columns_;
  const uint64_t call_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Part>> parts_;
};

constexpr int64_t kStatRows = 32;  // vocabulary entries per block of the logits' statistics
static_assert(kRowBlock % kStatRows == 0, "a row block holds whole blocks of statistics");

// The statistics of rows [b0, b1) of a staging block (kPanel floats a row), G x 16 columns:
// each column's maximum and its sum of e^(c - maximum), over the rows in order. The G
// groups' chains side by side: one group's maximum or sum waits on its last step, so
// walked one group after another the chains kept the cores waiting (same sums; with
// `ColumnsBest::Offer`'s maxima side by side too, the share of the logits' top-k kernel
// outside its tiles went from 11.3% to 10.1% of its cycles, Zen 5, perf).
template <int G>
inline void Statistics(const float* s, int64_t b0, int64_t b1, float* maxima, float* sums) {
  __m512 top[G], sum[G];
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) top[g] = _mm512_load_ps(s + b0 * kPanel + 16 * g), sum[g] = _mm512_setzero_ps();
  for (int64_t i = b0 + 1; i < b1; ++i)
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) top[g] = _mm512_max_ps(top[g], _mm512_load_ps(s + i * kPanel + 16 * g));
  for (int64_t i = b0; i < b1; ++i)
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g)
      sum[g] = _mm512_add_ps(sum[g], Exp(_mm512_sub_ps(_mm512_load_ps(s + i * kPanel + 16 * g), top[g])));
#pragma GCC unroll 4
  for (int g = 0; g < G; ++g) _mm512_storeu_ps(maxima + 16 * g, top[g]), _mm512_storeu_ps(sums + 16 * g, sum[g]);
}

// The row-block mode: few columns, many rows (the logits: the table's rows against
// the slots). B is packed once; an item is a block of A's rows against
// every panel, computed one panel at a time into a staging block (96 rows: whole
// tiles of 6, where blocks of 32 took two tiles of 4 and ran 5% slower) and then
// written out, past the caches where C is large and aligned.
//
// With `maxima` and `sums` ([ceil(M / 32), N]), each column's maximum over each
// block of 32 rows and the sum of e^(c - maximum) over those rows, in row order,
// come from the staging block too: the log-normaliser of the logits (`rules.
// sample_next`) without two more passes over them. With `best`, each column's
// best k rows are kept as well, and C (`cp`) may be null: not written.
void RowBlocks(ffi::ThreadPool& pool, const uint16_t* ap, int64_t m, int64_t k, const uint16_t* bp, bool nt,
               bool prepacked, int64_t n, float* cp, bool amx, float* maxima, float* sums,
               ColumnsBest* best = nullptr) {
  const int64_t panels = (n + kPanel - 1) / kPanel;
  std::vector<uint16_t> packed;
  if (!prepacked) {
    packed.resize(k * n);
    for (int64_t p = 0; p < panels; ++p)
      Pack(bp, nt, k, n, p * kPanel, std::min(kPanel, n - p * kPanel), packed.data() + p * k * kPanel);
  }
  const uint16_t* pk = prepacked ? bp : packed.data();
  // Every store is 64-byte aligned when C is (n is a multiple of 16 floats).
  const bool stream = cp != nullptr && reinterpret_cast<uintptr_t>(cp) % 64 == 0 && m * n * 4 > (8 << 20);
  const int64_t threads = std::max<int64_t>(pool.num_threads(), 1);
  ParallelFor(pool, (m + kRowBlock - 1) / kRowBlock, [=](int64_t blk) {
    thread_local std::vector<float> staging;
    staging.resize(kRowBlock * kPanel + 16);
    float* s = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(staging.data()) + 63) & ~uintptr_t{63});
    const int64_t m0 = blk * kRowBlock, rows = std::min(m, m0 + kRowBlock) - m0;
    // The rows of the block this thread likely takes next (the threads take turns), fetched
    // while this one is computed, a share with each panel: the table streams from memory.
    const int64_t n0 = std::min(m, m0 + threads * kRowBlock), n1 = std::min(m, n0 + kRowBlock);
    const int64_t share = ((n1 - n0) * k * 2 / panels + 63) & ~int64_t{63};
    const char* ahead = reinterpret_cast<const char*>(ap + n0 * k);
    const char* const ahead_end = reinterpret_cast<const char*>(ap + n1 * k);
    if (amx) AmxConfigure();
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t width = std::min(kPanel, n - p * kPanel), c0 = p * kPanel;
      const int64_t fetch = std::max<int64_t>(0, std::min<int64_t>(share, ahead_end - ahead));
      if (amx) AmxPanelRows(ap + m0 * k, 0, rows, k, pk + p * k * kPanel, width, s, kPanel);
      else PanelRows(ap + m0 * k, 0, rows, k, pk + p * k * kPanel, width, s, kPanel, true, ahead, fetch);
      ahead += fetch;
      for (int64_t b0 = 0; b0 < rows && maxima != nullptr; b0 += kStatRows) {
        const int64_t at = (m0 + b0) / kStatRows * n + c0, b1 = std::min(rows, b0 + kStatRows);
        switch (width / 16) {
          case 4: Statistics<4>(s, b0, b1, maxima + at, sums + at); break;
          case 3: Statistics<3>(s, b0, b1, maxima + at, sums + at); break;
          case 2: Statistics<2>(s, b0, b1, maxima + at, sums + at); break;
          default: Statistics<1>(s, b0, b1, maxima + at, sums + at); break;
        }
      }
      if (best != nullptr) best->Offer(s, kPanel, rows, m0, c0, width);
      for (int64_t i = 0; i < rows && cp != nullptr; ++i) {
        float* out = cp + (m0 + i) * n + c0;
        for (int64_t j = 0; j < width; j += 16) {
          if (stream) _mm512_stream_ps(out + j, _mm512_load_ps(s + i * kPanel + j));
          else _mm512_storeu_ps(out + j, _mm512_load_ps(s + i * kPanel + j));
        }
      }
    }
    if (amx) AmxRelease();
    if (stream) _mm_sfence();  // this thread's streamed stores before the item counts as done
  });
}

// m, k and n of A [M, K] x B ([K, N], or [N, K] if `nt`, or packed: K * N in panels):
// A 2-D, B 2-D (packed: 1-D), K even and N a multiple of 16; else the error, named after `what`.
ffi::Error Sizes(const char* what, const ffi::Buffer<ffi::BF16>& a, const ffi::Buffer<ffi::BF16>& b, bool nt,
                 bool packed, int64_t& m, int64_t& k, int64_t& n) {
  const auto ad = a.dimensions();
  const auto bd = b.dimensions();
  if (ad.size() != 2 || bd.size() != (packed ? 1 : 2))
    return ffi::Error::InvalidArgument(std::string(what) + (packed ? ": A must be 2-D and packed B 1-D" : ": operands must be 2-D"));
  m = ad[0], k = ad[1];
  if (packed) {
    if (k == 0 || bd[0] % k) return ffi::Error::InvalidArgument(std::string(what) + ": packed B is not K * N");
    n = bd[0] / k;
  } else {
    n = nt ? bd[0] : bd[1];
    if ((nt ? bd[1] : bd[0]) != k) return ffi::Error::InvalidArgument(std::string(what) + ": contracting sizes differ");
  }
  if (k % 2 || n % 16)
    return ffi::Error::InvalidArgument(std::string(what) + ": K must be even and N a multiple of 16");
  return ffi::Error::Success();
}

constexpr int kMaxParts = 4;  // weights side by side in one product (`PackedParts`)

// A weight's columns panel by panel (and, packed, its data), as products see it: one
// matrix [K, N], or several side by side (`packed_product_parts`: q, k and v, or the
// GeGLU's gate and up), each packed on its own, one after the other. Panel p is a part's
// columns from `Column(p)` (of them all), `Width(p)` wide; panels never straddle parts.
struct Weight {
  const uint16_t* data = nullptr;
  int64_t k = 0;
  int parts = 0;
  int64_t first[kMaxParts + 1] = {};  // each part's first column, then N
  int64_t first_panel[kMaxParts + 1] = {};  // each part's first panel, then the panels

  Weight() = default;
  Weight(const uint16_t* data, int64_t k, const int64_t* widths, int parts) : data(data), k(k), parts(parts) {
    for (int i = 0; i < parts; ++i) {
      first[i + 1] = first[i] + widths[i];
      first_panel[i + 1] = first_panel[i] + (widths[i] + kPanel - 1) / kPanel;
    }
  }
  int64_t Panels() const { return first_panel[parts]; }
  int64_t N() const { return first[parts]; }
  int Part(int64_t p) const {
    int i = 0;
    while (i + 1 < parts && p >= first_panel[i + 1]) ++i;
    return i;
  }
  int64_t Column(int64_t p, int part) const { return first[part] + (p - first_panel[part]) * kPanel; }
  int64_t Column(int64_t p) const { return Column(p, Part(p)); }
  int64_t Width(int64_t p, int part) const { return std::min(kPanel, first[part + 1] - Column(p, part)); }
  int64_t Width(int64_t p) const { return Width(p, Part(p)); }
  // Where packed panel p starts and its bytes (none past the last panel).
  const char* Panel(int64_t p) const {
    return p < Panels() ? reinterpret_cast<const char*>(data + Column(p) * k) : nullptr;
  }
  int64_t PanelBytes(int64_t p) const { return p < Panels() ? Width(p) * k * 2 : 0; }
};

// The packed weight each packed product was followed by the last time it ran. A
// decode step runs the same products in the same order every step, so while one
// runs, the first panels of the one that followed it last time are fetched: a
// product's first panels no longer wait on memory (Zen 5, a layer's seven
// products, alternating runs: 792-810 -> 774-781 us). A wrong guess only fetches
// lines nobody reads: a prefetch never faults.
class Successors {
 public:
  // Notes that `weight` follows the last one seen; returns what followed `weight` last time.
  Weight Visit(const Weight& weight) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (after_.size() > 4096) after_.clear();  // weights of models long gone
    if (last_ != nullptr && last_ != weight.data) after_[last_] = weight;
    last_ = weight.data;
    const auto found = after_.find(weight.data);
    return found == after_.end() ? Weight{} : found->second;
  }

 private:
  std::mutex mutex_;
  const uint16_t* last_ = nullptr;
  std::unordered_map<const uint16_t*, Weight> after_;
};

Successors& ProductSuccessors() {
  static Successors successors;
  return successors;
}

// isa: 0 AVX512-BF16, 1 AMX where the CPU, the OS and K (a multiple of 32) allow, else AVX512-BF16.
bool UseAmx(int32_t isa, int64_t k) { return isa == 1 && k % kAmxK == 0 && AmxAllowed(); }

// A [M, K] x B (K x N: [K, N], [N, K] if `nt`, or packed) into C: each part's columns
// (`w`'s) into `out[part]`, [M, that part's width]. Several parts only packed.
void ProductInto(ffi::ThreadPool& pool, const uint16_t* ap, int64_t m, const Weight& w, bool nt, bool packed,
                 bool amx, float* const* out) {
  const int64_t k = w.k, n = w.N(), panels = w.Panels();
  const uint16_t* bp = w.data;
  if (panels >= 2 * std::max<int64_t>(pool.num_threads(), 1) || m <= kRowBlock || w.parts > 1) {
    // Many columns: an item is a panel, packed by whichever thread takes it (unless packed).
    const int64_t threads = std::min<int64_t>(std::max<int64_t>(pool.num_threads(), 1), panels);
    const Weight then = packed ? ProductSuccessors().Visit(w) : Weight{};
    ParallelFor(pool, panels, [=, &w](int64_t p) {
      thread_local std::vector<uint16_t> buffer;
      const int part = w.Part(p);
      const int64_t width = w.Width(p, part), column = w.Column(p, part), ldc = w.first[part + 1] - w.first[part];
      float* c = out[part] + (column - w.first[part]);
      const uint16_t* panel = bp + column * k;
      if (!packed) {
        buffer.resize(k * kPanel);
        Pack(bp, nt, k, n, column, width, buffer.data());
        panel = buffer.data();
      }
      if (amx) {
        AmxConfigure();
        AmxPanelRows(ap, 0, m, k, panel, width, c, ldc);
        AmxRelease();
      } else {
        // A packed weight's panel this thread likely takes next (the threads take turns) is
        // fetched while this one is computed, a few lines with each group of k: a step's
        // weights stream from memory. Zen 5, a layer's seven products over 18 distinct
        // layers: 1030-1120 us without fetching, 900-920 fetching two turns ahead, 860-880
        // one turn ahead (the same weights again, from the caches: 780-800 us). Past the
        // last panel, the turns go on into the weight that comes next (`Successors`).
        const int64_t next = p + threads;
        const char* ahead = nullptr;
        int64_t bytes = 0;
        if (packed && next < panels) ahead = w.Panel(next), bytes = w.PanelBytes(next);
        else if (packed) ahead = then.Panel(next - panels), bytes = then.PanelBytes(next - panels);
        PanelRows(ap, 0, m, k, panel, width, c, ldc, m > kRowBlock, ahead, bytes);
      }
    });
  } else {
    // Few columns, many rows (the logits: the table's rows against the slots).
    RowBlocks(pool, ap, m, k, bp, nt, packed, n, out[0], amx, nullptr, nullptr);
  }
}

ffi::Error Product(ffi::ThreadPool pool, ffi::Buffer<ffi::BF16> a, ffi::Buffer<ffi::BF16> b,
                   ffi::ResultBuffer<ffi::F32> c, bool nt, bool packed, int32_t isa) {
  int64_t m, k, n;
  if (ffi::Error error = Sizes("bf16 product", a, b, nt, packed, m, k, n); error.failure()) return error;
  float* out = c->typed_data();
  ProductInto(pool, reinterpret_cast<const uint16_t*>(a.untyped_data()), m,
              Weight(reinterpret_cast<const uint16_t*>(b.untyped_data()), k, &n, 1), nt, packed, UseAmx(isa, k),
              &out);
  return ffi::Error::Success();
}

// A [M, K] x weights side by side, each packed on its own and the packed parts one after
// the other, each part's columns into a result of its own, [M, N_i] (`Weight`): one call
// and one walk over the parts' panels that both threads share, where the separate
// products of k and v (4 panels each) kept the threads waiting on each other. The same
// sums as a product of each part.
ffi::Error PackedParts(ffi::ThreadPool pool, ffi::Buffer<ffi::BF16> a, ffi::Buffer<ffi::BF16> b,
                       ffi::RemainingRets rets, int32_t isa) {
  const auto ad = a.dimensions();
  if (ad.size() != 2 || b.dimensions().size() != 1 || rets.size() == 0 || rets.size() > kMaxParts)
    return ffi::Error::InvalidArgument("bf16 packed parts: A [M, K], packed B 1-D, 1 to 4 results");
  const int64_t m = ad[0], k = ad[1];
  float* out[kMaxParts];
  int64_t widths[kMaxParts];
  for (size_t i = 0; i < rets.size(); ++i) {
    auto c = rets.get<ffi::Buffer<ffi::F32>>(i);
    if (!c.has_value()) return ffi::Error::InvalidArgument("bf16 packed parts: results must be float32");
    const auto cd = (*c)->dimensions();
    if (cd.size() != 2 || cd[0] != m || cd[1] <= 0 || cd[1] % 16)
      return ffi::Error::InvalidArgument("bf16 packed parts: results [M, N_i], N_i a multiple of 16");
    out[i] = (*c)->typed_data();
    widths[i] = cd[1];
  }
  const Weight w(reinterpret_cast<const uint16_t*>(b.untyped_data()), k, widths, static_cast<int>(rets.size()));
  if (k == 0 || k % 2 || b.dimensions()[0] != k * w.N())
    return ffi::Error::InvalidArgument("bf16 packed parts: K must be even and packed B K * (N_1 + N_2 + ...)");
  ProductInto(pool, reinterpret_cast<const uint16_t*>(a.untyped_data()), m, w, false, true, UseAmx(isa, k), out);
  return ffi::Error::Success();
}


// The logits `[V, B]` of a table A `[V, K]` and the slots' hidden states B `[B, K]`
// (the "nt" product in row blocks), with each column's maxima and exp-sums over
// blocks of 32 rows (`RowBlocks`).
ffi::Error Logits(ffi::ThreadPool pool, ffi::Buffer<ffi::BF16> a, ffi::Buffer<ffi::BF16> b,
                  ffi::ResultBuffer<ffi::F32> c, ffi::ResultBuffer<ffi::F32> maxima,
                  ffi::ResultBuffer<ffi::F32> sums, int32_t isa) {
  int64_t m, k, n;
  if (ffi::Error error = Sizes("bf16 logits", a, b, true, false, m, k, n); error.failure()) return error;
  RowBlocks(pool, reinterpret_cast<const uint16_t*>(a.untyped_data()), m, k,
            reinterpret_cast<const uint16_t*>(b.untyped_data()), true, false, n, c->typed_data(), UseAmx(isa, k),
            maxima->typed_data(), sums->typed_data());
  return ffi::Error::Success();
}

// The same logits' statistics and, instead of the logits, each column's k largest
// (`Best`: `jax.lax.top_k` of the column, values and indices [N, k]): a sampling
// step's top-k, without writing or reading the [V, N] logits.
ffi::Error LogitsTopK(ffi::ThreadPool pool, ffi::Buffer<ffi::BF16> a, ffi::Buffer<ffi::BF16> b,
                      ffi::ResultBuffer<ffi::F32> values, ffi::ResultBuffer<ffi::S32> indices,
                      ffi::ResultBuffer<ffi::F32> maxima, ffi::ResultBuffer<ffi::F32> sums, int32_t isa) {
  int64_t m, k, n;
  if (ffi::Error error = Sizes("bf16 logits top-k", a, b, true, false, m, k, n); error.failure()) return error;
  const auto vd = values->dimensions();
  if (vd.size() != 2 || vd[0] != n || vd[1] < 1 || vd[1] > m || m > INT32_MAX)
    return ffi::Error::InvalidArgument("bf16 logits top-k: results [N, k] with 1 <= k <= V < 2^31");
  ColumnsBest best(vd[1], n);
  RowBlocks(pool, reinterpret_cast<const uint16_t*>(a.untyped_data()), m, k,
            reinterpret_cast<const uint16_t*>(b.untyped_data()), true, false, n, nullptr, UseAmx(isa, k),
            maxima->typed_data(), sums->typed_data(), &best);
  best.Write(values->typed_data(), indices->typed_data());
  return ffi::Error::Success();
}

// ---- float32 batched products (attention over a float32 cache) -----------------
//
// C[p] = A[p] x B[p] for each batch entry p: A [M, K], B [K, N], C [M, N], all
// float32 and row-major. In a decode step these are each row's attention
// products over its own cache (M = the query heads sharing a key/value head, K and
// N the head size and the cached positions, or the other way round): many tiny
// products that XLA:CPU runs at a third of the memory bandwidth. A tile keeps
// MT x 64 of C in registers and walks k: one row of B (four vectors, masked at
// the end of N) against MT broadcast entries of A. Each C element is one fused
// multiply-add chain over k in increasing order, whatever M, the batch or the
// threads.

// Lanes of the 16 from j that lie in a row n wide (none where j >= n).
inline __mmask16 LanesAt(int64_t j, int64_t n) {
  return n - j >= 16 ? __mmask16(0xFFFF) : n > j ? __mmask16((1u << (n - j)) - 1) : __mmask16(0);
}

// 16 floats of B at `at` (lanes off in `mask`: 0): float32, or bfloat16 widened (exactly).
inline __m512 Load(__mmask16 mask, const float* at) { return _mm512_maskz_loadu_ps(mask, at); }
inline __m512 Load(__mmask16 mask, const uint16_t* at) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, at));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

// `cols` (N flags), if not null: the columns of B that count; `order`: the `count` rows of
// B that count, in increasing order (`F32Entry` lists them from its K flags). B is not
// read elsewhere: a column not counted comes out 0, a row not counted adds nothing (the
// attention's masked slots, whose scores are masked and whose weights are 0). With the
// rows listed the loop has no branch to skip one, and GCC keeps the sums in registers
// (with the branch it stored all 16 or 24 to the stack every k: the products over a
// bfloat16 cache ~1.6x slower).
template <int MT, typename B>
inline void F32Tile(const float* a, int64_t k, const B* b, int64_t n, int64_t n0, float* c, const bool* cols,
                    const int32_t* order, int64_t count) {
  __mmask16 mask[4], load[4];
  for (int j = 0; j < 4; ++j) {
    mask[j] = LanesAt(n0 + 16 * j, n);
    load[j] = mask[j];
    if (cols != nullptr && mask[j])
      load[j] = _mm_cmpneq_epi8_mask(_mm_maskz_loadu_epi8(mask[j], cols + n0 + 16 * j), _mm_setzero_si128());
  }
  __m512 acc[MT][4];
#pragma GCC unroll 8
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  auto step = [&](int64_t kk) __attribute__((always_inline)) {
    const B* row = b + kk * n + n0;
    __m512 bv[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) bv[j] = Load(load[j], row + 16 * j);
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * k + kk]);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  };
  if (n0 == 0) {
    // B streams from memory (a cache): the first pass over its rows fetches them whole, about
    // 4 KB ahead (past the last counted row: the rows after it, the next entry's; a prefetch
    // never faults).
    const int64_t row_bytes = n * static_cast<int64_t>(sizeof(B)), ahead = std::max<int64_t>(2, 4096 / row_bytes);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t target = i + ahead < count ? order[i + ahead] : k + (i + ahead - count);
      const char* next = reinterpret_cast<const char*>(b + target * n);
      for (int64_t at = 0; at < row_bytes; at += 64)
        if (cols == nullptr || cols[at / static_cast<int64_t>(sizeof(B))])  // the line's first column
          _mm_prefetch(next + at, _MM_HINT_T0);
      step(order[i]);
    }
  } else {
    for (int64_t i = 0; i < count; ++i) step(order[i]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < MT; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(c + i * n + n0 + 16 * j, mask[j], acc[i][j]);
}

// One batch entry: C [M, N] = A [M, K] x B [K, N] (`cols` as in F32Tile; `rows`, if not
// null, K flags: the rows of B that count, listed once for every tile).
template <typename B>
void F32Entry(const float* a, const B* b, float* c, int64_t m, int64_t k, int64_t n, const bool* cols,
              const bool* rows) {
  thread_local std::vector<int32_t> counted;
  counted.resize(k);
  int64_t count = 0;
  for (int64_t kk = 0; kk < k; ++kk)
    if (rows == nullptr || rows[kk]) counted[count++] = static_cast<int32_t>(kk);
  const int32_t* order = counted.data();
  for (int64_t n0 = 0; n0 < n; n0 += kPanel) {
    int64_t i = 0;
    for (; i + 6 <= m; i += 6) F32Tile<6>(a + i * k, k, b, n, n0, c + i * n, cols, order, count);
    for (; i + 4 <= m; i += 4) F32Tile<4>(a + i * k, k, b, n, n0, c + i * n, cols, order, count);
    for (; i + 2 <= m; i += 2) F32Tile<2>(a + i * k, k, b, n, n0, c + i * n, cols, order, count);
    for (; i < m; ++i) F32Tile<1>(a + i * k, k, b, n, n0, c + i * n, cols, order, count);
  }
}

// 16 x 16 floats transposed in registers: r[i] row i in, column i out.
inline void Transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {  // r[i + c]'s 128-bit lane l: column 4l + c of rows i..i+3
    const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
    const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
    r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 u0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), u1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
    const __m512 v0 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
    const __m512 v1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
    t[c] = _mm512_shuffle_f32x4(u0, v0, 0x88);
    t[4 + c] = _mm512_shuffle_f32x4(u0, v0, 0xDD);
    t[8 + c] = _mm512_shuffle_f32x4(u1, v1, 0x88);
    t[12 + c] = _mm512_shuffle_f32x4(u1, v1, 0xDD);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// Which of the NB blocks of 16 rows of B from row n0 count: below n and, if `cols`
// is given, flagged there (the slots a row sees).
template <int NB>
struct RowsOn {
  bool on[NB][16];
  bool any[NB] = {};
  RowsOn(int64_t n0, int64_t n, const bool* cols) {
    for (int q = 0; q < NB; ++q)
      for (int r = 0; r < 16; ++r) {
        const int64_t row = n0 + 16 * q + r;
        on[q][r] = row < n && (cols == nullptr || cols[row]);
        any[q] = any[q] || on[q][r];
      }
  }
};

// Fetches bytes [from, from + bytes) of B's rows from `first` on (`next` points at row
// `first`, rows `row_bytes` apart) into L1, skipping rows that do not count.
inline void FetchRows(const char* next, int64_t from, int64_t bytes, int64_t row_bytes, int64_t first, int64_t n,
                      const bool* cols) {
  for (int64_t at = from; at < from + bytes; at += 64) {
    const int64_t row = first + at / row_bytes;
    if (row >= n || cols == nullptr || cols[row]) _mm_prefetch(next + at, _MM_HINT_T0);
  }
}

// C [MT, 16 * NB columns from n0] = A [MT, K] x B^T, B [N, K] row-major (a cache of
// slot rows: a step's key is one contiguous row to write). B's rows are read 16 at
// a time, `Step::kK` k at a time, and transposed in registers; `Step::Add` then adds
// the 16 transposed vectors' products to the sums. Each C element is the same fused
// multiply-add chain over k in increasing order as in F32Tile: the same bits. NB = 2
// blocks of 16 rows side by side give twice the independent chains. `cols` (N flags),
// if not null: the rows of B that count (the others are not read; their column comes
// out 0). `prefetch`: fetch the next rows meanwhile. A's rows are Step::Row(k) apart.
template <int MT, int NB, typename Step>
inline void SlotRowsTile(const typename Step::A* a, int64_t k, const typename Step::B* b, int64_t n, int64_t n0,
                         float* c, int64_t ldc, const bool* cols, bool prefetch) {
  const RowsOn<NB> rows(n0, n, cols);
  // Loops over the sums unrolled by hand: GCC otherwise keeps them in memory, a store
  // per sum and step.
  __m512 acc[NB][MT];
#pragma GCC unroll 4
  for (int q = 0; q < NB; ++q)
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) acc[q][i] = _mm512_setzero_ps();
  const int64_t row_bytes = k * int64_t{sizeof(typename Step::B)};
  const int64_t per_chunk = NB * 16 * Step::kK * int64_t{sizeof(typename Step::B)};
  const char* next = reinterpret_cast<const char*>(b + (n0 + 16 * NB) * k);
  for (int64_t h0 = 0; h0 < k; h0 += Step::kK) {
    if (prefetch) FetchRows(next, h0 / Step::kK * per_chunk, per_chunk, row_bytes, n0 + 16 * NB, n, cols);
#pragma GCC unroll 4
    for (int q = 0; q < NB; ++q) {
      if (!rows.any[q]) continue;
      __m512 t[16];
      for (int r = 0; r < 16; ++r)
        t[r] = rows.on[q][r] ? Step::Load(b + (n0 + 16 * q + r) * k, h0, k) : _mm512_setzero_ps();
      Transpose16(t);
      Step::template Add<MT>(acc[q], t, a, k, h0);
    }
  }
#pragma GCC unroll 4
  for (int q = 0; q < NB; ++q) {
    const __mmask16 store = LanesAt(n0 + 16 * q, n);
#pragma GCC unroll 8
    for (int i = 0; i < MT; ++i) _mm512_mask_storeu_ps(c + i * ldc + n0 + 16 * q, store, acc[q][i]);
  }
}

// SlotRowsTile in float32: A float32, B float32 or bfloat16 (widened as read), 16 k a
// step, the last step masked.
template <typename BT>
struct F32Step {
  using A = float;
  using B = BT;
  static constexpr int64_t kK = 16;
  static int64_t Row(int64_t k) { return k; }
  static __m512 Load(const B* row, int64_t h0, int64_t k) { return ::Load(LanesAt(h0, k), row + h0); }
  template <int MT>
  static inline __attribute__((always_inline)) void Add(__m512 (&acc)[MT], const __m512 (&t)[16], const A* a,
                                                        int64_t k, int64_t h0) {
    if (k - h0 >= 16) {
#pragma GCC unroll 16
      for (int hh = 0; hh < 16; ++hh)
#pragma GCC unroll 8
        for (int i = 0; i < MT; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * k + h0 + hh]), t[hh], acc[i]);
    } else {
      for (int hh = 0; hh < k - h0; ++hh)
#pragma GCC unroll 8
        for (int i = 0; i < MT; ++i) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(a[i * k + h0 + hh]), t[hh], acc[i]);
    }
  }
};

// SlotRowsTile by the bfloat16 dot-product instruction: A and B bfloat16 (as bits; A's
// k pairs as 32-bit words with their halves swapped, [MT, K / 2]), 32 k (16 words) a
// step, K a multiple of 32. `vdpbf16ps` adds a pair's products to a sum one after the
// other, each rounded as a fused multiply-add would round it (a product of two bfloat16
// is exact in float32), the pair's upper half first: with both operands' halves
// swapped, k goes in increasing order, the same chain as in F32Step and F32Tile, the
// same bits (Intel's manual gives that order; measured on Zen 5 over 3.2M random
// sums). The one difference: the instruction reads denormal inputs and writes denormal
// sums as 0, where the float32 kernels keep them. Each transpose feeds twice the k of
// F32Step's, with no widening: a decode step's scores over its slot rows (64 slots x
// 4 heads x 64 positions x 256) went from 85-88 to 66-69 us a call (Zen 5,
// alternating runs).
struct Bf16Step {
  using A = uint32_t;
  using B = uint16_t;
  static constexpr int64_t kK = 32;
  static int64_t Row(int64_t k) { return k / 2; }
  static __m512 Load(const B* row, int64_t h0, int64_t) { return _mm512_castsi512_ps(_mm512_loadu_si512(row + h0)); }
  template <int MT>
  static inline __attribute__((always_inline)) void Add(__m512 (&acc)[MT], const __m512 (&t)[16], const A* a,
                                                        int64_t k, int64_t h0) {
#pragma GCC unroll 16
    for (int pp = 0; pp < 16; ++pp) {
      const __m512bh pairs = (__m512bh)_mm512_rol_epi32(_mm512_castps_si512(t[pp]), 16);
#pragma GCC unroll 8
      for (int i = 0; i < MT; ++i)
        acc[i] = _mm512_dpbf16_ps(acc[i], (__m512bh)_mm512_set1_epi32(a[i * (k / 2) + h0 / 2 + pp]), pairs);
    }
  }
};

// One batch entry of SlotRowsTile: C [M, N] = A [M, K] x B^T, in tiles of 4, 2 and 1 rows.
template <typename Step>
void SlotRowsEntry(const typename Step::A* a, const typename Step::B* b, float* c, int64_t m, int64_t k, int64_t n,
                   const bool* cols) {
  const int64_t lda = Step::Row(k);
  for (int64_t n0 = 0; n0 < n; n0 += 32) {
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) SlotRowsTile<4, 2, Step>(a + i * lda, k, b, n, n0, c + i * n, n, cols, i == 0);
    for (; i + 2 <= m; i += 2) SlotRowsTile<2, 2, Step>(a + i * lda, k, b, n, n0, c + i * n, n, cols, i == 0);
    for (; i < m; ++i) SlotRowsTile<1, 2, Step>(a + i * lda, k, b, n, n0, c + i * n, n, cols, i == 0);
  }
}

// One batch entry by Bf16Step: C [M, N] = A [M, K] x B^T, A bfloat16 bits [M, K].
void Bf16EntryNT(const uint16_t* a, const uint16_t* b, float* c, int64_t m, int64_t k, int64_t n, const bool* cols) {
  thread_local std::vector<uint32_t> swapped;
  swapped.resize(m * k / 2);
  for (int64_t j = 0; j < m * k / 2; ++j) swapped[j] = uint32_t{a[2 * j]} << 16 | a[2 * j + 1];
  SlotRowsEntry<Bf16Step>(swapped.data(), b, c, m, k, n, cols);
}

// One batch entry: C [M, N] = A [M, K] x B^T, B [N, K] (`cols` as in SlotRowsTile).
// Many rows of A (a prefill's queries): B is transposed once, widened to float32,
// into [K, N], and F32Entry runs on it (the same sums).
template <typename B>
void F32EntryNT(const float* a, const B* b, float* c, int64_t m, int64_t k, int64_t n, const bool* cols) {
  if (m > 8) {
    thread_local std::vector<float> bt;
    bt.resize(k * n);
    for (int64_t j = 0; j < n; ++j)
      for (int64_t kk = 0; kk < k; ++kk) {
        float v = 0.0f;
        if (cols == nullptr || cols[j]) {
          if constexpr (std::is_same_v<B, float>) v = b[j * k + kk];
          else {
            const uint32_t bits = uint32_t{b[j * k + kk]} << 16;
            std::memcpy(&v, &bits, 4);
          }
        }
        bt[kk * n + j] = v;
      }
    F32Entry(a, bt.data(), c, m, k, n, cols, nullptr);
    return;
  }
  SlotRowsEntry<F32Step<B>>(a, b, c, m, k, n, cols);
}

// B float32, or bfloat16 (a bfloat16 cache: each element widened exactly as it is
// read, so that with A's entries bfloat16 values the sums are those of bfloat16
// products, half the bytes read).
//
// `nt`: B [batch, N, K] (slot rows), else [batch, K, N]. A float32, or bfloat16 (a
// bfloat16 product's inputs as they come: each entry's widened into a buffer first,
// exactly, where XLA would convert the whole of it in a loop of its own).
// `seen` [R, S] flags, with `over` 1: S = N, the columns of B that count; 2: S = K, its
// rows (not with `nt`); 0: every one counts (`seen` unread). Entry p reads flags row
// p / (batch / R).
template <ffi::DataType BT>
ffi::Error F32Batched(ffi::ThreadPool pool, ffi::AnyBuffer a, ffi::Buffer<BT> b, ffi::Buffer<ffi::PRED> seen,
                      ffi::ResultBuffer<ffi::F32> c, int32_t over, bool nt) {
  using B = std::conditional_t<BT == ffi::F32, float, uint16_t>;
  const auto ad = a.dimensions();
  const auto bd = b.dimensions();
  if (ad.size() != 3 || bd.size() != 3) return ffi::Error::InvalidArgument("f32 batched product: operands must be 3-D");
  const bool narrow = a.element_type() == ffi::BF16;
  if (!narrow && a.element_type() != ffi::F32)
    return ffi::Error::InvalidArgument("f32 batched product: A must be float32 or bfloat16");
  const int64_t batch = ad[0], m = ad[1], k = ad[2], n = nt ? bd[1] : bd[2];
  if (bd[0] != batch || (nt ? bd[2] : bd[1]) != k) return ffi::Error::InvalidArgument("f32 batched product: shapes differ");
  if (nt && over == 2) return ffi::Error::InvalidArgument("f32 batched product: rows' flags with B transposed");
  const auto sd = seen.dimensions();
  const int64_t flag_rows = sd.size() == 2 ? sd[0] : 0;
  if (over != 0 && (flag_rows == 0 || batch % flag_rows || sd[1] != (over == 1 ? n : k)))
    return ffi::Error::InvalidArgument("f32 batched product: flags do not fit the batch or the axis");
  const int64_t per_flags = over != 0 ? batch / flag_rows : 1;
  const bool* flags = over != 0 ? reinterpret_cast<const bool*>(seen.untyped_data()) : nullptr;
  const float* ap = narrow ? nullptr : reinterpret_cast<const float*>(a.untyped_data());
  const uint16_t* narrow_ap = narrow ? reinterpret_cast<const uint16_t*>(a.untyped_data()) : nullptr;
  const B* bp = reinterpret_cast<const B*>(b.untyped_data());
  float* cp = c->typed_data();
  // Items of several entries, a few per thread (an entry is a few microseconds of work).
  const int64_t threads = std::max<int64_t>(pool.num_threads(), 1);
  const int64_t per_item = std::max<int64_t>(1, batch / (4 * threads));
  ParallelFor(pool, (batch + per_item - 1) / per_item, [=](int64_t item) {
    const int64_t p1 = std::min(batch, (item + 1) * per_item);
    thread_local std::vector<float> wide;
    for (int64_t p = item * per_item; p < p1; ++p) {
      const bool* f = flags == nullptr ? nullptr : flags + p / per_flags * sd[1];
      if constexpr (BT != ffi::F32) {
        if (nt && narrow && m <= 8 && k % 32 == 0) {  // a decode step's scores over bfloat16 slot rows
          Bf16EntryNT(narrow_ap + p * m * k, bp + p * k * n, cp + p * m * n, m, k, n, over == 1 ? f : nullptr);
          continue;
        }
      }
      const float* entry = narrow ? nullptr : ap + p * m * k;
      if (narrow) {
        wide.resize(m * k);
        for (int64_t i = 0; i < m * k; i += 16) {
          const __mmask16 lanes = LanesAt(i, m * k);
          _mm512_mask_storeu_ps(wide.data() + i, lanes, Load(lanes, narrow_ap + p * m * k + i));
        }
        entry = wide.data();
      }
      if (nt) F32EntryNT(entry, bp + p * k * n, cp + p * m * n, m, k, n, over == 1 ? f : nullptr);
      else F32Entry(entry, bp + p * k * n, cp + p * m * n, m, k, n, over == 1 ? f : nullptr, over == 2 ? f : nullptr);
    }
  });
  return ffi::Error::Success();
}

// ---- The attention's softmax ---------------------------------------------------------
//
// probs = softmax(where(mask, x, kMasked)) over each row of the scores, the row given in
// parts side by side: part i's scores x_i [R, S_i] (float32) under mask_i [M, S_i]. The
// rows are (batch b, key/value head, step t, query of the group) in that order, and row r
// reads mask row b * steps + t. What `jax.nn.softmax` of the masked scores of the parts
// concatenated computes (e^(v - max) over their sum), in one pass over memory instead of
// XLA:CPU's several (its exp is ~5x slower than this one), and without the
// concatenation; a row that sees nothing comes out uniform, as there.
//
// `layout` orders the parts and gaps: -1 is the next part, w >= 0 a gap of w slots that
// no token sees (no scores, no probabilities: keys not held). Each part (or gap) is
// summed 16 slots at a time from its first slot, into one float32 sum per lane, so a
// row's sum does not depend on how far past its last seen slot the layout reaches.
// Part i's probabilities are written in its result's dtype: float32, or bfloat16 (rounded
// to nearest even, as XLA converts).
constexpr float kMasked = -2.3819763e38f;  // the model's fill value for masked scores

// float32 -> the nearest bfloat16 (ties to even; NaN stays NaN), as its bits in the high half.
inline __m512i RoundToBf16(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i up = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  up = _mm512_mask_mov_epi32(up, nan, _mm512_or_si512(bits, _mm512_set1_epi32(0x00400000)));
  return _mm512_and_si512(up, _mm512_set1_epi32(int32_t(0xffff0000)));
}

// v's lanes written at element `at` of a float32 array, or of a bfloat16 one (rounded to
// nearest even) where `bf16`.
inline void StoreAs(void* out, bool bf16, int64_t at, __mmask16 lanes, __m512 v) {
  if (bf16) {
    const __m256i high = _mm512_cvtepi32_epi16(_mm512_srli_epi32(RoundToBf16(v), 16));
    _mm256_mask_storeu_epi16(static_cast<uint16_t*>(out) + at, lanes, high);
  } else {
    _mm512_mask_storeu_ps(static_cast<float*>(out) + at, lanes, v);
  }
}

// 1 / sqrt(mean(x^2) + eps) of the d floats at x, in every lane: the squares summed 16
// lanes at a time, then the lanes' sums.
inline __m512 InverseRms(const float* x, int64_t d, float eps) {
  __m512 squares = _mm512_setzero_ps();
  for (int64_t j = 0; j < d; j += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(LanesAt(j, d), x + j);
    squares = _mm512_fmadd_ps(v, v, squares);
  }
  return _mm512_set1_ps(1.0f / std::sqrt(_mm512_reduce_add_ps(squares) / static_cast<float>(d) + eps));
}

// (x[j..] * inverse) * (1 + scale[j..]): RMS normalisation's lanes, as the model rounds them.
inline __m512 Normed(const float* x, const float* scale, int64_t j, __mmask16 lanes, __m512 inverse) {
  const __m512 w = _mm512_add_ps(_mm512_set1_ps(1.0f), _mm512_maskz_loadu_ps(lanes, scale + j));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(lanes, x + j), inverse), w);
}

// row(r) for each r < rows (of `width` elements each), in items of about 2^16 elements: on
// the calling thread alone where there is one item (less work than waking a helper).
template <typename Row>
void ForRows(ffi::ThreadPool& pool, int64_t rows, int64_t width, Row row) {
  const int64_t per_item = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(width, 1));
  if (rows <= per_item) {
    for (int64_t r = 0; r < rows; ++r) row(r);
    return;
  }
  ParallelFor(pool, (rows + per_item - 1) / per_item, [=](int64_t item) {
    for (int64_t r = item * per_item; r < std::min(rows, (item + 1) * per_item); ++r) row(r);
  });
}

struct SoftmaxPart {
  const float* x = nullptr;  // null: a gap
  const bool* mask = nullptr;
  void* out = nullptr;
  int64_t width = 0;
  bool bf16 = false;
};

ffi::Error Softmax(ffi::ThreadPool pool, ffi::RemainingArgs args, ffi::RemainingRets rets, int64_t heads,
                   int64_t steps, int64_t group, ffi::Span<const int64_t> layout) {
  const size_t n = rets.size();
  auto bad = [] { return ffi::Error::InvalidArgument("softmax: parts x [B * K * T * G, S_i], mask [B * T, S_i]"); };
  if (args.size() != 2 * n || heads <= 0 || steps <= 0 || group <= 0) return bad();
  std::vector<SoftmaxPart> parts;
  int64_t rows = -1, total = 0;
  size_t next = 0;
  for (const int64_t entry : layout) {
    SoftmaxPart part;
    if (entry >= 0) {
      part.width = entry;
    } else {
      if (next >= n) return bad();
      auto x = args.get<ffi::AnyBuffer>(next);
      auto mask = args.get<ffi::AnyBuffer>(n + next);
      auto out = rets.get<ffi::AnyBuffer>(next);
      if (!x.has_value() || !mask.has_value() || !out.has_value()) return bad();
      const auto xd = x->dimensions(), md = mask->dimensions(), od = (*out)->dimensions();
      const auto type = (*out)->element_type();
      if (x->element_type() != ffi::F32 || mask->element_type() != ffi::PRED || xd.size() != 2 || md.size() != 2 ||
          od.size() != 2 || od[0] != xd[0] || od[1] != xd[1] || md[1] != xd[1] || (rows >= 0 && xd[0] != rows) ||
          xd[0] % (heads * steps * group) || md[0] != xd[0] / (heads * group) ||
          (type != ffi::F32 && type != ffi::BF16))
        return bad();
      rows = xd[0];
      part.x = x->typed_data<float>();
      part.mask = reinterpret_cast<const bool*>(mask->untyped_data());
      part.out = (*out)->untyped_data();
      part.width = xd[1];
      part.bf16 = type == ffi::BF16;
      ++next;
    }
    if (part.x != nullptr) total += part.width;  // the slots whose exponentials are held
    parts.push_back(part);
  }
  if (next != n || rows < 0) return bad();
  const int64_t per_item = std::max<int64_t>(1, rows / (8 * std::max<int64_t>(pool.num_threads(), 1)));
  ParallelFor(pool, (rows + per_item - 1) / per_item, [=, &parts](int64_t item) {
    thread_local std::vector<float> e;
    e.resize(total);
    for (int64_t r = item * per_item; r < std::min(rows, (item + 1) * per_item); ++r) {
      const int64_t mask_row = r / (heads * steps * group) * steps + r / group % steps;
      auto masked = [&](const SoftmaxPart& p, int64_t j) {  // scores j.. of part p, kMasked where not seen
        const __mmask16 lanes = LanesAt(j, p.width);
        if (p.x == nullptr) return _mm512_set1_ps(kMasked);
        const bool* seen = p.mask + mask_row * p.width + j;
        const __mmask16 on = _mm_cmpneq_epi8_mask(_mm_maskz_loadu_epi8(lanes, seen), _mm_setzero_si128());
        return _mm512_mask_loadu_ps(_mm512_set1_ps(kMasked), on & lanes, p.x + r * p.width + j);
      };
      __m512 top = _mm512_set1_ps(kMasked);
      for (const SoftmaxPart& p : parts)
        for (int64_t j = 0; p.x != nullptr && j < p.width; j += 16)
          top = _mm512_mask_max_ps(top, LanesAt(j, p.width), top, masked(p, j));
      const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(top));
      __m512 sum = _mm512_setzero_ps();
      float* held = e.data();
      for (const SoftmaxPart& p : parts) {
        for (int64_t j = 0; j < p.width; j += 16) {
          const __mmask16 lanes = LanesAt(j, p.width);
          const __m512 v = _mm512_maskz_mov_ps(lanes, Exp(_mm512_sub_ps(masked(p, j), m)));
          sum = _mm512_add_ps(sum, v);
          if (p.x != nullptr) _mm512_mask_storeu_ps(held + j, lanes, v);
        }
        if (p.x != nullptr) held += p.width;
      }
      const __m512 all = _mm512_set1_ps(_mm512_reduce_add_ps(sum));
      held = e.data();
      for (const SoftmaxPart& p : parts) {
        if (p.x == nullptr) continue;
        for (int64_t j = 0; j < p.width; j += 16) {
          const __mmask16 lanes = LanesAt(j, p.width);
          const __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(lanes, held + j), all);
          StoreAs(p.out, p.bf16, r * p.width + j, lanes, v);
        }
        held += p.width;
      }
    }
  });
  return ffi::Error::Success();
}

// ---- RMS normalisation -------------------------------------------------------------
//
// y = x / sqrt(mean(x^2) + eps) * (1 + scale), plus `residual` where `add`, for each row of
// x [R, D] (float32), written as float32 or as bfloat16 (rounded to nearest even). Each
// row's sum of squares is one float32 sum per lane over its 16-wide chunks, then
// the lanes', whatever R: a row's result does not depend on its batch. XLA:CPU runs
// the normalisation as a reduction and one or two loops, ~15 microseconds for 64 x
// 640, most of it fixed cost; this is one pass.
ffi::Error RmsNorm(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> scale,
                   ffi::Buffer<ffi::F32> residual, ffi::Result<ffi::AnyBuffer> out, float eps, bool add) {
  const auto xd = x.dimensions();
  const auto od = out->dimensions();
  const auto type = out->element_type();
  if (xd.size() != 2 || od.size() != 2 || od[0] != xd[0] || od[1] != xd[1] || scale.element_count() != xd[1] ||
      (add && residual.element_count() != x.element_count()) || (type != ffi::F32 && type != ffi::BF16))
    return ffi::Error::InvalidArgument("rms_norm: x [R, D], scale [D], residual [R, D], a float32 or bfloat16 result");
  const int64_t rows = xd[0], d = xd[1];
  const float* xp = x.typed_data();
  const float* sp = scale.typed_data();
  const float* rp = add ? residual.typed_data() : nullptr;
  void* op = out->untyped_data();
  const bool bf16 = type == ffi::BF16;
  ForRows(pool, rows, d, [=](int64_t r) {
    const float* in = xp + r * d;
    const __m512 inverse = InverseRms(in, d, eps);
    for (int64_t j = 0; j < d; j += 16) {
      const __mmask16 lanes = LanesAt(j, d);
      __m512 y = Normed(in, sp, j, lanes, inverse);
      if (rp != nullptr) y = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, rp + r * d + j), y);
      StoreAs(op, bf16, r * d + j, lanes, y);
    }
  });
  return ffi::Error::Success();
}

// ---- A head's RMS normalisation and rotary embedding, in one pass -------------------
//
// For each row of x [R, H] (float32; rows (position p, head) in that order, `heads` per
// position): y = x / sqrt(mean(x^2) + eps) * (1 + scale) as in RmsNorm, then its two
// halves turned by position p's angles, (a, b) -> (a cos - b sin, b cos + a sin) with
// sin and cos [P, H / 2], then times `factor` (the query's scale), written as float32 or
// bfloat16 (rounded to nearest even: a bfloat16 product's input). What the model's
// query and key norms, `apply_rope` and the query scaling compute, each product
// rounded as there (no fused multiply-adds: this file is built with them off), in
// place of XLA:CPU's five or six small loops a layer.
ffi::Error NormRope(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> scale,
                    ffi::Buffer<ffi::F32> sin, ffi::Buffer<ffi::F32> cos, ffi::Result<ffi::AnyBuffer> out,
                    int64_t heads, float eps, float factor) {
  const auto xd = x.dimensions();
  const auto sd = sin.dimensions();
  if (xd.size() != 2 || sd.size() != 2 || xd[1] % 2 || heads <= 0 || scale.element_count() != xd[1] ||
      sd[1] * 2 != xd[1] || sd[0] * heads != xd[0] || cos.element_count() != sin.element_count() ||
      out->element_count() != x.element_count() || (out->element_type() != ffi::F32 && out->element_type() != ffi::BF16))
    return ffi::Error::InvalidArgument("norm_rope: x [P * heads, H], scale [H], sin and cos [P, H / 2], "
                                       "a float32 or bfloat16 result like x");
  const int64_t rows = xd[0], h = xd[1], half = h / 2;
  const float* xp = x.typed_data();
  const float* sp = scale.typed_data();
  const float* sinp = sin.typed_data();
  const float* cosp = cos.typed_data();
  void* op = out->untyped_data();
  const bool bf16 = out->element_type() == ffi::BF16;
  ForRows(pool, rows, h, [=](int64_t r) {
    const float* in = xp + r * h;
    const __m512 inverse = InverseRms(in, h, eps);
    const __m512 times = _mm512_set1_ps(factor);
    const float* s = sinp + r / heads * half;
    const float* c = cosp + r / heads * half;
    for (int64_t j = 0; j < half; j += 16) {
      const __mmask16 lanes = LanesAt(j, half);
      const __m512 a = Normed(in, sp, j, lanes, inverse), b = Normed(in, sp, half + j, lanes, inverse);
      const __m512 sj = _mm512_maskz_loadu_ps(lanes, s + j), cj = _mm512_maskz_loadu_ps(lanes, c + j);
      const __m512 first = _mm512_sub_ps(_mm512_mul_ps(a, cj), _mm512_mul_ps(b, sj));
      const __m512 second = _mm512_add_ps(_mm512_mul_ps(b, cj), _mm512_mul_ps(a, sj));
      StoreAs(op, bf16, r * h + j, lanes, _mm512_mul_ps(first, times));
      StoreAs(op, bf16, r * h + half + j, lanes, _mm512_mul_ps(second, times));
    }
  });
  return ffi::Error::Success();
}

// ---- GeGLU's activation ------------------------------------------------------------
//
// out = gelu_tanh(gate) * up, elementwise over float32 [N], written as bfloat16 (rounded
// to nearest even: the next product's input) or float32. gelu_tanh(x) =
// x / 2 (1 + tanh(y)), y = sqrt(2 / pi) (x + 0.044715 x^3), is computed as
// x / (1 + e^(-2y)), the same function (1 + tanh(y) = 2 / (1 + e^(-2y))) with no
// cancellation, by `Exp`: within a few float32 ulp of XLA's. For a decode step's 64 x 2048
// of the bundled model: ~48 microseconds a call, XLA:CPU's loop ~58 (and its output float32).
ffi::Error Geglu(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> gate, ffi::Buffer<ffi::F32> up,
                 ffi::Result<ffi::AnyBuffer> out) {
  const int64_t n = gate.element_count();
  const auto type = out->element_type();
  if (up.element_count() != n || out->element_count() != n || (type != ffi::F32 && type != ffi::BF16))
    return ffi::Error::InvalidArgument("geglu: gate, up and the result of one size, a float32 or bfloat16 result");
  const float* gp = gate.typed_data();
  const float* upp = up.typed_data();
  void* op = out->untyped_data();
  const bool bf16 = type == ffi::BF16;
  auto run = [=](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i += 16) {
      const __mmask16 lanes = LanesAt(i, end);
      const __m512 x = _mm512_maskz_loadu_ps(lanes, gp + i);
      const __m512 cube = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
      const __m512 y = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
                                     _mm512_fmadd_ps(cube, _mm512_set1_ps(0.044715f), x));
      const __m512 e = Exp(_mm512_mul_ps(y, _mm512_set1_ps(-2.0f)));
      const __m512 g = _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
      StoreAs(op, bf16, i, lanes, _mm512_mul_ps(g, _mm512_maskz_loadu_ps(lanes, upp + i)));
    }
  };
  constexpr int64_t kBlock = 1 << 16;  // elements per block (a multiple of 16): ForRows' item
  ForRows(pool, (n + kBlock - 1) / kBlock, kBlock, [=](int64_t i) { run(i * kBlock, std::min(n, (i + 1) * kBlock)); });
  return ffi::Error::Success();
}

// ---- top-k of float32 rows (`Best`, above) ----------------------------------

ffi::Error TopK(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::ResultBuffer<ffi::F32> values,
                ffi::ResultBuffer<ffi::S32> indices) {
  const auto xd = x.dimensions();
  const auto vd = values->dimensions();
  const size_t d = xd.size();
  bool fits = d >= 1 && vd.size() == d && vd[d - 1] >= 1 && vd[d - 1] <= xd[d - 1];
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < d && fits; ++i) fits = vd[i] == xd[i], rows *= xd[i];
  if (!fits) return ffi::Error::InvalidArgument("top_k: x [..., N] and results [..., k], 1 <= k <= N");
  const int64_t n = xd[d - 1], k = vd[d - 1];
  if (n > INT32_MAX) return ffi::Error::InvalidArgument("top_k: more than 2^31 - 1 entries in a row");
  const auto* xp = reinterpret_cast<const int32_t*>(x.untyped_data());
  float* vp = values->typed_data();
  int32_t* ip = indices->typed_data();
  const int64_t per_item = std::max<int64_t>(1, rows / (4 * std::max<int64_t>(pool.num_threads(), 1)));
  ParallelFor(pool, (rows + per_item - 1) / per_item, [=](int64_t item) {
    thread_local Best best;
    for (int64_t r = item * per_item; r < std::min(rows, (item + 1) * per_item); ++r) {
      const int32_t* row = xp + r * n;
      best.Reset(k);
      for (int64_t i = 0; i < n; i += 16) {  // 16 entries compared at once, those entering stored compressed
        const __mmask16 lanes = LanesAt(i, n);
        const __m512i key = OrderKeys(_mm512_maskz_loadu_epi32(lanes, row + i));
        const __mmask16 above =
            best.any ? _mm512_mask_cmpgt_epi32_mask(lanes, key, _mm512_set1_epi32(best.threshold)) : lanes;
        if (!above) continue;
        const __m512i index = _mm512_add_epi32(_mm512_set1_epi32(int32_t(i)),
                                               _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        _mm512_mask_compressstoreu_epi32(best.keys.data() + best.count, above, key);
        _mm512_mask_compressstoreu_epi32(best.where.data() + best.count, above, index);
        best.count += __builtin_popcount(above);
        if (best.count >= best.capacity) best.Select(false);
      }
      best.Write(vp + r * k, ip + r * k);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

// `nt`: B is [N, K] (else [K, N]); `packed`: B is packed (`Pack`, every panel), 1-D;
// `isa` as in Product.
XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseBf16Product, Product,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<bool>("nt")
                                  .Attr<bool>("packed")
                                  .Attr<int32_t>("isa"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseBf16PackedParts, PackedParts,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .RemainingRets()
                                  .Attr<int32_t>("isa"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseBf16Logits, Logits,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("isa"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseBf16LogitsTopK, LogitsTopK,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("isa"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseF32Batched, F32Batched<ffi::F32>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::PRED>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("over")
                                  .Attr<bool>("nt"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseF32Bf16Batched, F32Batched<ffi::BF16>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::BF16>>()
                                  .Arg<ffi::Buffer<ffi::PRED>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("over")
                                  .Attr<bool>("nt"));

// The same with B a bfloat16 array held as its bits (uint16): a cache the caller
// keeps that way so that XLA writes into it in place.
XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseF32BitsBatched, F32Batched<ffi::U16>,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::Buffer<ffi::U16>>()
                                  .Arg<ffi::Buffer<ffi::PRED>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attr<int32_t>("over")
                                  .Attr<bool>("nt"));

// The parts' scores, then their masks; a result per part.
XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseSoftmax, Softmax,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .RemainingArgs()
                                  .RemainingRets()
                                  .Attr<int64_t>("heads")
                                  .Attr<int64_t>("steps")
                                  .Attr<int64_t>("group")
                                  .Attr<ffi::Span<const int64_t>>("layout"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseRmsNorm, RmsNorm,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<float>("eps")
                                  .Attr<bool>("add"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseGeglu, Geglu,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseNormRope, NormRope,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<int64_t>("heads")
                                  .Attr<float>("eps")
                                  .Attr<float>("factor"));

// The results' shapes give k.
XLA_FFI_DEFINE_HANDLER_SYMBOL(WcseTopK, TopK,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::S32>>());

namespace {
// `iterations` of 24 independent `vdpbf16ps` on registers: the instruction's own rate.
float Avx512PeakLoop(int64_t iterations) {
  __m512 acc[24];
  for (__m512& a : acc) a = _mm512_setzero_ps();
  __m512bh x = (__m512bh)_mm512_set1_epi32(0x3c003c00), y = x;
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < 24; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], x, y);
    __asm__ volatile("" : "+v"(x), "+v"(y));  // not hoisted: operands the loop might change
  }
  float sum = 0;
  for (const __m512& a : acc) sum += _mm512_reduce_add_ps(a);
  return sum;
}
constexpr double kAvx512LoopFlops = 24.0 * 16 * 2 * 2;  // per iteration
}  // namespace

// FLOP/s of the bfloat16 dot-product instruction alone (AMX's `tdpbf16ps` if `amx` and
// it can run, else AVX512-BF16's `vdpbf16ps`), from registers on `threads` threads at
// once for about `seconds`: the compute roof no product can pass. 0 where the
// instruction cannot run here.
extern "C" double WcseBf16PeakFlops(int32_t amx, int32_t threads, double seconds) {
  const bool tiles = amx && AmxAllowed();
  if (amx && !tiles) return 0;
  const double per = tiles ? kAmxLoopFlops : kAvx512LoopFlops;
  auto loop = [tiles](int64_t n) { return tiles ? AmxPeakLoop(n) : Avx512PeakLoop(n); };
  auto run = [&](int64_t n) {  // seconds for n iterations on every thread
    std::vector<std::thread> pool;
    std::atomic<float> sink{0};
    const auto start = std::chrono::steady_clock::now();
    for (int32_t t = 0; t < std::max(threads, 1); ++t) pool.emplace_back([&] { sink = sink + loop(n); });
    for (auto& t : pool) t.join();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  int64_t n = 1 << 14;
  while (run(n) < 0.05 && n < (int64_t{1} << 40)) n *= 2;  // warmed up, and long enough to time
  n = std::max<int64_t>(1, int64_t(n * seconds / 0.05));
  return per * n * std::max(threads, 1) / run(n);
}

// 1 when the AMX path can run in this process (the CPU has AMX-BF16 and the OS granted its state).
extern "C" int WcseAmxAllowed() { return AmxAllowed() ? 1 : 0; }
