// The command line's heap on huge pages (lib/cli.ts asks for it; a library leaves its host process's allocator alone).
//
// A merge's main thread touches tens of MB of fresh heap once (headers, indexes, name texts, the columns Node's
// ArrayBuffers hold), and on a paravirtualized guest each first touch of a 4 KiB page costs ~5-11 us: on the 18,867-tensor
// MoE pair that was ~4,200 of its ~13,000 page faults. Here glibc's main heap is grown once by `bytes`, that range advised
// as transparent huge pages (one fault per 2 MiB) and handed back to the heap, which then serves the run's allocations
// from it. BENCHMARKS.md (2026-12-06) has the measurement.
#pragma once
#include <cstddef>

namespace wm {

// glibc only, once per process (later calls do nothing and return the first call's answer). Sets glibc's mmap and trim
// thresholds to the values its own dynamic thresholds reach after a 32 MiB free (32 and 64 MiB), so that blocks up to
// 32 MiB come from the heap and the advised range is not trimmed away, then grows the heap by `bytes` (at most 32 MiB)
// and advises its whole 2 MiB pages. Returns whether that advice was taken (false: not glibc, THP off, or bytes < 4 MiB).
bool preferHugePageHeap(size_t bytes);

}  // namespace wm
