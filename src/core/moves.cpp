// src/core/moves.cpp — a move of one buffer's bytes between tiers: launched
// under the pool's lock (the record claimed, destination room reserved), run
// without it (on an IO worker, or on the caller's thread), committed under
// it. Moves between disk and a device tier that is not host accessible go
// through staging rings.
#include <algorithm>
#include <cstring>

#include "pool_core.hpp"
#include "src/instrument/nvtx.hpp"
#include "tiers/device/staging_ring.hpp"

namespace spillway::detail {

// ---- moves ---------------------------------------------------------------------

bool PoolCore::launch_move(BufferRecord* r, Tier to, void* dst, std::optional<SpillExtent> ext,
                           bool is_eviction, EvictionReason reason, std::shared_ptr<MoveTicket> ticket,
                           bool on_caller, bool claimed) {
  if (!claimed && !try_claim(r)) return false;
  unlink(r);
  r->moving = true;
  ++moves_in_flight_;
  const Tier from = r->primary;
  if (is_eviction) pending_out_[static_cast<std::size_t>(tier_index(from))] += r->footprint;
  if (dst != nullptr) reserved_bytes_[static_cast<std::size_t>(tier_index(to))] += r->footprint;
  if (ext) reserved_bytes_[2] += ext->bytes;
  if (dst != nullptr) note_peak(to);
  emit(tier_index(to) > tier_index(from) ? TraceKind::SpillBegin : TraceKind::FetchBegin, r, from,
       to, reason, true, 0);
  if (on_caller) return true;  // the caller runs run_move itself, after unlocking
  if (options_.deterministic_moves) {
    // No worker: the thread whose call launched it runs it before that call
    // returns (CallerMoves), so when it commits depends on the calls alone.
    caller_moves_.push_back({r, from, to, dst, ext, reason, is_eviction, std::move(ticket)});
    return true;
  }
  auto self = shared_from_this();
  io_->submit([self, r, from, to, dst, ext, is_eviction, reason, ticket] {
    self->run_move(r, from, to, dst, ext, is_eviction, reason, ticket);
  });
  return true;
}

namespace {
// Moves between disk and a device tier that is not host accessible go
// through a ring of host staging buffers (outside every tier's budget: a
// disk <-> device move takes no host capacity). Writing to disk, the
// device -> host copies of the next slices run while the store hashes and
// writes the current one; reading, the host -> device copy of a slice runs
// while the store reads and verifies the next.
class StagedSlices final : public SliceIo {
 public:
  StagedSlices(StagingRing& ring, void* block, std::size_t bytes)
      : ring_(ring), block_(static_cast<unsigned char*>(block)), bytes_(bytes) {}
  ~StagedSlices() override { ring_.wait_all_noexcept(); }  // nothing in flight outlives the move
  StagedSlices(const StagedSlices&) = delete;
  StagedSlices& operator=(const StagedSlices&) = delete;

  std::size_t slice_bytes() const override { return ring_.slot_bytes(); }

  const void* source(std::size_t offset, std::size_t) override {
    const std::size_t s = ring_.slot_bytes();
    const std::size_t idx = offset / s;
    if (idx < current_) {
      // The store went back (a compression sample, then the record): start over.
      ring_.wait_all();
      issued_ = idx;
    }
    current_ = idx;
    // Keep every buffer busy: slices before idx are consumed, so their
    // buffers take the slices ahead.
    while (issued_ < idx + ring_.slots() && issued_ * s < bytes_) {
      const unsigned slot = static_cast<unsigned>(issued_ % ring_.slots());
      ring_.wait(slot);
      const std::size_t n = std::min(s, bytes_ - issued_ * s);
      ring_.set_fence(slot, ring_.arena()->copy_to_host_async(ring_.buffer(slot),
                                                              block_ + issued_ * s, n));
      ++issued_;
    }
    const unsigned slot = static_cast<unsigned>(idx % ring_.slots());
    ring_.wait(slot);
    return ring_.buffer(slot) + offset % s;
  }

