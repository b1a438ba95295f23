// tiers/device/memory_arena.hpp — a memory tier's storage: one or more
// regions carved by the shared SubAllocator.
//
// A MemoryArena is mechanism only: it hands out and takes back blocks and
// copies bytes in and out. It never decides what to evict; when allocate()
// returns nullptr the pool chooses victims and tries again.
//
// Not thread-safe: the pool serialises allocate/free/stats under its lock.
// copy_to_host/copy_from_host are called from IO workers without the lock,
// on blocks the pool has reserved for that move.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <thread>

#include "sub_allocator.hpp"

namespace spillway::detail {

// A point in a device's queue of work (a CUDA event): done() once every
// operation queued before it has finished. Polled, never blocked on, by the
// pool (under its lock: done() must be quick and must not throw).
class Fence {
 public:
  virtual ~Fence() = default;
  virtual bool done() = 0;
};

class MemoryArena {
 public:
  explicit MemoryArena(std::size_t capacity) : capacity_(capacity) {}
  virtual ~MemoryArena() = default;
  MemoryArena(const MemoryArena&) = delete;
  MemoryArena& operator=(const MemoryArena&) = delete;

  // "simulated", "host", "cuda".
  virtual std::string_view backend() const = 0;
  // True when the arena's pointers are ordinary host memory, so a disk write
  // can read them directly and memcpy works.
  virtual bool host_accessible() const = 0;

  // A block of at least `bytes` (rounded to SubAllocator::kAlignment), or
  // nullptr when no free extent holds it. Virtual so that a test arena can
  // refuse requests (the stress harness's device allocation faults); an
  // override that returns a block must take it from alloc_ (free() and the
  // accounting go through it).
  virtual void* allocate(std::size_t bytes) {
    if (auto p = alloc_.allocate(bytes)) return reinterpret_cast<void*>(p);
    if (!grow(bytes)) return nullptr;
    return reinterpret_cast<void*>(alloc_.allocate(bytes));
  }
  void free(void* block) { alloc_.free(reinterpret_cast<std::uintptr_t>(block)); }
  SubAllocatorStats stats() const { return alloc_.stats(); }
  // The tier's budget (mapped memory may be less, for arenas that grow).
  std::size_t capacity() const { return capacity_; }
  std::size_t used() const { return alloc_.used(); }
  // The bytes a request of `bytes` takes from the arena.
  static std::size_t footprint(std::size_t bytes) { return SubAllocator::round_up(bytes); }

  // Copies between a block of this arena and ordinary host memory.
  virtual void copy_to_host(void* host_dst, const void* src, std::size_t n) {
    std::memcpy(host_dst, src, n);
  }
  virtual void copy_from_host(void* dst, const void* host_src, std::size_t n) {
    std::memcpy(dst, host_src, n);
  }

  // Stream ordering, for arenas on a device with queues of work (CUDA).
  // `stream` is the device's stream handle (cudaStream_t), nullptr the
  // default stream. An arena without queues copies at once and returns
  // nullptr (nothing left in flight): the base versions below.
  //
  // Queues a copy into this arena and orders `stream` after it; the fence
  // completes with the copy. host_src must stay allocated until then.
  virtual std::shared_ptr<Fence> copy_from_host_ordered(void* dst, const void* host_src,
                                                        std::size_t n, void* stream) {
    copy_from_host(dst, host_src, n);
    (void)stream;
    return nullptr;
  }
  // Orders work later queued on `stream` after `fence`.
  virtual void order_after(void* stream, const std::shared_ptr<Fence>& fence) {
    (void)stream;
    (void)fence;
  }
  // A fence that completes when the work queued on `stream` so far has.
  virtual std::shared_ptr<Fence> fence_on(void* stream) {
    (void)stream;
    return nullptr;
  }

  // Staging for disk <-> device moves of arenas that are not host
  // accessible: host memory for one staging buffer (page-locked with CUDA,
  // so the DMA engine reads it directly), and copies between such a buffer
  // and a block that run in the background until their fence completes
  // (nullptr: already complete). Copies in one direction complete in order.
  virtual void* allocate_staging(std::size_t bytes) {
    void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  virtual void free_staging(void* p) noexcept { std::free(p); }
  virtual std::shared_ptr<Fence> copy_to_host_async(void* host_dst, const void* src,
                                                    std::size_t n) {
    copy_to_host(host_dst, src, n);
    return nullptr;
  }
  virtual std::shared_ptr<Fence> copy_from_host_async(void* dst, const void* host_src,
                                                      std::size_t n) {
    copy_from_host(dst, host_src, n);
    return nullptr;
  }
  // Blocks until `fence` is done. Throws (naming the call) when the device
  // reports an error.
  virtual void wait(const std::shared_ptr<Fence>& fence) {
    while (fence && !fence->done()) std::this_thread::yield();
  }

 protected:
  // Arenas that map memory on demand (the CUDA ones) add a region that holds
  // at least `bytes` while the mapped total stays within capacity_; false
  // when they cannot (budget reached, or the runtime refused).
  virtual bool grow(std::size_t bytes) {
    (void)bytes;
    return false;
  }

  SubAllocator alloc_;
  std::size_t capacity_;  // the tier's budget; mapped regions never exceed it
};

// An arena in ordinary (pageable) host memory: one anonymous mapping of the
// whole capacity, reserved without committing (pages are touched only when
// used). Serves as the host tier and as the simulated device backend.
class HostMemoryArena final : public MemoryArena {
 public:
  // Throws std::system_error when the address space cannot be reserved.
  HostMemoryArena(std::size_t capacity, std::string_view backend_name);
  ~HostMemoryArena() override;
  std::string_view backend() const override { return name_; }
  bool host_accessible() const override { return true; }

 private:
  void* base_ = nullptr;
  std::size_t mapped_ = 0;
  std::string_view name_;
};

}  // namespace spillway::detail
