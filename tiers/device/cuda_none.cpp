// tiers/device/cuda_none.cpp — the CUDA backend's interface in a build
// without CUDA: nothing is available, and the reason says so.
#if !defined(SPILLWAY_HAVE_CUDA)

#include <stdexcept>

#include "cuda_backend.hpp"

namespace spillway::detail::cuda {

bool compiled() { return false; }

bool device_available(int, std::string* why) {
  if (why != nullptr) {
    *why = "this build of spillway has no CUDA backend (configured with SPILLWAY_CUDA=OFF or "
           "without a CUDA toolkit)";
  }
  return false;
}

std::string describe_device(int) { return {}; }
std::size_t free_device_memory(int) { return 0; }

std::unique_ptr<MemoryArena> make_device_arena(int, std::size_t) {
  throw std::logic_error("spillway: no CUDA backend in this build");
}
std::unique_ptr<MemoryArena> make_pinned_host_arena(int, std::size_t) {
  throw std::logic_error("spillway: no CUDA backend in this build");
}

}  // namespace spillway::detail::cuda

#endif
