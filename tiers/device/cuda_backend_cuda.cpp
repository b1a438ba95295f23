// tiers/device/cuda_backend_cuda.cpp — VRAM and pinned-host arenas over the
// CUDA runtime (see cuda_backend.hpp). Built only with SPILLWAY_CUDA.
#include <cuda_runtime.h>

#include <cstdio>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_backend.hpp"

namespace spillway::detail::cuda {

namespace {

// Memory is mapped in chunks of this size (or the request, if larger).
constexpr std::size_t kChunkBytes = std::size_t{64} << 20;

[[noreturn]] void fail(const char* call, cudaError_t err) {
  throw std::runtime_error(std::string("spillway: ") + call + " failed: " +
                           cudaGetErrorName(err) + " (" + cudaGetErrorString(err) + ")");
}

void check(const char* call, cudaError_t err) {
  if (err != cudaSuccess) fail(call, err);
}

// One stream per copy direction, shared by every arena of the process and
// created on first use, per device.
struct Streams {
  cudaStream_t to_device = nullptr;
  cudaStream_t to_host = nullptr;
};

Streams& streams_for(int ordinal) {
  static std::mutex mu;
  static std::vector<Streams> all;
  std::lock_guard lk(mu);
  if (all.size() <= static_cast<std::size_t>(ordinal)) all.resize(ordinal + 1);
  Streams& s = all[ordinal];
  if (s.to_device == nullptr) {
    check("cudaSetDevice", cudaSetDevice(ordinal));
    check("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&s.to_device, cudaStreamNonBlocking));
    check("cudaStreamCreateWithFlags", cudaStreamCreateWithFlags(&s.to_host, cudaStreamNonBlocking));
  }
  return s;
}

// Copies n bytes on `stream` and waits for that copy alone (an event, not a
// stream or device synchronisation, so other copies keep flowing).
void copy_and_wait(int ordinal, void* dst, const void* src, std::size_t n, cudaMemcpyKind kind,
                   cudaStream_t stream) {
  check("cudaSetDevice", cudaSetDevice(ordinal));
  thread_local cudaEvent_t done = nullptr;
  if (done == nullptr) {
    check("cudaEventCreateWithFlags", cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  }
  check("cudaMemcpyAsync", cudaMemcpyAsync(dst, src, n, kind, stream));
  check("cudaEventRecord", cudaEventRecord(done, stream));
  check("cudaEventSynchronize", cudaEventSynchronize(done));
}

// A CUDA event as a Fence. Created per use: fences are few (one per
// stream-aware pin or deferred unpin) and an event costs microseconds.
class EventFence final : public Fence {
 public:
  explicit EventFence(int ordinal) {
    check("cudaSetDevice", cudaSetDevice(ordinal));
    check("cudaEventCreateWithFlags", cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
  }
  ~EventFence() override { cudaEventDestroy(event_); }
  EventFence(const EventFence&) = delete;
  EventFence& operator=(const EventFence&) = delete;
  bool done() override {
    const cudaError_t err = cudaEventQuery(event_);
    if (err == cudaErrorNotReady) return false;
    // Any other error means the context is gone: nothing queued will run,
    // so nothing still touches the memory. Clear it and call it done.
    if (err != cudaSuccess) cudaGetLastError();
    return true;
  }
  cudaEvent_t event() const { return event_; }

 private:
  cudaEvent_t event_ = nullptr;
};

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// Shared logic of the two chunked arenas.
class ChunkedArena : public MemoryArena {
 public:
  ChunkedArena(int ordinal, std::size_t capacity)
      : MemoryArena(SubAllocator::round_up(capacity)), ordinal_(ordinal) {}

 protected:
  bool grow(std::size_t bytes) override {
    const std::size_t need = SubAllocator::round_up(bytes);
    const std::size_t mapped = alloc_.capacity();
    if (mapped >= capacity_ || capacity_ - mapped < need) return false;
    const std::size_t chunk = std::min(capacity_ - mapped, std::max(need, kChunkBytes));
    check("cudaSetDevice", cudaSetDevice(ordinal_));
    void* p = map(chunk);
    if (p == nullptr) return false;
    chunks_.push_back(p);
    alloc_.add_region(reinterpret_cast<std::uintptr_t>(p), chunk);
    return true;
  }
  // Maps `bytes` (a multiple of 256) or returns nullptr when out of memory.
  virtual void* map(std::size_t bytes) = 0;

  int ordinal_;
  std::vector<void*> chunks_;
};

class DeviceArena final : public ChunkedArena {
 public:
  using ChunkedArena::ChunkedArena;
  std::shared_ptr<Fence> queue_copy(void* dst, const void* src, std::size_t n, cudaMemcpyKind kind,
                                    cudaStream_t stream) {
    auto fence = std::make_shared<EventFence>(ordinal_);
    check("cudaMemcpyAsync", cudaMemcpyAsync(dst, src, n, kind, stream));
    check("cudaEventRecord", cudaEventRecord(fence->event(), stream));
    return fence;
  }
  ~DeviceArena() override {
    cudaSetDevice(ordinal_);
    for (void* p : chunks_) cudaFree(p);
  }
  std::string_view backend() const override { return "cuda"; }
  bool host_accessible() const override { return false; }
  void copy_to_host(void* host_dst, const void* src, std::size_t n) override {
    copy_and_wait(ordinal_, host_dst, src, n, cudaMemcpyDeviceToHost, streams_for(ordinal_).to_host);
  }
  void copy_from_host(void* dst, const void* host_src, std::size_t n) override {
    copy_and_wait(ordinal_, dst, host_src, n, cudaMemcpyHostToDevice,
                  streams_for(ordinal_).to_device);
  }
  std::shared_ptr<Fence> copy_from_host_ordered(void* dst, const void* host_src, std::size_t n,
                                                void* stream) override {
    cudaStream_t copy = streams_for(ordinal_).to_device;
    auto fence = std::make_shared<EventFence>(ordinal_);
    check("cudaMemcpyAsync", cudaMemcpyAsync(dst, host_src, n, cudaMemcpyHostToDevice, copy));
    check("cudaEventRecord", cudaEventRecord(fence->event(), copy));
    check("cudaStreamWaitEvent", cudaStreamWaitEvent(as_stream(stream), fence->event(), 0));
    return fence;
  }
  void order_after(void* stream, const std::shared_ptr<Fence>& fence) override {
    auto* event = dynamic_cast<EventFence*>(fence.get());
    if (event == nullptr) return;
    check("cudaSetDevice", cudaSetDevice(ordinal_));
    check("cudaStreamWaitEvent", cudaStreamWaitEvent(as_stream(stream), event->event(), 0));
  }
  void* allocate_staging(std::size_t bytes) override {
    check("cudaSetDevice", cudaSetDevice(ordinal_));
    void* p = nullptr;
    const cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      throw std::bad_alloc();
    }
    check("cudaHostAlloc (staging buffer)", err);
    return p;
  }
  void free_staging(void* p) noexcept override { cudaFreeHost(p); }
  std::shared_ptr<Fence> copy_to_host_async(void* host_dst, const void* src,
                                            std::size_t n) override {
    return queue_copy(host_dst, src, n, cudaMemcpyDeviceToHost, streams_for(ordinal_).to_host);
  }
  std::shared_ptr<Fence> copy_from_host_async(void* dst, const void* host_src,
                                              std::size_t n) override {
    return queue_copy(dst, host_src, n, cudaMemcpyHostToDevice, streams_for(ordinal_).to_device);
  }
  void wait(const std::shared_ptr<Fence>& fence) override {
    auto* event = dynamic_cast<EventFence*>(fence.get());
    if (event == nullptr) return;
    check("cudaEventSynchronize", cudaEventSynchronize(event->event()));
  }
  std::shared_ptr<Fence> fence_on(void* stream) override {
    auto fence = std::make_shared<EventFence>(ordinal_);
    check("cudaEventRecord", cudaEventRecord(fence->event(), as_stream(stream)));
    return fence;
  }

 private:
  void* map(std::size_t bytes) override {
    void* p = nullptr;
    const cudaError_t err = cudaMalloc(&p, bytes);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the sticky-free error state
      return nullptr;
    }
    check("cudaMalloc", err);
    return p;
  }
};

class PinnedHostArena final : public ChunkedArena {
 public:
  using ChunkedArena::ChunkedArena;
  ~PinnedHostArena() override {
    for (void* p : chunks_) cudaFreeHost(p);
  }
  std::string_view backend() const override { return "pinned"; }
  bool host_accessible() const override { return true; }

 private:
  void* map(std::size_t bytes) override {
    void* p = nullptr;
    const cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocPortable);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      return nullptr;
    }
    check("cudaHostAlloc", err);
    return p;
  }
};

}  // namespace

