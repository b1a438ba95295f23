// src/graph/device_blas_cuda.cpp — DeviceBlas over cuBLAS: one handle bound
// to a non-blocking stream of its own; each matmul is one cublasSgemm on that
// stream followed by a wait for the stream, so the result is in place when
// the executor unpins it.
#include "device_blas.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stdexcept>

namespace spillway::graph {

namespace {

void check(const char* call, cudaError_t err) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("spillway graph: ") + call + " failed: " + cudaGetErrorString(err));
  }
}

void check(const char* call, cublasStatus_t st) {
  if (st != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("spillway graph: ") + call + " failed: " + cublasGetStatusString(st));
  }
}

int narrow(std::int64_t v, const char* what) {
  if (v < 0 || v > 0x7fffffff) {
    throw std::invalid_argument(std::string("spillway graph: MatMul dimension ") + what + " = " +
                                std::to_string(v) + " is out of cuBLAS's int range");
  }
  return static_cast<int>(v);
}

class CublasBlas final : public DeviceBlas {
 public:
  explicit CublasBlas(int ordinal) : ordinal_(ordinal) {
    check("cudaSetDevice", cudaSetDevice(ordinal_));
    check("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    const cublasStatus_t st = cublasCreate(&handle_);
    if (st != CUBLAS_STATUS_SUCCESS) {
      cudaStreamDestroy(stream_);
      check("cublasCreate", st);
    }
    check("cublasSetStream", cublasSetStream(handle_, stream_));
  }
  ~CublasBlas() override {
    cublasDestroy(handle_);
    cudaStreamDestroy(stream_);
  }

  void matmul(const float* a, const float* b, float* c, std::int64_t m, std::int64_t k, std::int64_t n,
              bool transpose_a, bool transpose_b) override {
    // cuBLAS is column-major: a row-major [r,c] array is its transpose. So
    // the row-major C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T,
    // with B first; each array's leading dimension is its stored row length.
    const int mi = narrow(m, "m"), ki = narrow(k, "k"), ni = narrow(n, "n");
    const int lda = transpose_a ? mi : ki;
    const int ldb = transpose_b ? ki : ni;
    const float one = 1.0f, zero = 0.0f;
    check("cudaSetDevice", cudaSetDevice(ordinal_));
    check("cublasSgemm",
          cublasSgemm(handle_, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                      ni, mi, ki, &one, b, ldb, a, lda, &zero, c, ni));
    check("cudaStreamSynchronize", cudaStreamSynchronize(stream_));
  }

 private:
  int ordinal_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t handle_ = nullptr;
};

}  // namespace

std::unique_ptr<DeviceBlas> DeviceBlas::create(int ordinal, std::string* why) {
  int count = 0;
  if (const cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess || ordinal >= count) {
    if (why != nullptr) {
      *why = err != cudaSuccess ? std::string("no CUDA device: ") + cudaGetErrorString(err)
                                : "no CUDA device " + std::to_string(ordinal);
    }
    return nullptr;
  }
  try {
    return std::make_unique<CublasBlas>(ordinal);
  } catch (const std::exception& e) {
    if (why != nullptr) *why = e.what();
    return nullptr;
  }
}

}  // namespace spillway::graph
