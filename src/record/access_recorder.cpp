// src/record/access_recorder.cpp — per-thread chunks, the writer thread and
// the thread-exit hand-over (Note [Recording without a shared lock] in
// access_recorder.hpp).
#include "src/record/access_recorder.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "spillway/errors.hpp"

namespace spillway::record {

namespace {

std::atomic<std::uint64_t> next_recorder_id{1};

// The calling thread's logs in the recorders it used most recently: a
// trivially destructible cache (no TLS guard on the record path), by the
// recorder's id so that a recorder made at a freed one's address never
// finds the old log.
struct TlsSlot {
  std::uint64_t recorder = 0;
  void* log = nullptr;  // AccessRecorder::ThreadLog*
};
constexpr int kTlsSlots = 4;
thread_local TlsSlot tls_slots[kTlsSlots];
thread_local int tls_next_victim = 0;
// The calling thread's serial number in the process (0: not given yet).
// Not std::thread::id, which a new thread may reuse: two threads that never
// ran at once still get two thread numbers in a log.
std::atomic<std::uint64_t> next_thread_serial{1};
thread_local std::uint64_t tls_thread_serial = 0;

}  // namespace

// Live recorders by id. A thread that exits (or drops a slot for another
// recorder) finds its recorder here, under `mu`, and hands its chunk over;
// finish() leaves the registry under the same lock before it collects the
// chunks itself, so the two never meet and an exit never touches a
// recorder that is gone. Leaked on purpose: threads may exit after static
// destructors have run.
struct RecorderRegistry {
  std::mutex mu;
  std::unordered_map<std::uint64_t, AccessRecorder*> live;
  static RecorderRegistry& get() {
    static auto* r = new RecorderRegistry;
    return *r;
  }
  // Hands `log` over to the recorder `id` if it is still live.
  void detach(std::uint64_t id, void* log) {
    std::lock_guard lk(mu);
    const auto it = live.find(id);
    if (it != live.end()) it->second->detach(static_cast<AccessRecorder::ThreadLog*>(log));
  }
};

// Registered (by its first use) in each thread that records: at thread exit
// it hands every slot's log over.
struct ThreadExitHook {
  ~ThreadExitHook() {
    for (TlsSlot& s : tls_slots) {
      if (s.recorder != 0) RecorderRegistry::get().detach(s.recorder, s.log);
      s = TlsSlot{};
    }
  }
};

AccessRecorder::AccessRecorder(std::string path, const std::string& program, const RecordedOptions& options,
                               std::chrono::milliseconds writer_wait)
    : id_(next_recorder_id.fetch_add(1, std::memory_order_relaxed)),
      path_(std::move(path)),
      writer_wait_(writer_wait),
      start_(std::chrono::steady_clock::now()) {
  // Private to the user (it names buffers, sizes and timings of the program),
  // and never through a symlink someone planted at the path.
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd_ < 0) throw IoError(errno, path_, 0, "creating the access log (PoolOptions::record_file, SPILLWAY_RECORD)");
  const std::vector<std::byte> header = format::encode_header(program, options);
  std::string why;
  if (!write_at(0, header.data(), header.size(), nullptr, 0, &why)) {
    const int err = errno;
    ::close(fd_);
    throw IoError(err, path_, 0, "writing the access log's header: " + why);
  }
  {
    detail::MutexLock lk(mu_);
    file_end_ = header.size();
  }
  writer_ = std::thread([this] { writer_loop(); });
  std::lock_guard lk(RecorderRegistry::get().mu);
  RecorderRegistry::get().live.emplace(id_, this);
}

AccessRecorder::~AccessRecorder() {
  bool finished;
  {
    detail::MutexLock lk(mu_);
    finished = finished_;
  }
  if (!finished) finish(RecordedTotals{});
}

std::string AccessRecorder::claim_path(const std::string& path) {
  static std::mutex mu;
  static std::unordered_map<std::string, int> used;
  std::lock_guard lk(mu);
  const int n = used[path]++;
  return n == 0 ? path : path + "." + std::to_string(n);
}

// ---- the producers' side -------------------------------------------------------------

AccessRecorder::ThreadLog* AccessRecorder::thread_log() {
  if (tls_slots[0].recorder == id_) [[likely]] return static_cast<ThreadLog*>(tls_slots[0].log);
  for (int i = 1; i < kTlsSlots; ++i) {
    if (tls_slots[i].recorder == id_) return static_cast<ThreadLog*>(tls_slots[i].log);
  }
  return attach();
}

