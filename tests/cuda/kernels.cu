// tests/cuda/kernels.cu — the device code of the GPU tests, behind the plain
// C++ interface in kernels.hpp (so the tests themselves compile as C++20).
#include "kernels.hpp"

namespace spillway::testing::gpu {

namespace {
__global__ void write_pattern_kernel(unsigned* data, std::size_t n, unsigned seed) {
  for (std::size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    data[i] = static_cast<unsigned>(i) * 2654435761u + seed;
  }
}

__global__ void count_mismatches_kernel(const unsigned* data, std::size_t n, unsigned seed,
                                        unsigned long long* bad) {
  for (std::size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    if (data[i] != static_cast<unsigned>(i) * 2654435761u + seed) atomicAdd(bad, 1ull);
  }
}
}  // namespace

unsigned expected(std::size_t i, unsigned seed) { return static_cast<unsigned>(i) * 2654435761u + seed; }

int write_pattern(void* data, std::size_t words, unsigned seed, cudaStream_t stream) {
  write_pattern_kernel<<<64, 256, 0, stream>>>(static_cast<unsigned*>(data), words, seed);
  return static_cast<int>(cudaGetLastError());
}

unsigned long long count_mismatches(const void* data, std::size_t words, unsigned seed) {
  unsigned long long* bad = nullptr;
  if (cudaMalloc(&bad, sizeof *bad) != cudaSuccess) return ~0ull;
  cudaMemset(bad, 0, sizeof *bad);
  count_mismatches_kernel<<<64, 256>>>(static_cast<const unsigned*>(data), words, seed, bad);
  unsigned long long h = ~0ull;
  if (cudaMemcpy(&h, bad, sizeof h, cudaMemcpyDeviceToHost) != cudaSuccess) h = ~0ull;
  cudaFree(bad);
  return h;
}

int count_mismatches_on(const void* data, std::size_t words, unsigned seed,
                        unsigned long long* bad_on_device, cudaStream_t stream) {
  count_mismatches_kernel<<<64, 256, 0, stream>>>(static_cast<const unsigned*>(data), words, seed,
                                                  bad_on_device);
  return static_cast<int>(cudaGetLastError());
}

int synchronize() { return static_cast<int>(cudaDeviceSynchronize()); }

}  // namespace spillway::testing::gpu
