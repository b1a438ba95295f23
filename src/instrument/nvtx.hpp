// src/instrument/nvtx.hpp — NVTX ranges around spills, fetches and pin
// waits, so that Nsight Systems shows them beside the GPU work. With the
// CUDA backend compiled in they use NVTX 3 (header-only, shipped with the
// toolkit; free when no tool is attached); otherwise they compile to nothing.
#pragma once

#if defined(SPILLWAY_HAVE_CUDA)
#include <nvtx3/nvToolsExt.h>
#endif

namespace spillway::detail {

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