  void* target(std::size_t offset, std::size_t) override {
    const std::size_t s = ring_.slot_bytes();
    const std::size_t idx = offset / s;
    const unsigned slot = static_cast<unsigned>(idx % ring_.slots());
    if (idx != current_) {
      ring_.wait(slot);  // its previous slice is on the device
      current_ = idx;
    }
    return ring_.buffer(slot) + offset % s;
  }
  void deliver(std::size_t offset, std::size_t n) override {
    const std::size_t s = ring_.slot_bytes();
    const unsigned slot = static_cast<unsigned>((offset / s) % ring_.slots());
    ring_.set_fence(slot, ring_.arena()->copy_from_host_async(block_ + offset,
                                                              ring_.buffer(slot) + offset % s, n));
  }
  // Until every slice delivered is on the device.
  void finish() { ring_.wait_all(); }

 private:
  StagingRing& ring_;
  unsigned char* block_;
  std::size_t bytes_;
  std::size_t issued_ = 0;                 // writing: slices whose copy to the host has started
  std::size_t current_ = ~std::size_t{0};  // the slice last handed out
};
}  // namespace

std::unique_ptr<StagingRing> PoolCore::take_ring(MemoryArena* arena) {
  {
    MutexLock lk(staging_mu_);
    if (!free_rings_.empty()) {
      auto ring = std::move(free_rings_.back());
      free_rings_.pop_back();
      return ring;
    }
  }
  return std::make_unique<StagingRing>(arena, options_.device.staging_buffer_bytes,
                                       options_.device.staging_buffers);
}

void PoolCore::give_ring(std::unique_ptr<StagingRing> ring) {
  ring->wait_all_noexcept();
  MutexLock lk(staging_mu_);
  free_rings_.push_back(std::move(ring));
}

void PoolCore::copy_bytes(BufferRecord* r, Tier from, Tier to, void* dst, SpillExtent* ext,
                          std::uint64_t* stored, MoveTicket* ticket) {
  *stored = r->size;
  // A staging ring for this move, given back when it ends (after every
  // copy through it has finished).
  struct RingLease {
    PoolCore* core;
    std::unique_ptr<StagingRing> ring;
    ~RingLease() {
      if (ring) core->give_ring(std::move(ring));
    }
  };
  if (to == Tier::Disk) {
    MemoryArena* src = arena(from);
    void* block = r->block[tier_index(from)];
    RecordInfo info;
    if (src->host_accessible()) {
      info = store_->write(*ext, r->id, block, r->size);
    } else {
      RingLease lease{this, take_ring(src)};
      StagedSlices io(*lease.ring, block, r->size);
      info = store_->write(*ext, r->id, r->size, io);
    }
    *stored = info.stored_bytes;
    return;
  }
  MemoryArena* dst_arena = arena(to);
  if (from == Tier::Disk) {
    if (dst_arena->host_accessible()) {
      if (r->disk_zero) std::memset(dst, 0, r->size);
      else *stored = store_->read(r->extent, r->id, dst, r->size);
    } else {
      RingLease lease{this, take_ring(dst_arena)};
      StagedSlices io(*lease.ring, dst, r->size);
      if (r->disk_zero) {
        const std::size_t slice = io.slice_bytes();
        for (std::size_t done = 0; done < r->size; done += slice) {
          const std::size_t n = std::min(slice, r->size - done);
          std::memset(io.target(done, n), 0, n);
          io.deliver(done, n);
        }
      } else {
        *stored = store_->read(r->extent, r->id, r->size, io);
      }
      io.finish();
    }
    if (r->disk_zero) *stored = 0;
    return;
  }
  MemoryArena* src_arena = arena(from);
  const void* src = r->block[tier_index(from)];
  if (!src_arena->host_accessible()) {
    src_arena->copy_to_host(dst, src, r->size);
  } else if (ticket != nullptr && ticket->ordered) {
    // Stream-aware pin: left in flight, ordered before the caller's stream.
    ticket->fence = dst_arena->copy_from_host_ordered(dst, src, r->size, ticket->stream);
  } else {
    dst_arena->copy_from_host(dst, src, r->size);
  }
}

void PoolCore::run_move(BufferRecord* r, Tier from, Tier to, void* dst,
                        std::optional<SpillExtent> ext, bool is_eviction, EvictionReason reason,
                        std::shared_ptr<MoveTicket> ticket) {
  std::exception_ptr error;
  std::uint64_t stored = 0;
  SpillExtent extent = ext.value_or(SpillExtent{});
  const auto t0 = Clock::now();
  try {
    NvtxRange range(tier_index(to) > tier_index(from) ? "spillway spill" : "spillway fetch");
    race_point(RacePoint::MoveCopying);
    copy_bytes(r, from, to, dst, &extent, &stored, ticket.get());
  } catch (...) {
    error = std::current_exception();
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();

  Lock lk(mu_);
  --moves_in_flight_;
  if (is_eviction) pending_out_[tier_index(from)] -= r->footprint;
  if (dst != nullptr) reserved_bytes_[tier_index(to)] -= r->footprint;
  if (ext) reserved_bytes_[2] -= ext->bytes;
  r->moving = false;  // still claimed (kSlow) until the fields below are final
  if (!error) {
    MoveStats& m = moves_[tier_index(from)][tier_index(to)];
    std::size_t bucket = 0;
    while (bucket < kMoveLatencyBounds.size() && seconds > kMoveLatencyBounds[bucket]) ++bucket;
    ++move_latency_[bucket];
    move_latency_sum_ += seconds;
    ++m.moves;
    m.bytes += r->size;
    m.stored_bytes += stored;
    m.seconds += seconds;
    if (to == Tier::Disk) {
      r->on_disk = true;
      r->disk_zero = false;
      r->extent = extent;
    } else {
      r->block[tier_index(to)] = dst;
    }
    --buffers_[tier_index(from)];
    ++buffers_[tier_index(to)];
    r->primary = to;
    if (tier_index(to) > tier_index(from)) {
      // Down: the faster copy goes, and so does any clean copy between
      // (clean copies only ever sit below the primary).
      arena(from)->free(r->block[tier_index(from)]);
      r->block[tier_index(from)] = nullptr;
      for (int t = tier_index(from) + 1; t < tier_index(to); ++t) {
        if (r->has_copy(static_cast<Tier>(t))) drop_clean(r, static_cast<Tier>(t));
      }
      if (is_eviction) ++evictions_[static_cast<int>(reason)];
    } else {
      // Up: the slower copy stays behind as a clean copy.
      clean_bytes_[tier_index(from)] += from == Tier::Disk ? r->extent.bytes : r->footprint;
      if (ticket && ticket->fence && !ticket->fence->done()) {
        r->copy_fence = ticket->fence;  // still reading that copy
        fenced_.push_back({r, ticket->fence, false});
      }
    }
    note_peak(to);
  } else {
    // The bytes stay where they were; give back the reserved room.
    if (dst != nullptr) arena(to)->free(dst);
    if (ext) release_later(extent);
    if (to == Tier::Disk) {
      ++errors_.spill_write_failures;
      try {
        std::rethrow_exception(error);
      } catch (const std::exception& e) {
        last_spill_error_ = e.what();
      } catch (...) {
        last_spill_error_ = "unknown error";
      }
    } else {
      try {
        std::rethrow_exception(error);
      } catch (const CorruptionError&) {
        ++errors_.corruptions;
      } catch (...) {
        ++errors_.fetch_failures;
      }
    }
  }
  emit(tier_index(to) > tier_index(from) ? TraceKind::SpillEnd : TraceKind::FetchEnd, r, from, to,
       reason, !error, static_cast<std::uint64_t>(seconds * 1e9));
  if (ticket) {
    ticket->done = true;
    ticket->error = error;
    if (!error && ticket->wants_pin && !ticket->abandoned && !r->dead) {
      grant_pin(r, Access::Read);  // the waiter upgrades to ReadWrite if it asked for it
      ticket->pin_granted = true;
    }
  }
  r->claimed = false;
  if (r->dead && r->pins() == 0 && r->copy_fence) {
    const std::uint64_t s = r->state.fetch_add(1, std::memory_order_acq_rel);  // freed by the unpin that follows the copy
    book(r, s, s + 1);
    r->pinned_block.store(r->block[static_cast<std::size_t>(tier_index(r->primary))], std::memory_order_relaxed);
    fenced_.push_back({r, r->copy_fence, true});
  } else if (r->dead && r->pins() == 0) {
    free_now(r);
  } else {
    link(r);
    publish_state(r);  // ends the claim: pins of the new primary may take the fast path
    if (!error) maybe_proactive(to);
  }
  release_deferred(lk);
  cv_.notify_all();
}

}  // namespace spillway::detail
