// src/instrument/live_stats.cpp — see live_stats.hpp.
#include "live_stats.hpp"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <new>
#include <set>

#include "spillway/errors.hpp"

namespace spillway::instrument {

namespace bip = boost::interprocess;

namespace {

constexpr std::size_t kPayloadWords = sizeof(LiveStatsPayload) / 8;
// A field added to PoolStats (or TierStats, MoveStats, ErrorStats) changes
// this: copy it in to_block/from_block, add it to LiveStatsPayload and bump
// kLiveStatsVersion, then update the number.
static_assert(sizeof(PoolStats) == 776, "PoolStats changed: update the live stats block");
// How long a reader keeps retrying a block that is mid-update, or a segment
// whose creator has not finished its header yet.
constexpr std::chrono::milliseconds kReadPatience{1000};

std::uint64_t unix_now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

std::string shm_path(const std::string& name) { return std::string(kShmDirectory) + "/" + name; }

std::string prefix_for(unsigned uid) { return "spillway." + std::to_string(uid) + "."; }

// Parses "<pid>" or "<pid>.<index>" (decimal, nothing else); false otherwise.
bool parse_suffix(std::string_view s, std::int64_t& pid, unsigned& index) {
  const auto dot = s.find('.');
  const std::string_view p = s.substr(0, dot);
  if (p.empty() || p.size() > 18 || p.find_first_not_of("0123456789") != std::string_view::npos) {
    return false;
  }
  std::from_chars(p.data(), p.data() + p.size(), pid);
  index = 0;
  if (dot != std::string_view::npos) {
    const std::string_view i = s.substr(dot + 1);
    if (i.empty() || i.size() > 9 || i.find_first_not_of("0123456789") != std::string_view::npos) {
      return false;
    }
    std::from_chars(i.data(), i.data() + i.size(), index);
    if (index == 0) return false;  // index 0 has no suffix
  }
  return pid > 0;
}

// Whether process `pid` runs (EPERM: it does, owned by someone else). A
// zombie, dead but not reaped yet, does not.
bool process_exists(std::int64_t pid) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  // /proc/<pid>/stat: "pid (comm) S ...", where comm may hold spaces and ')'.
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%lld/stat", static_cast<long long>(pid));
  std::FILE* f = std::fopen(path, "re");
  if (f == nullptr) return true;  // no /proc: trust kill()
  char buf[512];
  const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  const char* close = std::strrchr(buf, ')');
  return close == nullptr || close[1] != ' ' || (close[2] != 'Z' && close[2] != 'X');
}

struct Found {
  LiveSegment segment;
  bool alive;
};

// This user's segments in /dev/shm: regular files (not links) owned by the
// effective uid whose name parses, sorted by pid then index.
std::vector<Found> scan_segments() {
  std::vector<Found> out;
  const unsigned uid = ::geteuid();
  const std::string prefix = prefix_for(uid);
  DIR* dir = ::opendir(kShmDirectory);
  if (dir == nullptr) return out;
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view name(e->d_name);
    if (name.substr(0, prefix.size()) != prefix) continue;
    LiveSegment seg;
    if (!parse_suffix(name.substr(prefix.size()), seg.pid, seg.index)) continue;
    seg.name = std::string(name);
    struct stat st {};
    if (::lstat(shm_path(seg.name).c_str(), &st) != 0) continue;
    if (!S_ISREG(st.st_mode) || st.st_uid != uid) continue;
    const bool alive = process_exists(seg.pid);
    out.push_back({std::move(seg), alive});
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end(), [](const Found& a, const Found& b) {
    return a.segment.pid != b.segment.pid ? a.segment.pid < b.segment.pid
                                          : a.segment.index < b.segment.index;
  });
  return out;
}

// Names of the segments this process's publishers own.
std::mutex& registry_mutex() {
  static std::mutex mu;
  return mu;
}
std::set<std::string>& registry() {
  static std::set<std::string> names;
  return names;
}

int native_errno(const bip::interprocess_exception& e) {
  const int err = static_cast<int>(e.get_native_error());
  return err != 0 ? err : EIO;
}

