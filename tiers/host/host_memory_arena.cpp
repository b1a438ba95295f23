// tiers/host/host_memory_arena.cpp — mmap-backed arena for the host tier and
// the simulated device tier.
#include <sys/mman.h>

#include <cerrno>
#include <system_error>

#include "../device/memory_arena.hpp"

namespace spillway::detail {

namespace {
constexpr std::size_t kHugePage = std::size_t{2} << 20;
}

// The arena asks for transparent huge pages (MADV_HUGEPAGE, honoured where
// THP is "always" or "madvise"): fewer TLB misses, and memory that is
// physically contiguous in 2 MiB runs. The latter matters for O_DIRECT: a
// block device takes a bounded number of memory segments per request (254
// on the virtio disk of the reference machine), so scattered 4 KiB pages cap
// a request at ~1 MiB and the same transfer from huge pages ran up to 3x
// faster there (docs/performance.md, section 3). The mapping is aligned to
// 2 MiB so that every huge page lies inside it.
HostMemoryArena::HostMemoryArena(std::size_t capacity, std::string_view backend_name)
    : MemoryArena(SubAllocator::round_up(capacity)), name_(backend_name) {
  const bool huge = capacity_ >= kHugePage;
  mapped_ = capacity_ + (huge ? kHugePage : 0);
  base_ = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base_ == MAP_FAILED) {
    base_ = nullptr;
    throw std::system_error(errno, std::generic_category(),
                            "spillway: cannot reserve " + std::to_string(mapped_) +
                                " bytes of address space for the " + std::string(backend_name) +
                                " tier");
  }
  auto start = reinterpret_cast<std::uintptr_t>(base_);
  if (huge) {
    start = (start + kHugePage - 1) / kHugePage * kHugePage;
    (void)::madvise(reinterpret_cast<void*>(start), capacity_, MADV_HUGEPAGE);  // advice only
  }
  alloc_.add_region(start, capacity_);
}

HostMemoryArena::~HostMemoryArena() {
  if (base_ != nullptr) ::munmap(base_, mapped_);
}

}  // namespace spillway::detail
