// tests/cuda/kernels.hpp — launchers for the GPU tests' kernels.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace spillway::testing::gpu {

// The value word i holds after write_pattern(seed).
unsigned expected(std::size_t i, unsigned seed);
// Writes the pattern into `words` 32-bit words of device memory; returns the
// launch's cudaError_t.
int write_pattern(void* data, std::size_t words, unsigned seed, cudaStream_t stream = nullptr);
// Counts, on the device, the words that differ from the pattern (~0 on a
// CUDA error).
unsigned long long count_mismatches(const void* data, std::size_t words, unsigned seed);
// The same, queued on `stream`, adding into *bad_on_device (device memory);
// returns the launch's cudaError_t.
int count_mismatches_on(const void* data, std::size_t words, unsigned seed,
                        unsigned long long* bad_on_device, cudaStream_t stream);
int synchronize();

}  // namespace spillway::testing::gpu
