// bench/spill_bench.cpp — host -> disk spill and disk -> host fetch
// throughput, beside raw pwrite/pread of the same sizes in the same run.
//
//   spill/<codec>/<data>/<size>   Buffer::evict(Tier::Disk) of a host buffer
//                                 whose disk copy was invalidated (timed);
//                                 between iterations, untimed: pin(Host,
//                                 ReadWrite) brings it back and drops the
//                                 disk copy, so every timed evict writes.
//                                 A small second record sits after it in the
//                                 spill file, so the released extent is a hole
//                                 that the next spill reuses (the steady state
//                                 of a pool with many records on disk).
//   spill_tail/none/random/<size> the same with the record alone in the file:
//                                 releasing it truncates the file, so every
//                                 spill writes into fresh page-cache pages.
//   fetch/<codec>/<data>/<size>   pin(Host, Read) of a buffer on disk (timed);
//                                 between iterations, untimed: evict(Disk),
//                                 which is free because a Read pin keeps the
//                                 clean disk copy.
//   raw_pwrite/<size>             pwrite of the same bytes at offset 0 of a
//                                 file in the same directory (overwrites
//                                 pages already in the page cache).
//   raw_pwrite_truncated/<size>   information: the same after ftruncate(0)
//                                 (untimed), which is the pattern the spill
//                                 store sees (a released extent at the end of
//                                 the file is truncated away).
//   raw_pwrite_fdatasync/<size>   information: pwrite + fdatasync, i.e. the
//                                 bytes reach the device.
//   raw_pread/<size>              pread of the whole file, from the page cache.
//   component/...                 information, to account for the gap: the
//                                 library's XXH3 (every record is checksummed
//                                 on write and verified on read), its LZ4 on
//                                 each kind of data (counter stored_per_raw:
//                                 what it compresses to), and the fixed cost
//                                 of one spill and one fetch (4 KiB buffer).
//   limit/memcpy/<size>           the machine's copy bandwidth at that size.
//
//   spill_direct/..., fetch_direct/...   the same with DiskOptions::io =
//                                 Direct (O_DIRECT, which the default Auto
//                                 picks for records of 256 KiB and more),
//                                 each iteration paired with a pwrite / pread
//                                 of the same bytes through an O_DIRECT
//                                 descriptor, timed apart (counter
//                                 raw_bytes_per_second): see PairedRaw.
//   spill_tail_direct/none/random/<size>  information: spill_tail with O_DIRECT
//                                 (the record alone in the file; its release
//                                 leaves a free tail that DiskOptions::
//                                 tail_slack_bytes keeps up to 64 MiB).
//   raw_pwrite_direct/<size>,     information: the raw O_DIRECT operation
//   raw_pread_direct/<size>       alone.
//
// The spill/fetch rows go through the page cache (DiskOptions::io =
// Buffered), as do raw_pwrite/raw_pread; the *_direct rows and their raw
// baselines all bypass it. Each pair is like-for-like.
//
// <codec>: none | lz4 | adaptive (DiskOptions::compression)
// <data>:  random        incompressible (splitmix64 output)
//          compressible  LZ4 stores it in about half the bytes: every 64-byte
//                        segment is 24 random bytes followed by a 40-byte copy
//                        of earlier bytes (within 16 KiB)
//          sparse        ReLU-like float32 activations: each value zero with
//                        probability 1/2, else uniform in (0, 4); registered
//                        with the default codec (adaptive) only
// <size>:  1MiB | 16MiB | 64MiB
//
// Counters: stored_per_raw = bytes written to (spill) or read from (fetch)
// the spill file per logical byte, from PoolStats (about 0.5 when LZ4 was
// used on compressible data, slightly above 1 when stored raw: the 64-byte
// record header).
//
// Directory: the pool's default spill parent ($SPILLWAY_SPILL_DIR, else
// $TMPDIR, else /var/tmp); the raw file is created (and unlinked at once) in
// the same parent, so both hit the same filesystem.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "spillway/spillway.hpp"

