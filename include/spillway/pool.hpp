// spillway/pool.hpp — the tiered pool, its buffers and their pins.
//
// A Pool owns three tiers (device, host, disk). allocate() returns a Buffer:
// a move-only handle to bytes that may live on any tier and move between
// them under pressure. To touch the bytes, pin the buffer on a memory tier:
// the Pin is a short-lived RAII lease that keeps the bytes in place and gives
// a pointer. When no pin holds a buffer, the pool may spill it down
// (device -> host -> disk) to make room, and a later pin brings it back.
//
// Thread safety: every Pool and Buffer method may be called from any thread
// concurrently. A Pin belongs to one thread at a time (it may be moved to
// another). Pins are residency leases, not data locks: two threads holding
// pins on the same buffer see the same bytes and must order their accesses.
// A pin of a buffer already on the asked tier, its release, and allocate and
// free of common sizes take no pool-wide lock (docs/concurrency.md), so
// threads that pin their own buffers do not wait for each other.
//
// Lifetimes: a Pin must not outlive its Buffer. Destroying a Buffer frees
// its bytes on every tier. Destroying the Pool with live Buffers frees all
// storage and detaches them: their size()/id() still answer, other calls
// throw std::logic_error. Spill files are unlinked from the moment they are
// opened, so nothing is left on disk after the pool (or the process) ends.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "spillway/errors.hpp"
#include "spillway/options.hpp"
#include "spillway/stats.hpp"
#include "spillway/tier.hpp"
#include "spillway/trace.hpp"

// The CUDA runtime's stream type is `CUstream_st*` (cudaStream_t); declared
// here so that the stream-aware calls need no CUDA header.
struct CUstream_st;

namespace spillway {

// A CUDA stream (cudaStream_t) in spillway's signatures; nullptr is the
// legacy default stream.
using Stream = CUstream_st*;

namespace detail {
class PoolCore;
struct BufferRecord;
struct ReaderSlot;
struct PoolAccess;  // tests and the stress harness reach the core through it
}  // namespace detail

class Buffer;

// An RAII lease on a buffer's bytes on one memory tier. Move-only. While it
// lives the buffer cannot move. Obtain one from Buffer::pin.
class Pin {
 public:
  Pin() = default;
  Pin(Pin&& other) noexcept;
  Pin& operator=(Pin&& other) noexcept;
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;
  ~Pin();

  void* data() { return data_; }
  const void* data() const { return data_; }
  std::size_t size() const { return size_; }
  Tier tier() const { return tier_; }
  Access access() const { return access_; }
  explicit operator bool() const { return record_ != nullptr; }

  // The bytes as a span of T (size() / sizeof(T) elements).
  template <class T>
  std::span<T> as() {
    return {static_cast<T*>(data_), size_ / sizeof(T)};
  }
  template <class T>
  std::span<const T> as() const {
    return {static_cast<const T*>(data_), size_ / sizeof(T)};
  }

  // Ends the lease now (the destructor does the same).
  void release() noexcept;
  // Ends the lease once the work queued on `stream` so far has finished,
  // without waiting for it: the buffer stays pinned (and cannot move) until
  // then. For a Device pin whose kernels run on `stream`. Where there is no
  // CUDA device tier (Simulated backend), the lease ends now. Throws
  // std::runtime_error naming the CUDA call when the runtime refuses it (the
  // lease then ends after a full wait for the stream, never early).
  void release(Stream stream);

 private:
  friend class Buffer;
  Pin(detail::PoolCore* core, detail::BufferRecord* record, void* data, std::size_t size, Tier tier,
      Access access, detail::ReaderSlot* reader) noexcept;

  // A plain pointer: a Pin lives shorter than its Buffer, which keeps the
  // core alive (and a Buffer freed while pinned hands the core to its
  // record until the last unpin). Copying a shared_ptr here would make
  // every pin write one reference count shared by all pinning threads.
  detail::PoolCore* core_ = nullptr;
  detail::BufferRecord* record_ = nullptr;
  void* data_ = nullptr;
  std::size_t size_ = 0;
  Tier tier_ = Tier::Host;
  Access access_ = Access::Read;
  // Set when the pin is counted in its thread's reader slot (a Read pin of
  // a buffer several threads read at once) rather than in the buffer.
  detail::ReaderSlot* reader_ = nullptr;
};

// A handle to a buffer in the pool. Move-only; destroying it frees every
// copy on every tier.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  std::size_t size() const { return size_; }
  std::uint64_t id() const { return id_; }
  explicit operator bool() const { return record_ != nullptr; }
  std::string_view label() const;
  // Where the authoritative bytes are now.
  Tier tier() const;
  // Tiers that currently hold a byte-identical clean copy (bit i = tier i).
  unsigned clean_copies() const;

