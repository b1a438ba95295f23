// python/src/handles.hpp — the C++ objects behind spillway.Pool, spillway.Buffer
// and spillway.Pin, and the rules that tie their lifetimes together.
//
// Ownership runs one way: a Pin's Python object holds a reference to its
// Buffer's, a Buffer's to its Pool's. So Python never destroys a Pool under a
// live Buffer, nor a Buffer under a live Pin (the C++ contract: a Pin must
// not outlive its Buffer). Each handle also knows its dependents by plain
// pointer (the pool its buffers, a buffer its pins), so that Pool.close() and
// Buffer.free() can end them first; a handle being destroyed unregisters.
//
// Exported views: every memoryview or numpy array made through the buffer
// protocol, and every DLPack capsule (and the tensor a consumer makes of it),
// counts in PinHandle::exports and holds a reference to the pin's Python
// object until it is dropped. While a pin has exports, nothing may end it:
// Pin.release(), Buffer.free() and Pool.close() raise BufferError instead.
// That is the whole guarantee against dangling pointers.
//
// Blocking calls (pin, allocate, evict, quiesce, check_invariants, and the
// pool's destruction in close) release the GIL. While one runs, a
// CallInFlight counts it on its pool and buffer; free() and close() from
// another thread then raise RuntimeError rather than destroy what the call
// is using.
//
// Fork: a pool remembers the pid of the process that created it, and every
// entry point compares it with the current pid (cached per process and
// refreshed in a forked child by a pthread_atfork handler, so the check makes
// no system call). Using a pool, buffer or pin in a forked child raises
// ForkError; destroying one there leaks the C++ object instead of stopping
// threads that the child does not have or freeing extents of a spill file
// that it shares with its parent.
//
// Every member here is read and written with the GIL held.
#pragma once

#include <pybind11/pybind11.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>

#include "spillway/pool.hpp"

namespace spillway::instrument {
class ChromeTraceSink;
}
namespace spillway::graph {
class Session;
}

namespace spillway::python {

// This process's pid, without a system call.
pid_t current_pid() noexcept;
// Registers the handler that refreshes current_pid() in forked children. Once, at import.
void install_fork_handler();

class BufferHandle;
class PinHandle;
class SessionHandle;

class PoolHandle {
 public:
  // Creates the pool with the GIL released (it starts threads, makes the spill directory).
  explicit PoolHandle(const PoolOptions& options);
  ~PoolHandle();
  PoolHandle(const PoolHandle&) = delete;
  PoolHandle& operator=(const PoolHandle&) = delete;

  // The pool, for the Python call named `call`. Throws ForkError in a forked
  // child, ClosedError after close().
  Pool& pool(const char* call);
  // Throws ForkError when this is not the process that created the pool.
  void check_process(const char* call) const;
  bool closed() const noexcept { return pool_ == nullptr; }
  pid_t owner_pid() const noexcept { return owner_pid_; }
  // Whether Device pins hold CUDA device pointers (not addressable by the CPU).
  bool cuda_device_tier() const noexcept { return cuda_device_tier_; }
  int cuda_device() const noexcept { return cuda_device_; }

  // Ends every pin and buffer, stops a trace started with start_trace (writing
  // its file) and destroys the pool. Idempotent. Refuses (BusyError,
  // ExportedError) while another thread is inside a call or views are
  // exported; with `quiet` (a with-block left by an exception) it then
  // returns leaving the pool open instead, to be closed when it is collected.
  void close(bool quiet);

  // Records the pool's events into a Chrome/Perfetto trace at `path`.
  void start_trace(const std::string& path, std::size_t max_events, bool keep_last);
  // Stops it and writes the file: {"path", "events", "dropped"}.
  pybind11::dict stop_trace();
  bool tracing_to_file() const noexcept { return trace_ != nullptr; }

  void attach(BufferHandle* buffer) { buffers_.insert(buffer); }
  void detach(BufferHandle* buffer) { buffers_.erase(buffer); }
  void attach(SessionHandle* session) { sessions_.insert(session); }
  void detach(SessionHandle* session) { sessions_.erase(session); }
  int calls_in_flight = 0;

 private:
  // Turns the recorder off and writes trace_'s file (the GIL released).
  void finish_trace(Pool& pool);

  std::unique_ptr<Pool> pool_;
  pid_t owner_pid_;
  bool cuda_device_tier_ = false;
  int cuda_device_ = 0;
  std::shared_ptr<instrument::ChromeTraceSink> trace_;
  std::unordered_set<BufferHandle*> buffers_;
  std::unordered_set<SessionHandle*> sessions_;
};

class BufferHandle {
 public:
  enum class State { Live, Freed, PoolClosed };

  BufferHandle(pybind11::object pool_object, PoolHandle& pool, Buffer buffer);
  ~BufferHandle();
  BufferHandle(const BufferHandle&) = delete;
  BufferHandle& operator=(const BufferHandle&) = delete;