namespace {

using spillway::Access;
using spillway::Compression;
using spillway::Tier;

enum class Data { Random, Compressible, Sparse };

const char* data_name(Data d) {
  switch (d) {
    case Data::Random: return "random";
    case Data::Compressible: return "compressible";
    case Data::Sparse: return "sparse";
  }
  return "?";
}
const char* codec_name(Compression c) {
  switch (c) {
    case Compression::None: return "none";
    case Compression::Lz4: return "lz4";
    case Compression::Adaptive: return "adaptive";
  }
  return "?";
}
std::string size_name(std::size_t bytes) { return std::to_string(bytes >> 20) + "MiB"; }

std::uint64_t splitmix64(std::uint64_t& s) {
  std::uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The test bytes, generated once per (kind, size).
const std::vector<unsigned char>& data(Data kind, std::size_t bytes) {
  static std::map<std::pair<int, std::size_t>, std::vector<unsigned char>> cache;
  auto& v = cache[{static_cast<int>(kind), bytes}];
  if (v.size() == bytes) return v;
  v.assign(bytes, 0);
  std::uint64_t seed = 0x5eed0000u + bytes + static_cast<unsigned>(kind);
  if (kind == Data::Random) {
    for (std::size_t i = 0; i + 8 <= bytes; i += 8) {
      const std::uint64_t x = splitmix64(seed);
      std::memcpy(v.data() + i, &x, 8);
    }
    return v;
  }
  if (kind == Data::Sparse) {
    // What a ReLU leaves: half the activations exactly zero, in no pattern.
    for (std::size_t i = 0; i + 4 <= bytes; i += 4) {
      const std::uint64_t x = splitmix64(seed);
      const float f = (x & 1) != 0 ? 0.0f : static_cast<float>(x >> 40) * (4.0f / 16777216.0f);
      std::memcpy(v.data() + i, &f, 4);
    }
    return v;
  }
  // Every 64-byte segment: 24 fresh random bytes, then a 40-byte copy of
  // earlier bytes (at most 16 KiB back). LZ4 stores the literals and a short
  // match token: about half the bytes.
  constexpr std::size_t kSeg = 64, kLit = 24, kMatch = kSeg - kLit, kWindow = 16 << 10;
  for (std::size_t pos = 0; pos + kSeg <= bytes; pos += kSeg) {
    const std::size_t lit = pos == 0 ? kSeg : kLit;  // nothing to copy from yet
    for (std::size_t i = 0; i < lit; i += 8) {
      const std::uint64_t x = splitmix64(seed);
      std::memcpy(v.data() + pos + i, &x, 8);
    }
    if (pos == 0) continue;
    const std::size_t here = pos + kLit;
    const std::size_t back = std::min(here, kWindow);  // >= kMatch
    const std::size_t from = here - kMatch - (splitmix64(seed) % (back - kMatch + 1));
    std::memcpy(v.data() + here, v.data() + from, kMatch);  // from + kMatch <= here
  }
  return v;
}

spillway::PoolOptions spill_options(Compression c, bool direct) {
  spillway::PoolOptions o;
  o.disk.io = direct ? spillway::DiskIo::Direct : spillway::DiskIo::Buffered;
  o.device.backend = spillway::DeviceBackend::None;
  o.host.capacity_bytes = std::size_t{512} << 20;
  o.disk.enabled = true;
  o.disk.compression = c;  // directory: the default ($SPILLWAY_SPILL_DIR, $TMPDIR, /var/tmp)
  o.high_watermark = 1.0;  // no proactive spilling: only the moves we ask for
  o.low_watermark = 0.75;
  return o;
}

// One long-lived pool per codec, as in a real program: its IO workers and
// their scratch buffers (the LZ4 output, up to the record size) persist across
// benchmark runs instead of being faulted in again by every run.
// nullptr (and the reason in `why`) when the pool cannot be made: O_DIRECT
// on a filesystem without it.
spillway::Pool* pool_for(Compression c, bool direct, std::string& why) {
  static std::map<std::pair<Compression, bool>, std::unique_ptr<spillway::Pool>> pools;
  auto& p = pools[{c, direct}];
  if (!p) {
    try {
      p = std::make_unique<spillway::Pool>(spill_options(c, direct));
    } catch (const std::exception& e) {
      why = e.what();
      return nullptr;
    }
  }
  return p.get();
}

spillway::Buffer filled_buffer(spillway::Pool& pool, Data kind, std::size_t bytes) {
  spillway::Buffer b = pool.allocate(bytes, Tier::Host, "spill_bench");
  spillway::Pin p = b.pin(Tier::Host, Access::ReadWrite);
  std::memcpy(p.data(), data(kind, bytes).data(), bytes);
  return b;
}

// A raw O_DIRECT baseline run in the same loop as a spillway row: each
// iteration does the raw operation on the same bytes (timed on its own) and
// spillway's, taking turns at going first. The device's speed drifts by 2-3x within seconds
// on a shared virtual disk (throttling, the host's cache); alternating puts
// both under the same conditions, so their ratio holds even when the
// absolute numbers do not.
class PairedRaw {
 public:
  // The raw operation writes from or reads into a pinned buffer of `pool`
  // (its host arena), not malloc'd memory: on a virtual disk that takes at
  // most 254 memory segments per request, O_DIRECT speed depends on how
  // physically contiguous the pages are, so both sides use the same kind of
  // memory.
  PairedRaw(benchmark::State& state, spillway::Pool& pool, std::size_t bytes, bool write);
  ~PairedRaw();
  bool ok() const { return ok_; }
  void run(benchmark::State& state);  // one raw operation, timed
  // Whether the raw operation goes first this iteration: the two take
  // turns, so neither always runs right after the other.
  bool turn() { return (turns_++ % 2) == 0; }
  void report(benchmark::State& state) const;

 private:
  int fd_ = -1;
  spillway::Buffer sibling_;
  spillway::Pin pin_;  // of sibling_ (declared after it: released first)
  unsigned char* mem_;
  std::size_t bytes_;
  bool write_;
  bool ok_ = false;
  double seconds_ = 0.0;
  std::uint64_t ops_ = 0;
  std::uint64_t turns_ = 0;
};

using BenchClock = std::chrono::steady_clock;
double since(BenchClock::time_point t0) {
  return std::chrono::duration<double>(BenchClock::now() - t0).count();
}

void BM_Spill(benchmark::State& state, Compression codec, Data kind, std::size_t bytes,
              bool at_tail, bool direct) {
  std::string why;
  spillway::Pool* pp = pool_for(codec, direct, why);
  if (pp == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  spillway::Pool& pool = *pp;
  spillway::Buffer b = filled_buffer(pool, kind, bytes);
  for (int warm = 0; warm < 2; ++warm) {  // both IO workers have written a record this size
    b.evict(Tier::Disk);
    spillway::Pin p = b.pin(Tier::Host, Access::ReadWrite);
  }
  spillway::Buffer anchor;
  if (!at_tail) {
    // Put a small record after b's extent, so that releasing b's extent
    // leaves a hole inside the file (reused by the next spill) instead of
    // truncating the file: the steady state of a pool with many records.
    anchor = filled_buffer(pool, Data::Random, 4096);
    b.evict(Tier::Disk);
    anchor.evict(Tier::Disk);
    { spillway::Pin p = b.pin(Tier::Host, Access::ReadWrite); }
  }
  std::unique_ptr<PairedRaw> raw;
  if (direct) {
    raw = std::make_unique<PairedRaw>(state, pool, bytes, true);
    if (!raw->ok()) return;
  }
  const spillway::PoolStats before = pool.stats();
  for (auto _ : state) {
    if (raw) {  // manual time: the spill alone
      const bool raw_first = raw->turn();
      if (raw_first) raw->run(state);
      const auto t0 = BenchClock::now();
      b.evict(Tier::Disk);
      state.SetIterationTime(since(t0));
      if (!raw_first) raw->run(state);
      { spillway::Pin p = b.pin(Tier::Host, Access::ReadWrite); }
      continue;
    }
    b.evict(Tier::Disk);
    state.PauseTiming();
    { spillway::Pin p = b.pin(Tier::Host, Access::ReadWrite); }  // drops the disk copy
    state.ResumeTiming();
  }
  if (raw) raw->report(state);
  const spillway::PoolStats after = pool.stats();
  const auto& m0 = before.move(Tier::Host, Tier::Disk);
  const auto& m1 = after.move(Tier::Host, Tier::Disk);
  const std::uint64_t spills = m1.moves - m0.moves;
  if (spills != static_cast<std::uint64_t>(state.iterations()) || after.clean_evictions != before.clean_evictions) {
    state.SkipWithError("an evict did not write: the disk copy was not invalidated");
    return;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.counters["stored_per_raw"] =
      spills ? static_cast<double>(m1.stored_bytes - m0.stored_bytes) /
                   static_cast<double>(m1.bytes - m0.bytes)
             : 0.0;
}

void BM_Fetch(benchmark::State& state, Compression codec, Data kind, std::size_t bytes,
              bool direct) {
  std::string why;
  spillway::Pool* pp = pool_for(codec, direct, why);
  if (pp == nullptr) {
    state.SkipWithError(why.c_str());
    return;
  }
  spillway::Pool& pool = *pp;
  spillway::Buffer b = filled_buffer(pool, kind, bytes);
  b.evict(Tier::Disk);  // the one write; later evicts find the clean disk copy
  for (int warm = 0; warm < 2; ++warm) {
    spillway::Pin p = b.pin(Tier::Host, Access::Read);
    p.release();
    b.evict(Tier::Disk);
  }
  std::unique_ptr<PairedRaw> raw;
  if (direct) {
    raw = std::make_unique<PairedRaw>(state, pool, bytes, false);
    if (!raw->ok()) return;
  }
  const spillway::PoolStats before = pool.stats();
  for (auto _ : state) {
    if (raw) {  // manual time: the fetch alone
      b.evict(Tier::Disk);
      const bool raw_first = raw->turn();
      if (raw_first) raw->run(state);
      const auto t0 = BenchClock::now();
      spillway::Pin p = b.pin(Tier::Host, Access::Read);
      state.SetIterationTime(since(t0));
      benchmark::DoNotOptimize(p.data());
      if (!raw_first) raw->run(state);
      continue;
    }
    state.PauseTiming();
    b.evict(Tier::Disk);  // drops the host copy; nothing is written
    state.ResumeTiming();
    spillway::Pin p = b.pin(Tier::Host, Access::Read);
    benchmark::DoNotOptimize(p.data());
  }
  if (raw) raw->report(state);
  const spillway::PoolStats after = pool.stats();
  const auto& m0 = before.move(Tier::Disk, Tier::Host);
  const auto& m1 = after.move(Tier::Disk, Tier::Host);
  const std::uint64_t fetches = m1.moves - m0.moves;
  if (fetches != static_cast<std::uint64_t>(state.iterations()) ||
      after.move(Tier::Host, Tier::Disk).moves != before.move(Tier::Host, Tier::Disk).moves) {
    state.SkipWithError("a pin did not fetch from disk, or an evict wrote");
    return;
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
  state.counters["stored_per_raw"] =
      fetches ? static_cast<double>(m1.stored_bytes - m0.stored_bytes) /
                    static_cast<double>(m1.bytes - m0.bytes)
              : 0.0;
}

// ---- raw baselines -----------------------------------------------------------------

// The parent directory the pool puts its private spill directory in.
const std::string& spill_parent() {
  static const std::string parent = [] {
    spillway::Pool probe(spill_options(Compression::None, false));
    std::string dir = probe.spill_directory();
    const auto slash = dir.find_last_of('/');
    return slash == std::string::npos ? std::string(".") : dir.substr(0, slash == 0 ? 1 : slash);
  }();
  return parent;
}

struct RawFile {
  int fd = -1;
  explicit RawFile(benchmark::State& state, bool direct = false) {
    std::string tmpl = spill_parent() + "/spillway-bench-XXXXXX";
    fd = ::mkstemp(tmpl.data());
    if (fd < 0) {
      state.SkipWithError(("mkstemp in " + spill_parent() + ": " + std::strerror(errno)).c_str());
      return;
    }
    ::unlink(tmpl.c_str());
    if (direct && ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_DIRECT) != 0) {
      state.SkipWithError(("O_DIRECT in " + spill_parent() + ": " + std::strerror(errno)).c_str());
      ::close(fd);
      fd = -1;
    }
  }
  ~RawFile() {
    if (fd >= 0) ::close(fd);
  }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;
};

bool write_all(int fd, const unsigned char* p, std::size_t n) {
  off_t off = 0;
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
    off += w;
  }
  return true;
}

bool read_all(int fd, unsigned char* p, std::size_t n) {
  off_t off = 0;
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, off);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
    off += r;
  }
  return true;
}

// A page-aligned copy of the test bytes (or zeros). The pool's blocks are
// page-aligned too; a std::vector's 64 MiB block (malloc + 16) is not, and a
// misaligned destination slows the kernel's copy down markedly on some CPUs,
// which would flatter spillway.
struct AlignedBytes {
  unsigned char* p = nullptr;
  explicit AlignedBytes(std::size_t bytes, const unsigned char* src = nullptr)
      : p(static_cast<unsigned char*>(std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096))) {
    if (p == nullptr) throw std::bad_alloc();
    if (src != nullptr) std::memcpy(p, src, bytes);
    else std::memset(p, 1, bytes);  // faulted in, like the pool's host arena after the first fetch
  }
  ~AlignedBytes() { std::free(p); }
  AlignedBytes(const AlignedBytes&) = delete;
  AlignedBytes& operator=(const AlignedBytes&) = delete;
};

