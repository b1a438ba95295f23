// src/record/access_recorder.hpp — what a recording pool writes its access
// log with (PoolOptions::record_file, SPILLWAY_RECORD; the file format is
// docs/record-format.md).
//
// Note [Recording without a shared lock]
// Each thread that records gets a ThreadLog of its own: a 64 KiB chunk that
// it encodes its events into (deltas and varints, log_format.hpp) with no
// lock and no atomic read-modify-write. A full chunk goes to one background
// writer thread through a queue under mu_ — one lock per ~5000 events —
// and the thread takes an empty chunk back. Memory is bounded: at most
// kMaxQueued chunks wait for the writer, and a thread that would queue one
// more waits for it (up to `writer_wait`, the pool's io_timeout). Nothing is
// dropped silently: when the writer cannot go on (a write error, the disk
// full, a wait that ran out) the recording stops, says so once on stderr,
// keeps the file up to its last whole block, counts every later event as
// dropped and writes the reason in the footer.
//
// A thread's chunk reaches the file when it is full, when the thread exits
// (a thread_local hook hands it over, through a process-wide registry of
// live recorders, so an exit after the recorder is gone touches nothing) and
// at finish(), which hands over every thread's chunk. Events of one thread
// keep their order; the reader merges threads by time.
//
// Thread safety: record() and marker() from any thread; finish() once, when
// no other thread records any more (the pool is being destroyed).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/sync.hpp"
#include "src/record/access_log.hpp"
#include "src/record/log_format.hpp"

namespace spillway::record {

class AccessRecorder {
 public:
  static constexpr std::size_t kChunkBytes = std::size_t{64} << 10;
  static constexpr std::size_t kMaxQueued = 64;  // 4 MiB of chunks waiting for the writer

  // Creates (truncates) `path` and writes the header; throws IoError when it
  // cannot. Starts the writer thread.
  AccessRecorder(std::string path, const std::string& program, const RecordedOptions& options,
                 std::chrono::milliseconds writer_wait);
  ~AccessRecorder();  // finish() with empty totals when it was not called
  AccessRecorder(const AccessRecorder&) = delete;
  AccessRecorder& operator=(const AccessRecorder&) = delete;

  // Appends one event for the calling thread (time: now since the start).
  void record(EventKind kind, std::uint64_t buffer, Tier tier, Access access, std::uint64_t value) {
    ThreadLog* t = thread_log();
    if (static_cast<std::size_t>(t->end - t->p) < format::kMaxEventBytes) [[unlikely]] t = hand_off(t);
    Event e;
    e.kind = kind;
    e.tier = tier;
    e.access = access;
    e.thread = t->thread;
    e.time_ns = now_ns();
    e.buffer = buffer;
    e.value = value;
    t->p = format::put_event(t->p, e, t->delta);
    ++t->count;
  }
  // A Marker event named `name` (names are kept once each in Markers blocks).
  void marker(std::string_view name);
  // Hands over every thread's events, waits for the writer, writes the
  // footer (`totals` with events, dropped and stop_reason filled in here)
  // and closes the file. Returns the totals written.
  RecordedTotals finish(RecordedTotals totals);

  const std::string& path() const { return path_; }

  // The file the next recording to `path` in this process writes: `path`
  // the first time, then path.1, path.2, ... (so that the second pool of a
  // program run with SPILLWAY_RECORD does not overwrite the first's log).
  static std::string claim_path(const std::string& path);

 private:
  struct Chunk {
    format::BlockType type = format::BlockType::Events;
    std::uint32_t count = 0;
    std::size_t bytes = 0;
    std::unique_ptr<std::byte[]> data;
  };
  struct ThreadLog {
    std::uint32_t thread = 0;
    std::unique_ptr<Chunk> chunk;
    std::byte* p = nullptr;
    std::byte* end = nullptr;
    std::uint32_t count = 0;
    format::DeltaState delta;
    bool ended = false;  // handed over for good (thread exit, finish); under mu_
  };
  friend struct RecorderRegistry;
  friend struct ThreadExitHook;

  std::uint64_t now_ns() const {
    return static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start_).count());
  }
  ThreadLog* thread_log();                   // the calling thread's, made on first use
  ThreadLog* attach() SPILLWAY_EXCLUDES(mu_);  // thread_log()'s slow path
  ThreadLog* hand_off(ThreadLog* t) SPILLWAY_EXCLUDES(mu_);  // queue the full chunk, take an empty one
  void detach(ThreadLog* t) SPILLWAY_EXCLUDES(mu_);          // queue what the log holds; it ends
  // Queues a chunk for the writer, waiting (bounded) for room.
  void enqueue(detail::MutexLock& lk, std::unique_ptr<Chunk> c) SPILLWAY_REQUIRES(mu_);
  std::unique_ptr<Chunk> fresh_chunk() SPILLWAY_REQUIRES(mu_);
  void recycle(std::unique_ptr<Chunk> c) SPILLWAY_REQUIRES(mu_);
  void start_chunk(ThreadLog* t, std::unique_ptr<Chunk> c);
  void seal(ThreadLog* t);  // the log's chunk's count and bytes from its cursor
  void fail(detail::MutexLock& lk, const std::string& why) SPILLWAY_REQUIRES(mu_);
  void writer_loop() SPILLWAY_EXCLUDES(mu_);
  bool write_at(std::uint64_t offset, const std::byte* a, std::size_t na, const std::byte* b, std::size_t nb,
                std::string* why);

  const std::uint64_t id_;  // unique in the process (never reused, unlike an address)
  const std::string path_;
  const std::chrono::milliseconds writer_wait_;
  const std::chrono::steady_clock::time_point start_;
  int fd_ = -1;

  detail::Mutex mu_;
  std::condition_variable work_cv_;   // the writer: a chunk queued, or stopping
  std::condition_variable room_cv_;   // producers: the queue shrank
  std::deque<std::unique_ptr<Chunk>> queue_ SPILLWAY_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Chunk>> free_ SPILLWAY_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<ThreadLog>> logs_ SPILLWAY_GUARDED_BY(mu_);
  std::unordered_map<std::uint64_t, std::uint32_t> thread_numbers_ SPILLWAY_GUARDED_BY(mu_);  // by thread serial
  std::unordered_map<std::string, std::uint64_t> marker_index_ SPILLWAY_GUARDED_BY(mu_);
  bool stopping_ SPILLWAY_GUARDED_BY(mu_) = false;
  bool finished_ SPILLWAY_GUARDED_BY(mu_) = false;
  bool failed_ SPILLWAY_GUARDED_BY(mu_) = false;
  std::string stop_reason_ SPILLWAY_GUARDED_BY(mu_);
  std::uint64_t file_end_ SPILLWAY_GUARDED_BY(mu_) = 0;  // after the last whole block written
  std::uint64_t written_events_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::uint64_t dropped_events_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::thread writer_;
};

}  // namespace spillway::record