  // The C++ buffer, for the Python call named `call`. Throws ForkError, or
  // ClosedError once the buffer is freed or its pool closed.
  Buffer& buffer(const char* call);
  PoolHandle& pool() noexcept { return pool_; }
  const PoolHandle& pool() const noexcept { return pool_; }
  const pybind11::object& pool_object() const noexcept { return pool_object_; }
  std::size_t nbytes() const noexcept { return nbytes_; }
  std::uint64_t id() const noexcept { return id_; }
  const std::string& label() const noexcept { return label_; }
  State state() const noexcept { return state_; }
  // "buffer 'weights' (id 7)"
  std::string describe() const;

  // Makes `where` primary and returns a lease on it, with the GIL released.
  std::unique_ptr<PinHandle> pin(pybind11::object self, Tier where, Access access);
  // Buffer.free(): ends the pins and frees the bytes on every tier.
  // Idempotent; refuses like PoolHandle::close.
  void free(const char* call);
  // Ends the pins and the C++ buffer without the checks (the caller made
  // them); `why` is what later calls will be told.
  void end(State why) noexcept;
  // Views exported by this buffer's pins.
  int exported_views() const noexcept;

  void attach(PinHandle* pin) { pins_.insert(pin); }
  void detach(PinHandle* pin) { pins_.erase(pin); }
  int calls_in_flight = 0;

 private:
  pybind11::object pool_object_;  // keeps the Pool alive
  PoolHandle& pool_;
  std::optional<Buffer> buffer_;
  std::size_t nbytes_;
  std::uint64_t id_;
  std::string label_;
  State state_ = State::Live;
  std::unordered_set<PinHandle*> pins_;
};

class PinHandle {
 public:
  PinHandle(pybind11::object buffer_object, BufferHandle& buffer, Pin pin);
  ~PinHandle();
  PinHandle(const PinHandle&) = delete;
  PinHandle& operator=(const PinHandle&) = delete;

  // The first byte, for the Python call named `call` (a valid address even
  // for a zero-byte pin). Throws ForkError, or ClosedError once released.
  void* address(const char* call);
  // The same, for views the CPU reads: also refuses CUDA device memory.
  void* host_address(const char* call);
  std::size_t nbytes() const noexcept { return nbytes_; }
  Tier tier() const noexcept { return tier_; }
  Access access() const noexcept { return access_; }
  // A CUDA device pointer (a Device pin with the CUDA backend).
  bool device_memory() const noexcept { return device_memory_; }
  bool released() const noexcept { return !pin_.has_value(); }
  BufferHandle& buffer() noexcept { return buffer_; }
  const BufferHandle& buffer() const noexcept { return buffer_; }
  const pybind11::object& buffer_object() const noexcept { return buffer_object_; }

  // Pin.release(): ends the lease. Idempotent; ExportedError while views are exported.
  void release(const char* call);
  // Ends the lease now, no checks; `why` completes "this pin has been ...".
  void end(const char* why) noexcept;

  // Exported views (buffer protocol and DLPack) now alive.
  int exports = 0;

 private:
  pybind11::object buffer_object_;  // keeps the Buffer alive
  BufferHandle& buffer_;
  std::optional<Pin> pin_;
  std::size_t nbytes_;
  Tier tier_;
  Access access_;
  bool device_memory_;
  const char* ended_ = "released";
};

// Counts a call that releases the GIL on its pool (and buffer) for as long as
// it lives. Construct it before the gil_scoped_release, so that it is
// destroyed after the GIL is back.
class CallInFlight {
 public:
  explicit CallInFlight(PoolHandle& pool, BufferHandle* buffer = nullptr) noexcept;
  ~CallInFlight();
  CallInFlight(const CallInFlight&) = delete;
  CallInFlight& operator=(const CallInFlight&) = delete;

 private:
  PoolHandle& pool_;
  BufferHandle* buffer_;
};

// A graph::Session (spillway.graph.Session): holds its pool's Python object;
// Pool.close() ends it first (end()), after which it raises ClosedError.
class SessionHandle {
 public:
  SessionHandle(pybind11::object pool_object, PoolHandle& pool, unsigned inter_op_threads);
  ~SessionHandle();
  SessionHandle(const SessionHandle&) = delete;
  SessionHandle& operator=(const SessionHandle&) = delete;

  // The session, for the Python call named `call` (ForkError, ClosedError).
  graph::Session& session(const char* call);
  PoolHandle& pool() noexcept { return pool_; }
  const pybind11::object& pool_object() const noexcept { return pool_object_; }
  bool alive() const noexcept { return session_ != nullptr; }
  // Destroys the session, giving back every byte its graph held (GIL released).
  void end() noexcept;

 private:
  pybind11::object pool_object_;
  PoolHandle& pool_;
  std::unique_ptr<graph::Session> session_;
};

// The pybind11 bindings, one function per class (module.cpp calls them).
void bind_pool(pybind11::module_& m);
void bind_buffer(pybind11::module_& m);
void bind_pin(pybind11::module_& m);
void bind_graph(pybind11::module_& m);

}  // namespace spillway::python
