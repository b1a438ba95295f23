// tiers/disk/extent_allocator.hpp — space management inside one spill file.
//
// Space is handed out in kExtentUnit (4 KiB) multiples. A request takes the
// smallest free extent inside the file that holds it (best fit, lowest
// offset on ties), else grows the file at its end. Freed extents merge with
// free neighbours; free space at the end of the file is given back by moving
// the end down (the owner then truncates the file). The sum of allocated
// extent bytes never exceeds the quota.
//
// Not thread-safe: SpillStore calls it under its own mutex.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

namespace spillway::detail {

struct ExtentAllocatorStats {
  std::uint64_t quota_bytes = 0;
  std::uint64_t used_bytes = 0;          // allocated extent bytes
  std::uint64_t file_bytes = 0;          // current end of the file
  std::uint64_t free_bytes = 0;          // free extents inside the file
  std::uint64_t largest_free_bytes = 0;
  std::uint64_t extents = 0;             // allocated extents
  double fragmentation = 0.0;            // 1 - largest free / free (0 when none)
};

class ExtentAllocator {
 public:
  static constexpr std::uint64_t kExtentUnit = 4096;

  explicit ExtentAllocator(std::uint64_t quota_bytes = ~std::uint64_t{0}) : quota_(quota_bytes) {}

  // The largest extent one request may take, and the largest file end (file
  // offsets must fit in off_t). Requests beyond them are refused, never wrapped.
  static constexpr std::uint64_t kMaxExtentBytes = std::uint64_t{1} << 62;
  static constexpr std::uint64_t kMaxFileBytes =
      (std::uint64_t{INT64_MAX} / kExtentUnit) * kExtentUnit;

  // bytes rounded up to whole extents (at least one). Above kMaxExtentBytes
  // the result saturates at a value allocate() refuses.
  static constexpr std::uint64_t round_up(std::uint64_t bytes) {
    if (bytes > kMaxExtentBytes) return ~std::uint64_t{0} / kExtentUnit * kExtentUnit;
    return bytes == 0 ? kExtentUnit : (bytes + kExtentUnit - 1) / kExtentUnit * kExtentUnit;
  }

  // The offset of a new extent of round_up(bytes), or nothing when the quota
  // would be exceeded (or the request is beyond kMaxExtentBytes / the file
  // would pass kMaxFileBytes).
  std::optional<std::uint64_t> allocate(std::uint64_t bytes);
  // Gives back the tail of an extent: [offset + round_up(new_bytes), offset + old).
  // Returns the new extent length.
  std::uint64_t shrink(std::uint64_t offset, std::uint64_t old_bytes, std::uint64_t new_bytes);
  // Frees an extent. Throws std::invalid_argument if it is not allocated.
  void free(std::uint64_t offset, std::uint64_t bytes);

  std::uint64_t file_end() const { return end_; }
  std::uint64_t used() const { return used_; }
  std::uint64_t quota() const { return quota_; }
  ExtentAllocatorStats stats() const;

 private:
  void insert_free(std::uint64_t offset, std::uint64_t bytes);
  void erase_free(std::map<std::uint64_t, std::uint64_t>::iterator it);

  std::uint64_t quota_;
  std::uint64_t used_ = 0;
  std::uint64_t end_ = 0;
  std::uint64_t free_total_ = 0;
  std::map<std::uint64_t, std::uint64_t> used_extents_;   // offset -> bytes
  std::map<std::uint64_t, std::uint64_t> free_by_offset_; // offset -> bytes
  std::set<std::pair<std::uint64_t, std::uint64_t>> free_by_size_;  // (bytes, offset)
};

}  // namespace spillway::detail