std::uint64_t* payload_words(LiveStatsBlock* b) { return b->payload.data(); }

}  // namespace

// ---- PoolStats <-> payload ------------------------------------------------

void to_block(const PoolStats& s, LiveStatsPayload& out) {
  for (int t = 0; t < kTierCount; ++t) {
    const TierStats& in = s.tiers[t];
    LiveTierBlock& b = out.tiers[t];
    b.enabled = in.enabled ? 1 : 0;
    b.capacity_bytes = in.capacity_bytes;
    b.used_bytes = in.used_bytes;
    b.clean_bytes = in.clean_bytes;
    b.pinned_bytes = in.pinned_bytes;
    b.peak_bytes = in.peak_bytes;
    b.buffers = in.buffers;
    b.largest_free_bytes = in.largest_free_bytes;
    b.fragmentation = in.fragmentation;
    b.thread_cached_bytes = in.thread_cached_bytes;
  }
  for (int f = 0; f < kTierCount; ++f) {
    for (int t = 0; t < kTierCount; ++t) {
      const MoveStats& in = s.moves[f][t];
      out.moves[f][t] = {in.moves, in.bytes, in.stored_bytes, in.seconds};
    }
  }
  for (int r = 0; r < kEvictionReasonCount; ++r) out.evictions[r] = s.evictions[r];
  out.clean_evictions = s.clean_evictions;
  out.pins = s.pins;
  out.pin_waits = s.pin_waits;
  out.stall_seconds = s.stall_seconds;
  out.live_buffers = s.live_buffers;
  out.disk_stored_bytes = s.disk_stored_bytes;
  out.disk_file_bytes = s.disk_file_bytes;
  out.disk_direct_io = s.disk_direct_io ? 1 : 0;
  out.disk_overlapped_writes = s.disk_overlapped_writes;
  out.spill_write_failures = s.errors.spill_write_failures;
  out.fetch_failures = s.errors.fetch_failures;
  out.corruptions = s.errors.corruptions;
  out.out_of_memory = s.errors.out_of_memory;
  out.timeouts = s.errors.timeouts;
  std::copy(s.move_latency.begin(), s.move_latency.end(), out.move_latency.begin());
  out.move_latency_sum = s.move_latency_sum;
}

PoolStats from_block(const LiveStatsPayload& in) {
  PoolStats s;
  for (int t = 0; t < kTierCount; ++t) {
    const LiveTierBlock& b = in.tiers[t];
    TierStats& out = s.tiers[t];
    out.enabled = b.enabled != 0;
    out.capacity_bytes = b.capacity_bytes;
    out.used_bytes = b.used_bytes;
    out.clean_bytes = b.clean_bytes;
    out.pinned_bytes = b.pinned_bytes;
    out.peak_bytes = b.peak_bytes;
    out.buffers = b.buffers;
    out.largest_free_bytes = b.largest_free_bytes;
    out.fragmentation = b.fragmentation;
    out.thread_cached_bytes = b.thread_cached_bytes;
  }
  for (int f = 0; f < kTierCount; ++f) {
    for (int t = 0; t < kTierCount; ++t) {
      const LiveMoveBlock& b = in.moves[f][t];
      s.moves[f][t] = {b.moves, b.bytes, b.stored_bytes, b.seconds};
    }
  }
  for (int r = 0; r < kEvictionReasonCount; ++r) s.evictions[r] = in.evictions[r];
  s.clean_evictions = in.clean_evictions;
  s.pins = in.pins;
  s.pin_waits = in.pin_waits;
  s.stall_seconds = in.stall_seconds;
  s.live_buffers = in.live_buffers;
  s.disk_stored_bytes = in.disk_stored_bytes;
  s.disk_file_bytes = in.disk_file_bytes;
  s.disk_direct_io = in.disk_direct_io != 0;
  s.disk_overlapped_writes = in.disk_overlapped_writes;
  s.errors.spill_write_failures = in.spill_write_failures;
  s.errors.fetch_failures = in.fetch_failures;
  s.errors.corruptions = in.corruptions;
  s.errors.out_of_memory = in.out_of_memory;
  s.errors.timeouts = in.timeouts;
  std::copy(in.move_latency.begin(), in.move_latency.end(), s.move_latency.begin());
  s.move_latency_sum = in.move_latency_sum;
  return s;
}