AccessRecorder::ThreadLog* AccessRecorder::attach() {
  static thread_local ThreadExitHook hook;  // registers the exit hand-over once per thread
  (void)hook;
  // A free slot, else the next victim, whose log is handed over now (its
  // thread keeps recording there through a new log if it comes back).
  int slot = -1;
  for (int i = 0; i < kTlsSlots && slot < 0; ++i) {
    if (tls_slots[i].recorder == 0) slot = i;
  }
  if (slot < 0) {
    slot = tls_next_victim;
    tls_next_victim = (tls_next_victim + 1) % kTlsSlots;
    RecorderRegistry::get().detach(tls_slots[slot].recorder, tls_slots[slot].log);
    tls_slots[slot] = TlsSlot{};
  }
  ThreadLog* t;
  {
    detail::MutexLock lk(mu_);
    auto log = std::make_unique<ThreadLog>();
    if (tls_thread_serial == 0) tls_thread_serial = next_thread_serial.fetch_add(1, std::memory_order_relaxed);
    const auto [it, added] =
        thread_numbers_.try_emplace(tls_thread_serial, static_cast<std::uint32_t>(thread_numbers_.size()));
    log->thread = it->second;
    t = log.get();
    logs_.push_back(std::move(log));
    start_chunk(t, fresh_chunk());
  }
  // The most recent recorder goes first: the common case is one pool.
  tls_slots[slot] = tls_slots[0];
  tls_slots[0] = TlsSlot{id_, t};
  return t;
}

void AccessRecorder::start_chunk(ThreadLog* t, std::unique_ptr<Chunk> c) {
  t->p = c->data.get();
  t->end = t->p + kChunkBytes;
  t->count = 0;
  t->delta = format::DeltaState{};
  t->chunk = std::move(c);
}

void AccessRecorder::seal(ThreadLog* t) {
  t->chunk->type = format::BlockType::Events;
  t->chunk->count = t->count;
  t->chunk->bytes = static_cast<std::size_t>(t->p - t->chunk->data.get());
}

void AccessRecorder::recycle(std::unique_ptr<Chunk> c) {
  // Marker blocks are made to their size: only event chunks are reused.
  if (c->type == format::BlockType::Events && free_.size() < kMaxQueued) free_.push_back(std::move(c));
}

std::unique_ptr<AccessRecorder::Chunk> AccessRecorder::fresh_chunk() {
  if (!free_.empty()) {
    auto c = std::move(free_.back());
    free_.pop_back();
    return c;
  }
  auto c = std::make_unique<Chunk>();
  c->data = std::make_unique<std::byte[]>(kChunkBytes);
  return c;
}

AccessRecorder::ThreadLog* AccessRecorder::hand_off(ThreadLog* t) {
  detail::MutexLock lk(mu_);
  if (!t->chunk) {
    // Handed over for good (its thread's exit hook ran, and a thread_local
    // destroyed after it still uses the pool): the log takes a chunk again,
    // which finish() collects.
    t->ended = false;
    start_chunk(t, fresh_chunk());
    return t;
  }
  seal(t);
  enqueue(lk, std::move(t->chunk));
  start_chunk(t, fresh_chunk());
  return t;
}

void AccessRecorder::detach(ThreadLog* t) {
  detail::MutexLock lk(mu_);
  if (t->ended) return;
  t->ended = true;
  seal(t);
  if (t->count > 0) {
    enqueue(lk, std::move(t->chunk));
  } else {
    recycle(std::move(t->chunk));
  }
  t->p = t->end = nullptr;
}

void AccessRecorder::enqueue(detail::MutexLock& lk, std::unique_ptr<Chunk> c) {
  if (!failed_ && queue_.size() >= kMaxQueued) {
    const auto until = std::chrono::steady_clock::now() + writer_wait_;
    while (!failed_ && queue_.size() >= kMaxQueued) {
      if (room_cv_.wait_until(lk.native(), until) == std::cv_status::timeout && queue_.size() >= kMaxQueued &&
          !failed_) {
        fail(lk, "the log writer fell behind by " + std::to_string(queue_.size()) + " chunks for " +
                     std::to_string(writer_wait_.count()) + " ms (io_timeout)");
      }
    }
  }
  if (failed_) {
    // Stopped: the events are counted, not kept (the footer says how many).
    if (c->type == format::BlockType::Events) dropped_events_ += c->count;
    recycle(std::move(c));
    return;
  }
  queue_.push_back(std::move(c));
  work_cv_.notify_one();
}

void AccessRecorder::marker(std::string_view name) {
  std::uint64_t index;
  {
    detail::MutexLock lk(mu_);
    const auto [it, added] = marker_index_.try_emplace(std::string(name), marker_index_.size());
    index = it->second;
    if (added) {
      // The name's block is queued before any chunk holding the event can
      // be, so the name comes first in the file.
      const std::vector<std::byte> payload = format::encode_marker_names({std::string(name)});
      auto c = std::make_unique<Chunk>();
      c->type = format::BlockType::Markers;
      c->count = 1;
      c->bytes = payload.size();
      c->data = std::make_unique<std::byte[]>(payload.size());
      std::memcpy(c->data.get(), payload.data(), payload.size());
      enqueue(lk, std::move(c));
    }
  }
  record(EventKind::Marker, 0, Tier::Host, Access::Read, index);
}

