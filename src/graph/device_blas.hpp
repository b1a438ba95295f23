// src/graph/device_blas.hpp — MatMul on the GPU through cuBLAS, for a
// Session whose pool's device tier is the CUDA backend.
//
// The interface is free of CUDA types so the executor compiles without the
// toolkit. device_blas_cuda.cpp implements it (a cuBLAS handle on a stream
// of its own); device_blas_none.cpp, in builds without CUDA, reports that
// there is none.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace spillway::graph {

class DeviceBlas {
 public:
  // A handle on device `ordinal`, or nullptr with *why saying why there is
  // none (no CUDA in this build, no usable device, cuBLAS failed to start).
  static std::unique_ptr<DeviceBlas> create(int ordinal, std::string* why);
  // cuBLAS is opened (dlopen) at the first create() on a CUDA device, not
  // when the process starts. library_problem() opens it if it is not yet
  // open and returns why it cannot be used, or "" when it can; opened()
  // says whether this process has tried yet. (Builds without CUDA: never
  // opened, and the problem is that there is no CUDA backend.)
  static std::string library_problem();
  static bool opened();
  virtual ~DeviceBlas() = default;

  // c[m,n] = op(a)[m,k] * op(b)[k,n] over row-major float32 arrays in device
  // memory (a is stored [k,m] when transpose_a, b [n,k] when transpose_b), as
  // kernels::matmul does on the host. Returns once c is written; a CUDA or
  // cuBLAS error throws std::runtime_error naming the call.
  virtual void matmul(const float* a, const float* b, float* c, std::int64_t m, std::int64_t k,
                      std::int64_t n, bool transpose_a, bool transpose_b) = 0;
};

}  // namespace spillway::graph