std::string segment_name(unsigned uid, std::int64_t pid, unsigned index) {
  std::string name = prefix_for(uid) + std::to_string(pid);
  if (index > 0) {
    name += '.';
    name += std::to_string(index);
  }
  return name;
}

// ---- LiveStatsPublisher ---------------------------------------------------

// Owns the segment: removes it (in the process that created it) and frees
// its name when destroyed, also when the publisher's constructor throws.
struct LiveStatsPublisher::Mapping {
  std::string name;
  std::int64_t owner_pid = 0;
  bip::mapped_region region;

  ~Mapping() {
    if (name.empty()) return;
    region = bip::mapped_region();
    if (::getpid() == owner_pid) bip::shared_memory_object::remove(name.c_str());
    std::lock_guard lk(registry_mutex());
    registry().erase(name);
  }
};

LiveStatsPublisher::LiveStatsPublisher(std::chrono::milliseconds interval,
                                       std::function<PoolStats()> snapshot)
    : interval_(interval), snapshot_(std::move(snapshot)), map_(std::make_unique<Mapping>()) {
  clean_stale_segments();
  const unsigned uid = ::geteuid();
  owner_pid_ = ::getpid();
  map_->owner_pid = owner_pid_;
  bip::permissions perm;
  perm.set_permissions(0600);
  bip::shared_memory_object shm;
  {
    // The first name that no publisher of this process holds. One that
    // exists anyway was left by an earlier process with our pid (a reused
    // pid; the owner is certainly dead): it is replaced. One that cannot be
    // removed (another user's file in the sticky /dev/shm, which readers
    // ignore) is skipped.
    std::lock_guard lk(registry_mutex());
    constexpr unsigned kMaxIndex = 1000;
    for (unsigned index = 0; map_->name.empty(); ++index) {
      const std::string name = segment_name(uid, owner_pid_, index);
      if (index >= kMaxIndex) {
        throw IoError(EEXIST, shm_path(name), 0, "creating the live stats segment (too many pools)");
      }
      if (registry().count(name) != 0) continue;
      for (int attempt = 0; attempt < 2; ++attempt) {
        try {
          shm = bip::shared_memory_object(bip::create_only, name.c_str(), bip::read_write, perm);
          registry().insert(name);
          map_->name = name;
          break;
        } catch (const bip::interprocess_exception& e) {
          const bool exists = e.get_error_code() == bip::already_exists_error;
          if (!exists) {
            throw IoError(native_errno(e), shm_path(name), 0, "creating the live stats segment");
          }
          if (attempt > 0 || !bip::shared_memory_object::remove(name.c_str())) break;  // next index
        }
      }
    }
  }
  name_ = map_->name;
  try {
    shm.truncate(static_cast<bip::offset_t>(sizeof(LiveStatsBlock)));
    map_->region = bip::mapped_region(shm, bip::read_write, 0, sizeof(LiveStatsBlock));
  } catch (const bip::interprocess_exception& e) {
    throw IoError(native_errno(e), shm_path(name_), 0, "mapping the live stats segment");
  }
  // The file is zero-filled: the magic is 0 (not ready) until the header is written.
  block_ = ::new (map_->region.get_address()) LiveStatsBlock{};
  block_->version = kLiveStatsVersion;
  block_->block_bytes = sizeof(LiveStatsBlock);
  block_->pid = owner_pid_;
  block_->start_unix_ns = unix_now_ns();
  block_->magic.store(kLiveStatsMagic, std::memory_order_release);
  publish_now();
  periodic_ = std::make_unique<PeriodicTask>(interval_, "live stats", [this] { publish_now(); });
}

LiveStatsPublisher::~LiveStatsPublisher() {
  periodic_->stop();
  try {
    publish_now();  // the final numbers, for a reader that is looking right now
  } catch (const std::exception& e) {
    std::fprintf(stderr, "spillway: live stats: %s\n", e.what());
  }
  map_.reset();  // unmaps and removes the segment
}

