// tiers/disk/extent_allocator.cpp — see extent_allocator.hpp.
#include "extent_allocator.hpp"

#include <stdexcept>
#include <string>

namespace spillway::detail {

void ExtentAllocator::erase_free(std::map<std::uint64_t, std::uint64_t>::iterator it) {
  free_by_size_.erase({it->second, it->first});
  free_total_ -= it->second;
  free_by_offset_.erase(it);
}

void ExtentAllocator::insert_free(std::uint64_t offset, std::uint64_t bytes) {
  // Merge with the free neighbours.
  auto next = free_by_offset_.lower_bound(offset);
  if (next != free_by_offset_.end() && next->first == offset + bytes) {
    bytes += next->second;
    erase_free(next);
  }
  auto after = free_by_offset_.lower_bound(offset);
  if (after != free_by_offset_.begin()) {
    auto prev = std::prev(after);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      bytes += prev->second;
      erase_free(prev);
    }
  }
  if (offset + bytes == end_) {
    end_ = offset;  // free space at the end of the file goes back
    return;
  }
  free_by_offset_.emplace(offset, bytes);
  free_by_size_.emplace(bytes, offset);
  free_total_ += bytes;
}

std::optional<std::uint64_t> ExtentAllocator::allocate(std::uint64_t bytes) {
  const std::uint64_t need = round_up(bytes);
  if (need > kMaxExtentBytes) return std::nullopt;
  if (need > quota_ || used_ > quota_ - need) return std::nullopt;
  std::uint64_t offset;
  auto best = free_by_size_.lower_bound({need, 0});
  if (best != free_by_size_.end()) {
    const auto [size, off] = *best;
    erase_free(free_by_offset_.find(off));
    offset = off;
    if (size > need) insert_free(off + need, size - need);
  } else {
    if (need > kMaxFileBytes - end_) return std::nullopt;
    offset = end_;
    end_ += need;
  }
  used_extents_.emplace(offset, need);
  used_ += need;
  return offset;
}

std::uint64_t ExtentAllocator::shrink(std::uint64_t offset, std::uint64_t old_bytes,
                                      std::uint64_t new_bytes) {
  auto it = used_extents_.find(offset);
  if (it == used_extents_.end() || it->second != old_bytes) {
    throw std::invalid_argument("ExtentAllocator::shrink: no extent of " +
                                std::to_string(old_bytes) + " bytes at offset " +
                                std::to_string(offset));
  }
  const std::uint64_t keep = round_up(new_bytes);
  if (keep >= old_bytes) return old_bytes;
  it->second = keep;
  used_ -= old_bytes - keep;
  insert_free(offset + keep, old_bytes - keep);
  return keep;
}

void ExtentAllocator::free(std::uint64_t offset, std::uint64_t bytes) {
  auto it = used_extents_.find(offset);
  if (it == used_extents_.end() || it->second != bytes) {
    throw std::invalid_argument("ExtentAllocator::free: no extent of " + std::to_string(bytes) +
                                " bytes at offset " + std::to_string(offset));
  }
  used_extents_.erase(it);
  used_ -= bytes;
  insert_free(offset, bytes);
}

ExtentAllocatorStats ExtentAllocator::stats() const {
  ExtentAllocatorStats s;
  s.quota_bytes = quota_;
  s.used_bytes = used_;
  s.file_bytes = end_;
  s.free_bytes = free_total_;
  s.largest_free_bytes = free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
  s.extents = used_extents_.size();
  s.fragmentation = free_total_ == 0 ? 0.0
                                     : 1.0 - static_cast<double>(s.largest_free_bytes) /
                                                 static_cast<double>(free_total_);
  return s;
}

}  // namespace spillway::detail