// One long-lived O_DIRECT file per size, like the pools' spill files: a
// file made afresh for every run lands on blocks the filesystem just freed,
// which this machine's virtual disk serves at a third of the speed.
int paired_file(benchmark::State& state, std::size_t bytes) {
  static std::map<std::size_t, std::unique_ptr<RawFile>> files;
  auto& f = files[bytes];
  if (!f) {
    f = std::make_unique<RawFile>(state, true);
    if (f->fd < 0) {
      f.reset();
      return -1;
    }
    const AlignedBytes src(bytes, data(Data::Random, bytes).data());
    if (!write_all(f->fd, src.p, bytes)) {  // the file exists (and can be read back)
      state.SkipWithError("O_DIRECT pwrite failed");
      f.reset();
      return -1;
    }
  }
  return f->fd;
}

PairedRaw::PairedRaw(benchmark::State& state, spillway::Pool& pool, std::size_t bytes, bool write)
    : sibling_(filled_buffer(pool, Data::Random, bytes)),
      pin_(sibling_.pin(Tier::Host, Access::ReadWrite)),
      mem_(static_cast<unsigned char*>(pin_.data())),
      bytes_(bytes),
      write_(write) {
  fd_ = paired_file(state, bytes);
  ok_ = fd_ >= 0;
}

