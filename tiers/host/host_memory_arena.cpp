// tiers/host/host_memory_arena.cpp — mmap-backed arena for the host tier and
// the simulated device tier.
#include <sys/mman.h>

#include <cerrno>
#include <system_error>

#include "../device/memory_arena.hpp"

namespace spillway::detail {

HostMemoryArena::HostMemoryArena(std::size_t capacity, std::string_view backend_name)
    : MemoryArena(SubAllocator::round_up(capacity)), name_(backend_name) {
  mapped_ = capacity_;
  base_ = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base_ == MAP_FAILED) {
    base_ = nullptr;
    throw std::system_error(errno, std::generic_category(),
                            "spillway: cannot reserve " + std::to_string(mapped_) +
                                " bytes of address space for the " + std::string(backend_name) +
                                " tier");
  }
  alloc_.add_region(reinterpret_cast<std::uintptr_t>(base_), mapped_);
}

HostMemoryArena::~HostMemoryArena() {
  if (base_ != nullptr) ::munmap(base_, mapped_);
}

}  // namespace spillway::detail