void LiveStatsPublisher::publish_now() {
  detail::MutexLock lk(publish_mu_);
  LiveStatsPayload p{};
  to_block(snapshot_(), p);
  p.updated_unix_ns = unix_now_ns();
  p.publishes = publishes_.load() + 1;
  std::array<std::uint64_t, kPayloadWords> words;
  std::memcpy(words.data(), &p, sizeof p);
  // Seqlock write: odd, (release fence) payload, even with release. A reader
  // that sees the same even number before and after its copy got this
  // payload whole.
  const std::uint64_t seq = block_->sequence.load(std::memory_order_relaxed);
  block_->sequence.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  std::uint64_t* dst = payload_words(block_);
  for (std::size_t i = 0; i < kPayloadWords; ++i) {
    std::atomic_ref<std::uint64_t>(dst[i]).store(words[i], std::memory_order_relaxed);
  }
  block_->sequence.store(seq + 2, std::memory_order_release);
  publishes_.fetch_add(1);
}

std::vector<std::string> LiveStatsPublisher::clean_stale_segments() {
  std::vector<std::string> removed;
  for (const Found& f : scan_segments()) {
    if (f.alive) continue;
    if (bip::shared_memory_object::remove(f.segment.name.c_str())) removed.push_back(f.segment.name);
  }
  return removed;
}

// ---- LiveStatsReader ------------------------------------------------------

struct LiveStatsReader::Mapping {
  bip::mapped_region region;
};

std::vector<LiveSegment> LiveStatsReader::list() {
  std::vector<LiveSegment> out;
  for (Found& f : scan_segments()) {
    if (f.alive) out.push_back(std::move(f.segment));
  }
  return out;
}

LiveStatsReader::LiveStatsReader(std::int64_t pid) {
  const unsigned uid = ::geteuid();
  const std::string expected = shm_path(segment_name(uid, pid, 0));
  for (const Found& f : scan_segments()) {
    if (f.segment.pid != pid) continue;
    if (!f.alive) {
      throw LiveStatsError("process " + std::to_string(pid) + " is gone; " +
                           shm_path(f.segment.name) +
                           " is a stale live stats segment (the next pool removes it)");
    }
    *this = LiveStatsReader(pid, f.segment.name);
    return;
  }
  std::string why = process_exists(pid)
                        ? "process " + std::to_string(pid) +
                              " exists but publishes no live stats (a pool does when "
                              "PoolOptions::live_stats or SPILLWAY_LIVE_STATS=1 is set)"
                        : "no process " + std::to_string(pid) + " exists";
  throw LiveStatsError("no spillway pool with live stats for pid " + std::to_string(pid) + ": " +
                       expected + " not found (" + why + ")");
}

LiveStatsReader LiveStatsReader::attach(const LiveSegment& segment) {
  return LiveStatsReader(segment.pid, segment.name);
}

