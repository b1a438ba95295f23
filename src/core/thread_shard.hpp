// src/core/thread_shard.hpp — what each thread keeps of its own in a pool:
// counters that only it writes, a cache of free arena blocks, the records it
// allocated that the pool's lists have not taken in yet, and the records it
// freed that they have not let go yet.
//
// Threads are told apart by a process-wide slot index (this_thread_slot()),
// given out when a thread first uses a pool and taken back when it exits, so
// a pool holds at most one shard per slot and a slot's shard passes to the
// next thread that gets the slot (with its counters: they are running sums).
//
// Reader slots: a few (record, count) pairs for the Read pins of read-shared
// buffers (Note [Read-shared buffers] in buffer_record.hpp).
//
// Counters (pins, net pinned bytes, net buffers per tier) are written only by
// the owning thread, with a plain load and store: no read-modify-write, no
// line another thread writes. Readers (stats(), check_invariants()) add
// every shard to the pool's own counters. `seq` is odd while the owner is
// between a fast pin's or unpin's count and its counter update; after freezing
// every record, check_invariants() waits for each odd seq to move on, and
// then the counters and the records agree.
//
// Block caches: per memory tier and size class, a few free blocks the
// thread took from the arena (still counted there as used). An allocation
// of a class size pops one, a free pushes one, without the pool's lock.
// The slack is bounded: a shard keeps at most cache_limit(tier) bytes
// (min(2 MiB, capacity / 32)), and the pool gives every cached block back
// before it evicts anything to make room (PoolCore::make_room), so cached
// blocks never cost a spill or an OutOfMemory. PoolStats shows them as
// TierStats::thread_cached_bytes.
//
// Pending records: a record allocated on the fast path is kept by its home
// shard (as `newest`, then in its `pending` list), not in the pool's lists;
// PoolCore::adopt() takes a batch in (under mu_ and this lock) once 64 are
// waiting, or whenever the pool needs to see every record (an eviction
// scan, check_invariants(), shutdown). A record freed while still pending
// never meets the pool's lock.
#pragma once

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

#include "base/spin_lock.hpp"
#include "buffer_record.hpp"
#include "spillway/tier.hpp"

namespace spillway::detail {

// The calling thread's slot index: -1 before it asks, -2 when it has none
// (more than kMaxThreadSlots threads at once, or a thread that is exiting).
// initial-exec: one load from the thread pointer on the pin path, no
// __tls_get_addr call (4 bytes of static TLS). Defined in thread_shard.cpp.
extern __thread int tls_thread_slot __attribute__((tls_model("initial-exec")));
int take_thread_slot();  // the first time a thread asks

// The calling thread's slot index, or -1 when it has none: such a thread
// takes the slow path for everything.
inline int this_thread_slot() {
  const int s = tls_thread_slot;
  if (s >= 0) return s;
  return s == -2 ? -1 : take_thread_slot();
}
inline constexpr int kMaxThreadSlots = 1024;

// Size classes of the block caches: arena footprints 256, 512, 768, then
// 2^k x {1, 1.25, 1.5, 1.75} from 1 KiB, up to 1 MiB. Only footprints that
// are exactly a class are cached (a footprint is never rounded up to one).
inline constexpr int kSizeClasses = 3 + 10 * 4 + 1;
inline constexpr std::size_t kLargestCachedBlock = std::size_t{1} << 20;
// The class of an arena footprint, or -1.
constexpr int size_class(std::size_t f) {
  if (f < 256 || f > kLargestCachedBlock || f % 256 != 0) return -1;
  if (f < 1024) return static_cast<int>(f / 256) - 1;  // 256, 512, 768
  const int k = std::bit_width(f) - 1;                 // 2^k <= f < 2^(k+1), k >= 10
  const std::size_t quarter = std::size_t{1} << (k - 2);
  if (f % quarter != 0) return -1;
  const int m = static_cast<int>(f / quarter);  // 4..7
  return 3 + (k - 10) * 4 + (m - 4);
}
constexpr std::size_t compute_class_bytes(int c) {
  if (c < 3) return static_cast<std::size_t>(c + 1) * 256;
  const int k = 10 + (c - 3) / 4;
  const int m = 4 + (c - 3) % 4;
  return static_cast<std::size_t>(m) << (k - 2);
}
// A table: the allocation and free fast paths ask for a class's bytes
// several times each.
inline constexpr std::array<std::size_t, kSizeClasses> kClassBytes = [] {
  std::array<std::size_t, kSizeClasses> t{};
  for (int c = 0; c < kSizeClasses; ++c) t[static_cast<std::size_t>(c)] = compute_class_bytes(c);
  return t;
}();
constexpr std::size_t class_bytes(int c) { return kClassBytes[static_cast<std::size_t>(c)]; }
static_assert(size_class(256) == 0 && size_class(1024) == 3 && size_class(1280) == 4 &&
              size_class(kLargestCachedBlock) == kSizeClasses - 1 && size_class(1536 + 256) == 6 &&
              size_class(4096 + 256) == -1 && class_bytes(kSizeClasses - 1) == kLargestCachedBlock);

struct CacheBin {
  static constexpr int kSlots = 8;
  int count = 0;
  std::array<void*, kSlots> blocks{};
};

// One reader slot (Note [Read-shared buffers] in buffer_record.hpp): the
// Read pins of `record` that this thread made while it was read-shared.
// Only the owning thread points a slot at a record (while count is 0) and
// counts up; whoever ends such a pin counts down.
struct ReaderSlot {
  std::atomic<std::uint32_t> count{0};
  std::atomic<BufferRecord*> record{nullptr};
};

struct alignas(64) ThreadShard {
  // ---- written by the owning thread only (plain load + store) ----
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> pins{0};
  std::array<std::atomic<std::int64_t>, 2> pinned_bytes{};           // Device, Host: net
  std::array<std::atomic<std::int64_t>, kTierCount> buffers{};       // net fast allocations - frees
  std::atomic<std::int64_t> handles{0};                             // Buffers made - freed here
  std::array<std::atomic<std::uint64_t>, 2> cached_bytes{};          // in `bins` (under lock)