  // Makes `where` the buffer's primary tier and returns a lease on it,
  // blocking until the bytes are there. `where` must be Device or Host and
  // enabled in the pool (else std::invalid_argument). Throws OutOfMemory when
  // no room can be made within pressure_wait, IoError when reading the spill
  // file fails, CorruptionError when the stored record does not verify.
  Pin pin(Tier where, Access access = Access::ReadWrite);
  // The same lease only if it can be had at once: the primary copy is
  // already on `where` and nothing is moving it (the fast path of
  // docs/concurrency.md). Otherwise returns an empty Pin (false in a boolean
  // context) and changes nothing; pin() then waits as usual. Never blocks
  // and never throws but for an empty Buffer. For bindings that must not
  // give up a lock (Python's GIL) for a pin that needs no wait.
  Pin try_pin(Tier where, Access access = Access::ReadWrite);
  // Stream-aware pin for embedders on the CUDA device tier: returns as soon
  // as the fetch is *ordered before* work later queued on `stream` (the
  // stream waits on the copy's event) instead of when the bytes have landed.
  // Only a host -> device copy is left in flight; bytes coming from disk are
  // read first (the host waits for the disk, not for the DMA). The copy's
  // source stays allocated until the copy ends, whatever else happens. On
  // the Simulated backend, and for Host pins, this is pin(where, access).
  // Pair it with Pin::release(stream) to avoid a host wait at both ends.
  Pin pin(Tier where, Access access, Stream stream);
  // Asynchronous hint: starts moving the bytes to `where` on an IO worker if
  // there is room without waiting; a later pin finds them there or in flight.
  // Room without waiting includes room that costs no write: a buffer whose
  // primary on `where` has a clean copy below may be dropped for it, if both
  // have next-use hints and that buffer's comes later.
  void prefetch(Tier where);
  // For the Lookahead policy: the executor step at which this buffer is next
  // used (smaller = sooner).
  void hint_next_use(std::uint64_t step);
  // Moves the buffer down to `where` now (Host or Disk), freeing faster
  // tiers; blocks until done. Counted as an Explicit eviction.
  void evict(Tier where);
  // Frees the buffer now (the destructor does the same). Freeing a buffer
  // while another thread uses it is a data race.
  void reset() noexcept;

 private:
  friend class Pool;
  friend struct detail::PoolAccess;
  Buffer(detail::PoolCore* core, detail::BufferRecord* record, std::size_t size, std::uint64_t id) noexcept;

  // A plain pointer: the core counts its live Buffers (in per-thread
  // counters, not one shared reference count) and outlives the last of them.
  detail::PoolCore* core_ = nullptr;
  detail::BufferRecord* record_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t id_ = 0;
};

class Pool {
 public:
  explicit Pool(PoolOptions options = {});
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Allocates `bytes` on `preferred`, evicting if needed; if no room can be
  // made there it falls to the next slower tier. Contents are unspecified, as
  // with malloc, except that a buffer placed on Tier::Disk reads as zeros.
  // A zero-byte request returns a valid buffer of size 0 that takes no space.
  // Throws OutOfMemory when no enabled tier at or below `preferred` can hold it.
  Buffer allocate(std::size_t bytes, Tier preferred = Tier::Device, std::string_view label = {});

  PoolStats stats() const;
  // Turns the event recorder on with `sink` (nullptr: off, after delivering
  // what was recorded). See spillway/trace.hpp.
  void set_trace(std::shared_ptr<TraceSink> sink);
  // Whether the recorder is on (a relaxed load: cheap enough to ask per op).
  bool tracing() const;
  // Records a span of the caller's own work — the graph executor records
  // each node this way — as NodeBegin/NodeEnd events on the calling thread
  // (steady-clock nanoseconds). Nothing when the recorder is off.
  void record_span(std::string_view name, std::uint64_t start_ns, std::uint64_t duration_ns);
  // Puts a marker named `name` in the access log ("clear_session" when a
  // graph Session clears), on the calling thread, between the calls that
  // thread made before and after it. Nothing when the pool does not record
  // (PoolOptions::record_file).
  void record_marker(std::string_view name);
  const PoolOptions& options() const;
  bool tier_enabled(Tier t) const;
  // "simulated", "cuda" or "none".
  std::string_view device_backend_name() const;
  // Why that backend: "Auto: a CUDA device is present", "Auto: simulated,
  // because <the runtime's reason>", "DeviceBackend::Simulated was requested"...
  std::string device_backend_reason() const;
  // "pinned" (page-locked, with the CUDA backend), "pageable" or "none".
  std::string_view host_memory_kind() const;
  // The private spill directory ("" when the disk tier is off).
  std::string spill_directory() const;
  // Blocks until no move is in flight and the proactive worker is idle;
  // useful for tests and reports. Bounded by io_timeout.
  void quiesce();
  // A debugging and testing aid: checks the pool's bookkeeping against the
  // tiers' own and returns what is wrong, one line per problem naming the
  // tier or buffer id (empty when all is well): each tier's used bytes equal
  // what its buffers, in-flight moves and thread caches hold, every buffer
  // has exactly one primary copy and shares no storage with another, pinned
  // buffers neither move nor change blocks, the clean/pinned/buffer counts
  // of stats() add up. Exact while other threads work: it holds the pool's
  // lock and keeps every pin, unpin, allocation and free of other threads
  // waiting while it walks every buffer (O(n log n)), so call it from tests
  // and stress runs, not from a hot path.
  std::vector<std::string> check_invariants() const;

 private:
  friend struct detail::PoolAccess;
  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace spillway