LiveStatsReader::LiveStatsReader(std::int64_t pid, std::string name)
    : pid_(pid), name_(std::move(name)), map_(std::make_unique<Mapping>()) {
  const std::string path = shm_path(name_);
  const std::string who = "live stats of pid " + std::to_string(pid_) + " (" + path + ")";
  bip::shared_memory_object shm;
  try {
    shm = bip::shared_memory_object(bip::open_only, name_.c_str(), bip::read_only);
  } catch (const bip::interprocess_exception& e) {
    throw LiveStatsError(who + ": cannot open: " + std::strerror(native_errno(e)));
  }
  struct stat st {};
  if (::fstat(shm.get_mapping_handle().handle, &st) != 0) {
    throw LiveStatsError(who + ": fstat: " + std::strerror(errno));
  }
  inode_ = st.st_ino;
  // A publisher sizes the segment and then writes the header: wait for both,
  // within kReadPatience.
  const auto deadline = std::chrono::steady_clock::now() + kReadPatience;
  bip::offset_t size = 0;
  for (;;) {
    if (!shm.get_size(size)) throw LiveStatsError(who + ": cannot read its size");
    if (size >= static_cast<bip::offset_t>(16)) {
      if (!map_->region.get_address()) {
        try {
          map_->region = bip::mapped_region(shm, bip::read_only, 0, static_cast<std::size_t>(size));
        } catch (const bip::interprocess_exception& e) {
          throw LiveStatsError(who + ": cannot map: " + std::strerror(native_errno(e)));
        }
      }
      block_ = static_cast<const LiveStatsBlock*>(map_->region.get_address());
      const std::uint64_t magic = block_->magic.load(std::memory_order_acquire);
      if (magic == kLiveStatsMagic) break;
      if (magic != 0) throw LiveStatsError(who + ": not a spillway live stats block (bad magic)");
    }
    if (std::chrono::steady_clock::now() > deadline) {
      throw LiveStatsError(who + ": the segment is still being created after " +
                           std::to_string(kReadPatience.count()) + " ms (" + std::to_string(size) +
                           " bytes, no header)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (block_->version != kLiveStatsVersion) {
    throw LiveStatsError(who + ": the block has layout version " + std::to_string(block_->version) +
                         ", this spillway reads version " + std::to_string(kLiveStatsVersion) +
                         " (use the spillway tool built with the program's spillway)");
  }
  if (block_->block_bytes != sizeof(LiveStatsBlock) ||
      static_cast<std::uint64_t>(size) < sizeof(LiveStatsBlock)) {
    throw LiveStatsError(who + ": the block is " + std::to_string(block_->block_bytes) +
                         " bytes in a segment of " + std::to_string(size) + ", version " +
                         std::to_string(kLiveStatsVersion) + " needs " +
                         std::to_string(sizeof(LiveStatsBlock)));
  }
}

LiveStatsReader::~LiveStatsReader() = default;
LiveStatsReader::LiveStatsReader(LiveStatsReader&&) noexcept = default;
LiveStatsReader& LiveStatsReader::operator=(LiveStatsReader&&) noexcept = default;

LiveSnapshot LiveStatsReader::read() const {
  std::array<std::uint64_t, kPayloadWords> words;
  // The mapping is read-only: the atomic_refs below only ever load.
  std::uint64_t* src = const_cast<std::uint64_t*>(block_->payload.data());
  const auto deadline = std::chrono::steady_clock::now() + kReadPatience;
  for (int attempt = 0;; ++attempt) {
    const std::uint64_t before = block_->sequence.load(std::memory_order_acquire);
    if (before % 2 == 0) {
      for (std::size_t i = 0; i < kPayloadWords; ++i) {
        words[i] = std::atomic_ref<std::uint64_t>(src[i]).load(std::memory_order_relaxed);
      }
      std::atomic_thread_fence(std::memory_order_acquire);
      if (block_->sequence.load(std::memory_order_relaxed) == before && before != 0) break;
    }
    // Mid-update (or not yet published): the writer is a memcpy away from
    // done, unless it was descheduled or died while writing.
    if (std::chrono::steady_clock::now() > deadline) {
      throw LiveStatsError("live stats of pid " + std::to_string(pid_) + " (" + shm_path(name_) +
                           "): the block stayed mid-update for " +
                           std::to_string(kReadPatience.count()) + " ms over " +
                           std::to_string(attempt + 1) +
                           " reads (its writer may have died while publishing)");
    }
    if (attempt < 64) std::this_thread::yield();
    else std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  LiveStatsPayload p;
  std::memcpy(&p, words.data(), sizeof p);
  LiveSnapshot out;
  out.stats = from_block(p);
  out.pid = block_->pid;
  out.name = name_;
  out.start_unix_ns = block_->start_unix_ns;
  out.updated_unix_ns = p.updated_unix_ns;
  out.publishes = p.publishes;
  const std::uint64_t now = unix_now_ns();
  out.age_seconds = now > p.updated_unix_ns ? static_cast<double>(now - p.updated_unix_ns) / 1e9 : 0.0;
  return out;
}

bool LiveStatsReader::pool_alive() const {
  struct stat st {};
  if (::lstat(shm_path(name_).c_str(), &st) != 0 || st.st_ino != inode_) return false;
  return process_exists(pid_);
}

LiveSnapshot LiveStatsReader::read(std::int64_t pid) { return LiveStatsReader(pid).read(); }

}  // namespace spillway::instrument