PairedRaw::~PairedRaw() = default;

void PairedRaw::run(benchmark::State& state) {
  const auto t0 = BenchClock::now();
  const bool done = write_ ? write_all(fd_, mem_, bytes_) : read_all(fd_, mem_, bytes_);
  seconds_ += since(t0);
  ++ops_;
  if (!done) state.SkipWithError(write_ ? "raw O_DIRECT pwrite failed" : "raw O_DIRECT pread failed");
}

void PairedRaw::report(benchmark::State& state) const {
  if (seconds_ > 0) {
    state.counters["raw_bytes_per_second"] = static_cast<double>(ops_ * bytes_) / seconds_;
  }
}

enum class RawWrite { Overwrite, Truncated, Fdatasync, Direct };

void BM_RawPwrite(benchmark::State& state, RawWrite mode, std::size_t bytes) {
  RawFile f(state, mode == RawWrite::Direct);
  if (f.fd < 0) return;
  const AlignedBytes src(bytes, data(Data::Random, bytes).data());
  if (!write_all(f.fd, src.p, bytes)) {  // the file exists and its pages are cached
    state.SkipWithError("pwrite failed");
    return;
  }
  for (auto _ : state) {
    if (mode == RawWrite::Truncated) {
      state.PauseTiming();
      if (::ftruncate(f.fd, 0) != 0) state.SkipWithError("ftruncate failed");
      state.ResumeTiming();
    }
    if (!write_all(f.fd, src.p, bytes)) {
      state.SkipWithError("pwrite failed");
      break;
    }
    if (mode == RawWrite::Fdatasync && ::fdatasync(f.fd) != 0) {
      state.SkipWithError("fdatasync failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

void BM_RawPread(benchmark::State& state, std::size_t bytes, bool direct) {
  RawFile f(state, direct);
  if (f.fd < 0) return;
  const AlignedBytes src(bytes, data(Data::Random, bytes).data());
  AlignedBytes dst(bytes);
  if (!write_all(f.fd, src.p, bytes)) {
    state.SkipWithError("pwrite failed");
    return;
  }
  for (auto _ : state) {
    if (!read_all(f.fd, dst.p, bytes)) {
      state.SkipWithError("pread failed");
      break;
    }
    benchmark::DoNotOptimize(dst.p);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

// ---- components (information) ------------------------------------------------------
//
// The library's own XXH3 and LZ4 (looked up at run time in the libraries
// libspillway.so already loaded, so the bench needs no link flags of its
// own and measures exactly the code the spill store runs), and the fixed
// cost of one move (a 4 KiB spill and fetch: the IO worker hand-off).

template <class Fn>
Fn lookup(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_DEFAULT, name));
}

// The spill store hashes with libxxhash's runtime-dispatched XXH3
// (AVX2/AVX-512) where the library exports it (x86_64), else with the plain
// export; the label says which one was measured.
void BM_Xxh3(benchmark::State& state, std::size_t bytes) {
  using Fn = std::uint64_t (*)(const void*, std::size_t);
  const char* name = "XXH3_64bits_dispatch";
  auto xxh3 = lookup<Fn>(name);
  if (xxh3 == nullptr) xxh3 = lookup<Fn>(name = "XXH3_64bits");
  if (xxh3 == nullptr) {
    state.SkipWithError("XXH3_64bits not found in the loaded libraries");
    return;
  }
  state.SetLabel(name);
  const AlignedBytes src(bytes, data(Data::Random, bytes).data());
  for (auto _ : state) benchmark::DoNotOptimize(xxh3(src.p, bytes));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

// LZ4 in 1 MiB chunks, as the spill store does.
void BM_Lz4(benchmark::State& state, bool compress, Data kind, std::size_t bytes) {
  using Codec = int (*)(const char*, char*, int, int);
  using Bound = int (*)(int);
  const auto lz4c = lookup<Codec>("LZ4_compress_default");
  const auto lz4d = lookup<Codec>("LZ4_decompress_safe");
  const auto bound = lookup<Bound>("LZ4_compressBound");
  if (lz4c == nullptr || lz4d == nullptr || bound == nullptr) {
    state.SkipWithError("LZ4 not found in the loaded libraries");
    return;
  }
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  const AlignedBytes src(bytes, data(kind, bytes).data());
  const std::size_t chunks = (bytes + kChunk - 1) / kChunk;
  const auto cap = static_cast<std::size_t>(bound(static_cast<int>(kChunk)));
  AlignedBytes packed(chunks * cap);
  AlignedBytes out(bytes);
  std::vector<int> lens(chunks);
  for (std::size_t c = 0; c < chunks; ++c) {
    const auto in = static_cast<int>(std::min(kChunk, bytes - c * kChunk));
    lens[c] = lz4c(reinterpret_cast<const char*>(src.p + c * kChunk),
                   reinterpret_cast<char*>(packed.p + c * cap), in, static_cast<int>(cap));
  }
  for (auto _ : state) {
    for (std::size_t c = 0; c < chunks; ++c) {
      const auto in = static_cast<int>(std::min(kChunk, bytes - c * kChunk));
      if (compress) {
        benchmark::DoNotOptimize(lz4c(reinterpret_cast<const char*>(src.p + c * kChunk),
                                      reinterpret_cast<char*>(packed.p + c * cap), in,
                                      static_cast<int>(cap)));
      } else {
        benchmark::DoNotOptimize(lz4d(reinterpret_cast<const char*>(packed.p + c * cap),
                                      reinterpret_cast<char*>(out.p + c * kChunk), lens[c], in));
      }
    }
  }
  std::size_t packed_bytes = 0;
  for (int len : lens) packed_bytes += static_cast<std::size_t>(len);
  state.counters["stored_per_raw"] = static_cast<double>(packed_bytes) / static_cast<double>(bytes);
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

// memcpy between two buffers of the size, both faulted in: the machine's
// copy bandwidth at that size (in cache at 1 MiB, memory beyond the L3).
void BM_Memcpy(benchmark::State& state, std::size_t bytes) {
  const AlignedBytes src(bytes, data(Data::Random, bytes).data());
  AlignedBytes dst(bytes);
  for (auto _ : state) {
    std::memcpy(dst.p, src.p, bytes);
    benchmark::DoNotOptimize(dst.p);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes));
}

void register_all() {
  const std::size_t sizes[] = {std::size_t{1} << 20, std::size_t{16} << 20, std::size_t{64} << 20};
  auto tune = [](benchmark::internal::Benchmark* b) {
    b->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(0.2);
  };
  auto tune_direct = [](benchmark::internal::Benchmark* b) {
    b->UseRealTime()->Unit(benchmark::kMicrosecond)->MinTime(0.5);
  };
  auto tune_paired = [](benchmark::internal::Benchmark* b) {
    b->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.5);
  };
  // Calls add(name, codec, data) for each data kind and codec, name being
  // <kind>/<codec>/<data>/<size>.
  auto each_codec = [](const std::string& kind, const std::string& sz, auto&& add) {
    for (Data data : {Data::Random, Data::Compressible}) {
      for (Compression c : {Compression::None, Compression::Lz4, Compression::Adaptive}) {
        add(kind + "/" + codec_name(c) + "/" + data_name(data) + "/" + sz, c, data);
      }
    }
  };
  for (std::size_t bytes : sizes) {
    const std::string sz = size_name(bytes);
    tune(benchmark::RegisterBenchmark(("raw_pwrite/" + sz).c_str(), BM_RawPwrite,
                                      RawWrite::Overwrite, bytes));
    each_codec("spill", sz, [&](const std::string& name, Compression c, Data d) {
      tune(benchmark::RegisterBenchmark(name.c_str(), BM_Spill, c, d, bytes, false, false));
    });
    tune(benchmark::RegisterBenchmark(("spill_tail/none/random/" + sz).c_str(), BM_Spill,
                                      Compression::None, Data::Random, bytes, true, false));
    tune(benchmark::RegisterBenchmark(("raw_pread/" + sz).c_str(), BM_RawPread, bytes, false));
    each_codec("fetch", sz, [&](const std::string& name, Compression c, Data d) {
      tune(benchmark::RegisterBenchmark(name.c_str(), BM_Fetch, c, d, bytes, false));
    });
    // O_DIRECT (DiskIo::Direct; what DiskIo::Auto, the default, picks for
    // records of 256 KiB and more where the filesystem supports it), each
    // iteration paired with a raw O_DIRECT pwrite/pread of the same bytes
    // (counter raw_bytes_per_second; see PairedRaw). The unpaired raw rows
    // are for information: how far the device drifts.
    tune_direct(benchmark::RegisterBenchmark(("raw_pwrite_direct/" + sz).c_str(), BM_RawPwrite,
                                             RawWrite::Direct, bytes));
    each_codec("spill_direct", sz, [&](const std::string& name, Compression c, Data d) {
      tune_paired(benchmark::RegisterBenchmark(name.c_str(), BM_Spill, c, d, bytes, false, true));
    });
    tune_paired(benchmark::RegisterBenchmark(("spill_tail_direct/none/random/" + sz).c_str(), BM_Spill,
                                             Compression::None, Data::Random, bytes, true, true));
    tune_direct(benchmark::RegisterBenchmark(("raw_pread_direct/" + sz).c_str(), BM_RawPread, bytes, true));
    each_codec("fetch_direct", sz, [&](const std::string& name, Compression c, Data d) {
      tune_paired(benchmark::RegisterBenchmark(name.c_str(), BM_Fetch, c, d, bytes, true));
    });
    tune(benchmark::RegisterBenchmark(("raw_pwrite_truncated/" + sz).c_str(), BM_RawPwrite,
                                      RawWrite::Truncated, bytes));
    tune(benchmark::RegisterBenchmark(("raw_pwrite_fdatasync/" + sz).c_str(), BM_RawPwrite,
                                      RawWrite::Fdatasync, bytes));
    tune(benchmark::RegisterBenchmark(("component/xxh3/" + sz).c_str(), BM_Xxh3, bytes));
    tune(benchmark::RegisterBenchmark(("limit/memcpy/" + sz).c_str(), BM_Memcpy, bytes));
    // ReLU-like data, with the default codec only (the disk tier's choice
    // between raw and LZ4 is what is measured).
    const auto sparse = [&](const char* kind) { return std::string(kind) + "/adaptive/sparse/" + sz; };
    tune(benchmark::RegisterBenchmark(sparse("spill").c_str(), BM_Spill, Compression::Adaptive, Data::Sparse,
                                      bytes, false, false));
    tune(benchmark::RegisterBenchmark(sparse("fetch").c_str(), BM_Fetch, Compression::Adaptive, Data::Sparse,
                                      bytes, false));
    tune_paired(benchmark::RegisterBenchmark(sparse("spill_direct").c_str(), BM_Spill, Compression::Adaptive,
                                             Data::Sparse, bytes, false, true));
    tune_paired(benchmark::RegisterBenchmark(sparse("fetch_direct").c_str(), BM_Fetch, Compression::Adaptive,
                                             Data::Sparse, bytes, true));
  }
  const std::size_t mid = std::size_t{16} << 20;
  for (Data d : {Data::Compressible, Data::Sparse, Data::Random}) {
    const std::string name = std::string("/") + data_name(d) + "/16MiB";
    tune(benchmark::RegisterBenchmark(("component/lz4_compress" + name).c_str(), BM_Lz4, true, d, mid));
    tune(benchmark::RegisterBenchmark(("component/lz4_decompress" + name).c_str(), BM_Lz4, false, d, mid));
  }
  tune(benchmark::RegisterBenchmark("component/spill/4KiB", BM_Spill, Compression::None,
                                    Data::Random, std::size_t{4096}, false, false));
  tune(benchmark::RegisterBenchmark("component/fetch/4KiB", BM_Fetch, Compression::None,
                                    Data::Random, std::size_t{4096}, false));
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("spill_parent", spill_parent());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
