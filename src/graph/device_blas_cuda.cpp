// src/graph/device_blas_cuda.cpp — DeviceBlas over cuBLAS: one handle bound
// to a non-blocking stream of its own; each matmul is one cublasSgemm on that
// stream followed by a wait for the stream, so the result is in place when
// the executor unpins it.
//
// cuBLAS is opened with dlopen() the first time a session asks for it, not
// linked: merely loading libcublas (and the libcublasLt it pulls in) made
// every process that links spillway about 215 MB larger in resident memory,
// GPU or not (docs/building.md). Only the handful of entry points below are
// used; the headers give their types.
#include "device_blas.hpp"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <atomic>
#include <type_traits>
#include <stdexcept>
#include <string>

namespace spillway::graph {

namespace {

// The cuBLAS entry points spillway calls, resolved once per process. The
// library stays loaded until the process exits (a handle may outlive any
// one session, and unloading CUDA libraries at exit is not safe).
struct CublasApi {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) set_stream = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasGetStatusString) status_string = nullptr;
  std::string error;  // why it could not be loaded; empty when it was

  static const CublasApi& get() {
    static const CublasApi api = load();
    return api;
  }
  static inline std::atomic<bool> tried{false};

 private:
  static CublasApi load() {
    tried.store(true);
    CublasApi api;
    // The soname of the major version the headers describe (libcublas.so.13
    // for CUDA 13): the ABI these declarations match.
    const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* lib = ::dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = ::dlerror();
      api.error = "cannot load " + soname + ": " + (e != nullptr ? e : "unknown dlopen error");
      return api;
    }
    auto sym = [&](auto& fn, const char* name) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(lib, name));
      if (fn == nullptr && api.error.empty()) api.error = soname + " has no symbol " + name;
    };
    sym(api.create, "cublasCreate_v2");
    sym(api.destroy, "cublasDestroy_v2");
    sym(api.set_stream, "cublasSetStream_v2");
    sym(api.sgemm, "cublasSgemm_v2");
    sym(api.status_string, "cublasGetStatusString");
    return api;
  }
};

void check(const char* call, cudaError_t err) {
  if (err != cudaSuccess) {
    throw std::runtime_error(std::string("spillway graph: ") + call + " failed: " + cudaGetErrorString(err));
  }
}

void check(const char* call, cublasStatus_t st) {
  if (st != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("spillway graph: ") + call + " failed: " +
                             CublasApi::get().status_string(st));
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
  CublasBlas(int ordinal, const CublasApi& api) : ordinal_(ordinal), api_(api) {
    check("cudaSetDevice", cudaSetDevice(ordinal_));
    check("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    const cublasStatus_t st = api_.create(&handle_);
    if (st != CUBLAS_STATUS_SUCCESS) {
      cudaStreamDestroy(stream_);
      check("cublasCreate", st);
    }
    check("cublasSetStream", api_.set_stream(handle_, stream_));
  }
  ~CublasBlas() override {
    api_.destroy(handle_);
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
          api_.sgemm(handle_, transpose_b ? CUBLAS_OP_T : CUBLAS_OP_N, transpose_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                      ni, mi, ki, &one, b, ldb, a, lda, &zero, c, ni));
    check("cudaStreamSynchronize", cudaStreamSynchronize(stream_));
  }

 private:
  int ordinal_;
  const CublasApi& api_;
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
  const CublasApi& api = CublasApi::get();
  if (!api.error.empty()) {
    if (why != nullptr) *why = api.error;
    return nullptr;
  }
  try {
    return std::make_unique<CublasBlas>(ordinal, api);
  } catch (const std::exception& e) {
    if (why != nullptr) *why = e.what();
    return nullptr;
  }
}

std::string DeviceBlas::library_problem() { return CublasApi::get().error; }

bool DeviceBlas::opened() { return CublasApi::tried.load(); }

}  // namespace spillway::graph