// ---- the writer -----------------------------------------------------------------------

bool AccessRecorder::write_at(std::uint64_t offset, const std::byte* a, std::size_t na, const std::byte* b,
                              std::size_t nb, std::string* why) {
  iovec iov[2] = {{const_cast<std::byte*>(a), na}, {const_cast<std::byte*>(b), nb}};
  int first = 0;
  const int count = nb > 0 ? 2 : 1;
  while (first < count) {
    const ssize_t n = ::pwritev(fd_, iov + first, count - first, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *why = "writing " + path_ + " at byte " + std::to_string(offset) + ": " +
             (n < 0 ? std::strerror(errno) : "the write made no progress");
      return false;
    }
    offset += static_cast<std::uint64_t>(n);
    auto left = static_cast<std::size_t>(n);
    while (first < count && left >= iov[first].iov_len) left -= iov[first++].iov_len;
    if (first < count) {
      iov[first].iov_base = static_cast<std::byte*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return true;
}

void AccessRecorder::fail(detail::MutexLock&, const std::string& why) {
  if (failed_) return;
  failed_ = true;
  stop_reason_ = why;
  std::fprintf(stderr,
               "spillway: recording to %s stopped: %s; the %llu events written so far are kept, later ones "
               "are counted as dropped in the log's footer\n",
               path_.c_str(), why.c_str(), static_cast<unsigned long long>(written_events_));
  for (auto& c : queue_) {
    if (c->type == format::BlockType::Events) dropped_events_ += c->count;
    recycle(std::move(c));
  }
  queue_.clear();
  room_cv_.notify_all();
}

void AccessRecorder::writer_loop() {
  std::vector<std::byte> head;
  detail::MutexLock lk(mu_);
  for (;;) {
    while (queue_.empty() && !stopping_) work_cv_.wait(lk.native());
    if (queue_.empty()) return;  // stopping, and all written
    std::unique_ptr<Chunk> c = std::move(queue_.front());
    queue_.pop_front();
    const std::uint64_t at = file_end_;
    bool ok;
    std::string why;
    {
      detail::Unlocked unlocked(lk, mu_);
      head.clear();
      format::put_block_header(head, c->type, c->count, c->data.get(), c->bytes);
      ok = write_at(at, head.data(), head.size(), c->data.get(), c->bytes, &why);
    }
    const bool events = c->type == format::BlockType::Events;
    if (ok) {
      // Kept even when a producer's wait ran out meanwhile: the block is whole.
      file_end_ = at + head.size() + c->bytes;
      if (events) written_events_ += c->count;
    } else {
      // Whole blocks only: a block cut short would make the log unreadable.
      if (::ftruncate(fd_, static_cast<off_t>(at)) != 0) {
        // The reader will name the cut block; the reason is on stderr.
      }
      if (events) dropped_events_ += c->count;
      fail(lk, why);
    }
    recycle(std::move(c));
    room_cv_.notify_all();
  }
}

RecordedTotals AccessRecorder::finish(RecordedTotals totals) {
  {
    // Out of the registry first: no thread exit hands a chunk over from
    // here on, and one doing so now is done when this lock is had.
    auto& reg = RecorderRegistry::get();
    std::lock_guard rl(reg.mu);
    reg.live.erase(id_);
  }
  {
    detail::MutexLock lk(mu_);
    if (finished_) return totals;
  }
  // Every thread's chunk: the pool is being destroyed, so no thread records.
  std::vector<ThreadLog*> logs;
  {
    detail::MutexLock lk(mu_);
    for (auto& l : logs_) logs.push_back(l.get());
  }
  for (ThreadLog* t : logs) detach(t);
  {
    detail::MutexLock lk(mu_);
    stopping_ = true;
    work_cv_.notify_all();
  }
  writer_.join();
  detail::MutexLock lk(mu_);
  finished_ = true;
  totals.events = written_events_;
  totals.dropped = dropped_events_;
  totals.stop_reason = stop_reason_;
  const std::vector<std::byte> payload = format::encode_footer(totals);
  std::vector<std::byte> head;
  format::put_block_header(head, format::BlockType::Footer, 0, payload.data(), payload.size());
  std::string why;
  if (!write_at(file_end_, head.data(), head.size(), payload.data(), payload.size(), &why)) {
    if (::ftruncate(fd_, static_cast<off_t>(file_end_)) != 0) {
      // The reader reports the cut block.
    }
    std::fprintf(stderr, "spillway: the access log %s has no footer: %s\n", path_.c_str(), why.c_str());
  } else {
    file_end_ += head.size() + payload.size();
  }
  ::close(fd_);
  fd_ = -1;
  return totals;
}

}  // namespace spillway::record
