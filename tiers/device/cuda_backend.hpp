// tiers/device/cuda_backend.hpp — the CUDA device backend, behind an
// interface free of CUDA types so that the rest of spillway compiles without
// the toolkit.
//
// When spillway is built with SPILLWAY_CUDA=OFF (or without a toolkit) these
// functions are compiled from cuda_none.cpp: compiled() is false and
// device_available() says why. With CUDA they come from
// cuda_backend_cuda.cpp:
//   - the device arena takes VRAM in cudaMalloc chunks, grown on demand up
//     to its capacity, carved by the shared SubAllocator;
//   - the pinned host arena takes page-locked memory in cudaHostAlloc chunks
//     the same way (so device <-> host copies are real DMA);
//   - copies run as cudaMemcpyAsync on one stream per direction and complete
//     through a CUDA event, never cudaDeviceSynchronize.
// Every CUDA runtime error becomes an exception naming the call, except an
// allocation failure while growing, which is reported as "no room" so that
// the pool evicts or throws OutOfMemory.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "memory_arena.hpp"

namespace spillway::detail::cuda {

// Whether this build contains the CUDA backend.
bool compiled();
// Whether device `ordinal` can be used; when not, *why says why.
bool device_available(int ordinal, std::string* why);
// "NVIDIA H100 80GB HBM3 (compute 9.0, driver 13.0)"; "" when unavailable.
std::string describe_device(int ordinal);
// Free VRAM on the device now, in bytes (0 when unavailable).
std::size_t free_device_memory(int ordinal);

// Fraction of free VRAM a device tier takes when its capacity is left at
// DeviceOptions' automatic default.
inline constexpr double kDefaultVramFraction = 0.8;

std::unique_ptr<MemoryArena> make_device_arena(int ordinal, std::size_t capacity);
std::unique_ptr<MemoryArena> make_pinned_host_arena(int ordinal, std::size_t capacity);

}  // namespace spillway::detail::cuda
