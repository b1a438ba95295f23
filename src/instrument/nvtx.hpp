// src/instrument/nvtx.hpp — NVTX ranges around spills, fetches and pin
// waits, so that Nsight Systems shows them beside the GPU work. With the
// CUDA backend compiled in they use NVTX 3 (header-only, shipped with the
// toolkit; free when no tool is attached); otherwise they compile to nothing.
#pragma once

#if defined(SPILLWAY_HAVE_CUDA)
#include <nvtx3/nvToolsExt.h>

#include <mutex>
#endif

namespace spillway::detail {

// NVTX initialises itself lazily on the first call, racing with calls from
// other threads. The pool calls this before it starts its IO workers.
inline void nvtx_initialize() {
#if defined(SPILLWAY_HAVE_CUDA)
  static std::once_flag once;
  std::call_once(once, [] { nvtxInitialize(nullptr); });
#endif
}

class NvtxRange {
 public:
#if defined(SPILLWAY_HAVE_CUDA)
  explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
  ~NvtxRange() { nvtxRangePop(); }
#else
  explicit NvtxRange(const char*) {}
#endif
  NvtxRange(const NvtxRange&) = delete;
  NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace spillway::detail