bool compiled() { return true; }

bool device_available(int ordinal, std::string* why) {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (why != nullptr) {
      *why = std::string("the CUDA runtime reports no usable GPU: ") + cudaGetErrorName(err) +
             " (" + cudaGetErrorString(err) + ")";
    }
    return false;
  }
  if (ordinal >= count) {
    if (why != nullptr) {
      *why = "CUDA device " + std::to_string(ordinal) + " requested, but " +
             std::to_string(count) + " device(s) present";
    }
    return false;
  }
  return true;
}

std::string describe_device(int ordinal) {
  if (!device_available(ordinal, nullptr)) return {};
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, ordinal) != cudaSuccess) return {};
  int driver = 0;
  cudaDriverGetVersion(&driver);
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s (compute %d.%d, %.1f GiB, driver %d.%d)", prop.name,
                prop.major, prop.minor, static_cast<double>(prop.totalGlobalMem) / (1 << 30),
                driver / 1000, (driver % 1000) / 10);
  return buf;
}

std::size_t free_device_memory(int ordinal) {
  if (!device_available(ordinal, nullptr)) return 0;
  check("cudaSetDevice", cudaSetDevice(ordinal));
  std::size_t free_bytes = 0, total = 0;
  check("cudaMemGetInfo", cudaMemGetInfo(&free_bytes, &total));
  return free_bytes;
}

std::unique_ptr<MemoryArena> make_device_arena(int ordinal, std::size_t capacity) {
  return std::make_unique<DeviceArena>(ordinal, capacity);
}

std::unique_ptr<MemoryArena> make_pinned_host_arena(int ordinal, std::size_t capacity) {
  return std::make_unique<PinnedHostArena>(ordinal, capacity);
}

}  // namespace spillway::detail::cuda
