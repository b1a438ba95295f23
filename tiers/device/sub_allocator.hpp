// tiers/device/sub_allocator.hpp — best-fit sub-allocation inside arena
// regions, shared by every memory tier backend (simulated device, CUDA
// device, host).
//
// The allocator hands out address ranges inside regions it was given with
// add_region(). It never touches the memory itself, so the same code carves
// cudaMalloc chunks and mmap'd host memory. Every block is a multiple of
// kAlignment bytes and starts on a kAlignment boundary (regions must be
// aligned). Free neighbours inside one region are coalesced at once; blocks
// never merge across regions.
//
// Not thread-safe: the owner serialises calls (the pool calls it under its
// lock). All operations are O(log n) in the number of blocks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <utility>

namespace spillway::detail {

struct SubAllocatorStats {
  std::size_t capacity_bytes = 0;      // sum of region sizes
  std::size_t used_bytes = 0;          // sum of allocated block sizes (rounded)
  std::size_t free_bytes = 0;          // capacity - used
  std::size_t largest_free_bytes = 0;  // the largest single free extent
  std::size_t blocks = 0;              // allocated blocks
  std::size_t free_extents = 0;        // free extents
  // 1 - largest_free / free_bytes; 0 when nothing is free.
  double fragmentation = 0.0;
};

class SubAllocator {
 public:
  static constexpr std::size_t kAlignment = 256;

  SubAllocator() = default;
  SubAllocator(const SubAllocator&) = delete;
  SubAllocator& operator=(const SubAllocator&) = delete;

  // Adds [base, base + bytes) as a new region. base must be kAlignment
  // aligned and bytes a non-zero multiple of kAlignment (std::invalid_argument
  // otherwise); regions must not overlap.
  void add_region(std::uintptr_t base, std::size_t bytes);

  // Best fit: the smallest free extent that holds round_up(bytes); ties go to
  // the lowest address. Returns 0 when no extent fits (0 is never a valid
  // block address). bytes == 0 is treated as kAlignment.
  std::uintptr_t allocate(std::size_t bytes);
  // Frees the block that starts at `address` (it must be a live block,
  // std::invalid_argument otherwise) and merges it with free neighbours.
  void free(std::uintptr_t address);
  // The rounded size of the live block at `address` (0 if none).
  std::size_t block_size(std::uintptr_t address) const;

  SubAllocatorStats stats() const;
  std::size_t capacity() const { return capacity_; }
  std::size_t used() const { return used_; }
  std::size_t free_bytes() const { return capacity_ - used_; }
  std::size_t largest_free() const;
  // Whether a request of `bytes` would fit in some free extent now.
  bool fits(std::size_t bytes) const;

  static constexpr std::size_t round_up(std::size_t bytes) {
    if (bytes == 0) return kAlignment;
    return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  }

 private:
  struct Extent {
    std::size_t size;
    std::uint32_t region;
    bool free;
  };
  // Every extent (free or used) by address; neighbours are found here.
  std::map<std::uintptr_t, Extent> extents_;
  // Free extents ordered by (size, address) for best fit.
  std::set<std::pair<std::size_t, std::uintptr_t>> free_by_size_;
  std::uint32_t regions_ = 0;
  std::size_t capacity_ = 0;
  std::size_t used_ = 0;
  std::size_t blocks_ = 0;
};

}  // namespace spillway::detail
