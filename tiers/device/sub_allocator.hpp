// tiers/device/sub_allocator.hpp — best-fit sub-allocation inside arena
// regions, shared by every memory tier backend (simulated device, CUDA
// device, host).
//
// The allocator hands out address ranges inside regions it was given with
// add_region(). It never touches the memory itself, so the same code carves
// cudaMalloc chunks and mmap'd host memory. Every block is a multiple of
// kAlignment bytes and starts on a kAlignment boundary (regions must be
// aligned). Blocks of kLargeBlockBytes or more (after rounding) start on a
// kLargeAlignment boundary of the absolute address, so the disk tier can do
// O_DIRECT IO straight from/to host blocks; when such a block is carved out
// of a free extent that does not start on that boundary, the leading gap
// stays a free extent of its own. Free neighbours inside one region are
// coalesced at once; blocks never merge across regions.
//
// Not thread-safe: the owner serialises calls (the pool calls it under its
// lock). free() is O(log n) in the number of extents; allocate() and fits()
// are O((k + 1) log n), where k is the number of free extents whose size
// lies in [need, need + kLargeAlignment - kAlignment) (only those may be too
// small once aligned, so they are checked one by one; k is 0 for small
// blocks, and few in practice for large ones).
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
  // Blocks of at least kLargeBlockBytes (after rounding to kAlignment) start
  // on a kLargeAlignment (4 KiB) boundary: O_DIRECT reads and writes need
  // 4 KiB-aligned memory, and with it the disk tier moves host blocks
  // without a bounce copy through an aligned staging buffer. Smaller blocks
  // keep kAlignment, so they do not pay for the padding.
  static constexpr std::size_t kLargeBlockBytes = 64 * 1024;
  static constexpr std::size_t kLargeAlignment = 4096;

  SubAllocator() = default;
  SubAllocator(const SubAllocator&) = delete;
  SubAllocator& operator=(const SubAllocator&) = delete;

  // Adds [base, base + bytes) as a new region. base must be kAlignment
  // aligned and bytes a non-zero multiple of kAlignment (std::invalid_argument
  // otherwise); regions must not overlap.
  void add_region(std::uintptr_t base, std::size_t bytes);

  // Best fit: the smallest free extent that holds round_up(bytes) starting on
  // block_alignment(bytes); ties go to the lowest address. When no extent
  // holds it at that alignment, the same at kAlignment (so the 4 KiB
  // alignment of large blocks never refuses a request that fits). Returns 0
  // when no extent fits (0 is never a valid block address). bytes == 0 is
  // treated as kAlignment.
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
  // The largest single free extent (a large block may not fit in it when it
  // does not start on a kLargeAlignment boundary; fits() knows).
  std::size_t largest_free() const;
  // Whether allocate(bytes) would succeed now (same search, alignment
  // included).
  bool fits(std::size_t bytes) const;

  static constexpr std::size_t round_up(std::size_t bytes) {
    if (bytes == 0) return kAlignment;
    return (bytes + kAlignment - 1) / kAlignment * kAlignment;
  }
  // The boundary a block of `bytes` starts on.
  static constexpr std::size_t block_alignment(std::size_t bytes) {
    return round_up(bytes) >= kLargeBlockBytes ? kLargeAlignment : kAlignment;
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
  using FreeIt = std::set<std::pair<std::size_t, std::uintptr_t>>::const_iterator;
  // The best-fit free extent for a block of `need` bytes (already rounded)
  // starting on `align`, or free_by_size_.end() when none holds it.
  FreeIt find_fit(std::size_t need, std::size_t align) const;
  std::uint32_t regions_ = 0;
  std::size_t capacity_ = 0;
  std::size_t used_ = 0;
  std::size_t blocks_ = 0;
};

}  // namespace spillway::detail
