// The status page's recent history: a small ring of samples in shared
// memory, so the page draws the last minutes as soon as it opens.
//
// One writer: the master, on its tick, every `status_history_interval`
// (master/history_writer.h). Readers (the status app, in any worker) copy it
// out. A sample holds, per series, what happened during its interval:
// requests, 5xx answers, the active gauge at its end and the p99 of the
// response times that ended in it. Series 0 is the whole server (client
// requests), then one per pool, then one per server (global index).
//
// Memory: kHistorySamples x (8 + 16 x series) bytes, ~2 KiB per series.
//
// Layout: [HistoryHeader][uint64 unix time x kHistorySamples]
//         [HistoryPoint x series, per sample x kHistorySamples]
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace pasture::shm {

inline constexpr uint32_t kHistorySamples = 120;  // 10 minutes at the default 5 s

// A value with one writer (the master): relaxed atomic access, no lock.
struct Cell32 {
  uint32_t v;
  uint32_t get() const { return std::atomic_ref<uint32_t>(const_cast<uint32_t&>(v)).load(std::memory_order_relaxed); }
  void set(uint32_t n) { std::atomic_ref<uint32_t>(v).store(n, std::memory_order_relaxed); }
};
static_assert(std::atomic_ref<uint32_t>::is_always_lock_free);

struct HistoryPoint {
  Cell32 requests;  // during the interval: client requests / pool requests / times the server was selected
  Cell32 errors;    // 5xx answers during the interval
  Cell32 active;    // at the end: open client connections / requests in flight
  Cell32 p99_us;    // of the response times recorded during the interval; 0 = none
};

struct alignas(64) HistoryHeader {
  // Samples written since the region was made (or carried): sample k is at
  // slot k % kHistorySamples. Stored with release after the sample.
  std::atomic<uint64_t> written;
  std::atomic<uint32_t> interval_ms;  // 0: history is off
};

struct HistorySizes {
  uint32_t n_series = 0;
  size_t total() const {
    return sizeof(HistoryHeader) + kHistorySamples * (sizeof(uint64_t) + n_series * sizeof(HistoryPoint));
  }
};

// A view of the ring inside a region.
struct HistoryRing {
  char* base = nullptr;
  uint32_t n_series = 0;
  HistoryHeader& header() const { return *reinterpret_cast<HistoryHeader*>(base); }
  uint64_t& time(uint64_t k) const {
    return reinterpret_cast<uint64_t*>(base + sizeof(HistoryHeader))[k % kHistorySamples];
  }
  HistoryPoint& point(uint64_t k, uint32_t series) const {
    char* points = base + sizeof(HistoryHeader) + kHistorySamples * sizeof(uint64_t);
    return reinterpret_cast<HistoryPoint*>(points)[(k % kHistorySamples) * n_series + series];
  }
  // The samples a reader may copy: [first, end). The slot the writer fills
  // next is left out, so a copy made within one interval is never torn.
  void readable(uint64_t* first, uint64_t* end) const {
    *end = header().written.load(std::memory_order_acquire);
    *first = *end > kHistorySamples - 1 ? *end - (kHistorySamples - 1) : 0;
  }
};

}  // namespace pasture::shm
