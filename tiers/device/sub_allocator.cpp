// tiers/device/sub_allocator.cpp — see sub_allocator.hpp.
#include "sub_allocator.hpp"

#include <limits>
#include <stdexcept>
#include <string>

namespace spillway::detail {

namespace {

constexpr std::uintptr_t align_up(std::uintptr_t address, std::size_t align) {
  return (address + align - 1) / align * align;
}

// Requests this large would overflow round_up() or need + align; no region
// can hold them anyway.
constexpr std::size_t kMaxRequest = std::numeric_limits<std::size_t>::max() / 2;

}  // namespace

void SubAllocator::add_region(std::uintptr_t base, std::size_t bytes) {
  if (base == 0 || base % kAlignment != 0) {
    throw std::invalid_argument("SubAllocator::add_region: base " + std::to_string(base) +
                                " is not a non-null multiple of " + std::to_string(kAlignment));
  }
  if (bytes == 0 || bytes % kAlignment != 0) {
    throw std::invalid_argument("SubAllocator::add_region: size " + std::to_string(bytes) +
                                " is not a non-zero multiple of " + std::to_string(kAlignment));
  }
  auto next = extents_.lower_bound(base);
  if (next != extents_.end() && next->first < base + bytes) {
    throw std::invalid_argument("SubAllocator::add_region: region overlaps an existing one");
  }
  if (next != extents_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.size > base) {
      throw std::invalid_argument("SubAllocator::add_region: region overlaps an existing one");
    }
  }
  extents_.emplace(base, Extent{bytes, regions_++, true});
  free_by_size_.emplace(bytes, base);
  capacity_ += bytes;
}

SubAllocator::FreeIt SubAllocator::find_fit(std::size_t need, std::size_t align) const {
  // Every free extent starts on kAlignment, so one of at least `sure` bytes
  // holds the block wherever it starts; only those below need a look.
  const std::size_t sure = need + align - kAlignment;
  auto it = free_by_size_.lower_bound({need, 0});
  for (; it != free_by_size_.end() && it->first < sure; ++it) {
    const auto [size, address] = *it;
    if (align_up(address, align) - address + need <= size) return it;
  }
  return it;  // the first of at least `sure` bytes, or end()
}

std::uintptr_t SubAllocator::allocate(std::size_t bytes) {
  if (bytes > kMaxRequest) return 0;
  const std::size_t need = round_up(bytes);
  std::size_t align = block_alignment(need);
  auto it = find_fit(need, align);
  if (it == free_by_size_.end() && align > kAlignment) {
    // No 4 KiB-aligned room: the alignment is for speed (O_DIRECT without a
    // bounce copy), never a reason to refuse what fits at kAlignment.
    align = kAlignment;
    it = find_fit(need, align);
  }
  if (it == free_by_size_.end()) return 0;
  const auto [size, address] = *it;
  free_by_size_.erase(it);
  auto ext = extents_.find(address);
  const std::uint32_t region = ext->second.region;
  const std::uintptr_t start = align_up(address, align);
  if (start > address) {
    // The leading gap stays free; the block is a new extent after it.
    const std::size_t gap = start - address;
    ext->second.size = gap;
    free_by_size_.emplace(gap, address);
    ext = extents_.emplace_hint(std::next(ext), start, Extent{need, region, false});
  } else {
    ext->second.size = need;
    ext->second.free = false;
  }
  const std::size_t rest = size - (start - address) - need;
  if (rest > 0) {
    extents_.emplace_hint(std::next(ext), start + need, Extent{rest, region, true});
    free_by_size_.emplace(rest, start + need);
  }
  used_ += need;
  ++blocks_;
  return start;
}

void SubAllocator::free(std::uintptr_t address) {
  auto it = extents_.find(address);
  if (it == extents_.end() || it->second.free) {
    throw std::invalid_argument("SubAllocator::free: " + std::to_string(address) +
                                " is not the start of a live block");
  }
  used_ -= it->second.size;
  --blocks_;
  it->second.free = true;
  // Merge with the following extent.
  auto next = std::next(it);
  if (next != extents_.end() && next->second.free && next->second.region == it->second.region &&
      it->first + it->second.size == next->first) {
    free_by_size_.erase({next->second.size, next->first});
    it->second.size += next->second.size;
    extents_.erase(next);
  }
  // Merge with the preceding extent.
  if (it != extents_.begin()) {
    auto prev = std::prev(it);
    if (prev->second.free && prev->second.region == it->second.region &&
        prev->first + prev->second.size == it->first) {
      free_by_size_.erase({prev->second.size, prev->first});
      prev->second.size += it->second.size;
      extents_.erase(it);
      it = prev;
    }
  }
  free_by_size_.emplace(it->second.size, it->first);
}

std::size_t SubAllocator::block_size(std::uintptr_t address) const {
  auto it = extents_.find(address);
  if (it == extents_.end() || it->second.free) return 0;
  return it->second.size;
}

std::size_t SubAllocator::largest_free() const {
  return free_by_size_.empty() ? 0 : free_by_size_.rbegin()->first;
}

bool SubAllocator::fits(std::size_t bytes) const {
  if (bytes > kMaxRequest) return false;
  const std::size_t need = round_up(bytes);
  return find_fit(need, kAlignment) != free_by_size_.end();  // allocate() falls back to it
}

SubAllocatorStats SubAllocator::stats() const {
  SubAllocatorStats s;
  s.capacity_bytes = capacity_;
  s.used_bytes = used_;
  s.free_bytes = capacity_ - used_;
  s.largest_free_bytes = largest_free();
  s.blocks = blocks_;
  s.free_extents = free_by_size_.size();
  s.fragmentation = s.free_bytes == 0
                        ? 0.0
                        : 1.0 - static_cast<double>(s.largest_free_bytes) /
                                    static_cast<double>(s.free_bytes);
  return s;
}

}  // namespace spillway::detail
