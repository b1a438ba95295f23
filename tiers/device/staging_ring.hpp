// tiers/device/staging_ring.hpp — a ring of host staging buffers for moves
// between disk and a device arena that is not host accessible.
//
// Each buffer carries the fence of the last copy between it and the device;
// a buffer is reused only once that copy is done. With N buffers, up to N-1
// slices can be on their way to or from the device while the disk side
// reads or writes the next one. Mechanism only: the pool decides how many
// rings exist and who holds one (one ring per move in flight).
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "memory_arena.hpp"

namespace spillway::detail {

class StagingRing {
 public:
  StagingRing(MemoryArena* arena, std::size_t slot_bytes, unsigned slots)
      : arena_(arena), slot_bytes_(slot_bytes), fences_(slots) {
    buffers_.reserve(slots);
    try {
      for (unsigned i = 0; i < slots; ++i) {
        buffers_.push_back(static_cast<unsigned char*>(arena_->allocate_staging(slot_bytes)));
      }
    } catch (...) {
      for (auto* b : buffers_) arena_->free_staging(b);
      throw;
    }
  }
  ~StagingRing() {
    wait_all_noexcept();
    for (auto* b : buffers_) arena_->free_staging(b);
  }
  StagingRing(const StagingRing&) = delete;
  StagingRing& operator=(const StagingRing&) = delete;

  MemoryArena* arena() const { return arena_; }
  std::size_t slot_bytes() const { return slot_bytes_; }
  unsigned slots() const { return static_cast<unsigned>(buffers_.size()); }
  unsigned char* buffer(unsigned i) { return buffers_[i]; }
  // The copy now under way between buffer i and the device.
  void set_fence(unsigned i, std::shared_ptr<Fence> fence) { fences_[i] = std::move(fence); }
  // Until buffer i's copy is done.
  void wait(unsigned i) {
    if (fences_[i]) {
      arena_->wait(fences_[i]);
      fences_[i].reset();
    }
  }
  void wait_all() {
    for (unsigned i = 0; i < slots(); ++i) wait(i);
  }
  // For destructors and error paths: waits, swallowing device errors (a
  // failed device runs nothing more, so nothing still reads the buffers).
  void wait_all_noexcept() noexcept {
    for (unsigned i = 0; i < slots(); ++i) {
      try {
        wait(i);
      } catch (...) {
        fences_[i].reset();
      }
    }
  }

 private:
  MemoryArena* arena_;
  std::size_t slot_bytes_;
  std::vector<unsigned char*> buffers_;
  std::vector<std::shared_ptr<Fence>> fences_;
};

}  // namespace spillway::detail