  // ---- under `lock` ----
  SpinLock lock;
  std::uint64_t next_id = 0, id_end = 0;  // a block of buffer ids taken from the pool
  std::array<std::array<CacheBin, kSizeClasses>, 2> bins{};
  // Pending records: `newest` (the last one allocated, while it is still
  // pending) and the list of the others. A record allocated and freed
  // before the next allocation never meets the list.
  BufferRecord* newest = nullptr;
  RecordList pending{kAllList};
  BufferRecord* garbage = nullptr;
  int garbage_count = 0;
  // Records freed while pending, kept for the next allocations (their
  // memory only: reset to a fresh record before reuse).
  static constexpr int kSpareRecords = 32;
  std::array<BufferRecord*, kSpareRecords> spare{};
  int spares = 0;
  // pending_count() + garbage_count, for readers that skip idle shards
  // without taking the lock (stored under it).
  std::atomic<int> backlog{0};
  int pending_count() const { return static_cast<int>(pending.size()) + (newest != nullptr ? 1 : 0); }
  void add_pending(BufferRecord* r) {
    if (newest != nullptr) pending.push_back(newest);
    newest = r;
  }
  void remove_pending(BufferRecord* r) {
    if (newest == r) {
      newest = nullptr;
    } else {
      pending.remove(r);
    }
  }
  // Takes one pending record out, or returns nullptr.
  BufferRecord* pop_pending() {
    if (BufferRecord* r = pending.front()) {
      pending.remove(r);
      return r;
    }
    return std::exchange(newest, nullptr);
  }
  void count_backlog() { backlog.store(pending_count() + garbage_count, std::memory_order_relaxed); }

  // ---- reader slots: counted down by other threads too, so on their own line ----
  static constexpr int kReaderSlots = 4;
  alignas(64) std::array<ReaderSlot, kReaderSlots> readers{};
  // The slot for r: the one pointing at it, else an unused one (pointed at
  // it now), else nullptr. Owner only.
  ReaderSlot* reader_slot(BufferRecord* r) {
    ReaderSlot* unused = nullptr;
    for (ReaderSlot& s : readers) {
      if (s.record.load(std::memory_order_relaxed) == r) return &s;
      if (unused == nullptr && s.count.load(std::memory_order_relaxed) == 0) unused = &s;
    }
    // Published by the count's increment that follows (a seq_cst RMW).
    if (unused != nullptr) unused->record.store(r, std::memory_order_relaxed);
    return unused;
  }

  void add(std::atomic<std::int64_t>& c, std::int64_t d) { c.store(c.load(std::memory_order_relaxed) + d, std::memory_order_relaxed); }
  void add(std::atomic<std::uint64_t>& c, std::uint64_t d) { c.store(c.load(std::memory_order_relaxed) + d, std::memory_order_relaxed); }
  // Around a fast pin's or unpin's count and counter update.
  void enter() { seq.store(seq.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  void leave() { seq.store(seq.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
  // Around a reader-slot pin or unpin: seq_cst, so that a revocation's grace
  // period that misses this window saw the window begin after it
  // (Note [Read-shared buffers]).
  void enter_reader() { seq.store(seq.load(std::memory_order_relaxed) + 1, std::memory_order_seq_cst); }
};

// A pool's shards, one per thread slot, made on first use.
class ShardTable {
 public:
  ShardTable();
  ~ShardTable();
  ShardTable(const ShardTable&) = delete;
  ShardTable& operator=(const ShardTable&) = delete;

  // The calling thread's shard, or nullptr when it has no slot.
  ThreadShard* mine() {
    const int slot = this_thread_slot();
    if (slot < 0) return nullptr;
    ThreadShard* s = slots_[static_cast<std::size_t>(slot)].load(std::memory_order_acquire);
    return s != nullptr ? s : make(slot);
  }
  // Calls f(ThreadShard&) for every shard made so far.
  template <class F>
  void for_each(F&& f) const {
    const int n = high_.load(std::memory_order_acquire);
    for (int i = 0; i < n; ++i) {
      if (ThreadShard* s = slots_[static_cast<std::size_t>(i)].load(std::memory_order_acquire)) f(*s);
    }
  }

 private:
  ThreadShard* make(int slot);
  std::unique_ptr<std::atomic<ThreadShard*>[]> slots_;
  std::atomic<int> high_{0};  // slots below this may hold a shard
};

}  // namespace spillway::detail
