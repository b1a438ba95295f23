// tiers/disk/spill_store.cpp — records in the unlinked spill file: encoding
// (raw or LZ4 chunks), checksums, positional IO through the IoEnv seam, and
// the Adaptive choice of codec. See spill_store.hpp for the record layout.
#include "spill_store.hpp"

#include <lz4.h>
#include <xxhash.h>
#if defined(__x86_64__)
// Debian's libxxhash exports runtime-dispatched variants (SSE2/AVX2/AVX-512);
// this header maps XXH3_64bits* onto them, roughly doubling hash speed on
// AVX2 machines over the baseline SSE2 build.
#include <xxh_x86dispatch.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "spillway/errors.hpp"

namespace spillway::detail {

namespace {

constexpr char kMagic[8] = {'S', 'P', 'I', 'L', 'L', 'W', 'Y', '1'};
constexpr std::uint16_t kVersion = 1;
constexpr std::uint32_t kChunkBytes = 1u << 20;
constexpr std::uint32_t kRawChunkFlag = 0x80000000u;
constexpr std::size_t kSampleBytes = 64 * 1024;
// Adaptive stores records below this raw: compression cannot pay off.
constexpr std::size_t kMinCompressBytes = 4096;
// Lz4 compresses every record that could thereby take fewer extents: one
// whose raw form (header included) does not fit in a single extent.
constexpr std::size_t kMinLz4Bytes = kExtentBytes - kRecordHeaderBytes + 1;
// The largest chunk_bytes a header may declare (LZ4 sizes are ints).
constexpr std::uint32_t kMaxChunkBytes = 1u << 30;

using Clock = std::chrono::steady_clock;

template <class T>
void put(unsigned char* p, T v) {
  std::memcpy(p, &v, sizeof v);
}
template <class T>
T get(const unsigned char* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct Header {
  RecordCodec codec;
  std::uint32_t chunk_bytes;
  std::uint64_t buffer_id;
  std::uint64_t raw_size;
  std::uint64_t stored_size;
  std::uint64_t payload_sum;
};

void encode_header(unsigned char* h, const Header& v) {
  std::memset(h, 0, kRecordHeaderBytes);
  std::memcpy(h, kMagic, 8);
  put<std::uint16_t>(h + 8, kVersion);
  h[10] = static_cast<unsigned char>(v.codec);
  put<std::uint32_t>(h + 12, v.chunk_bytes);
  put<std::uint64_t>(h + 16, v.buffer_id);
  put<std::uint64_t>(h + 24, v.raw_size);
  put<std::uint64_t>(h + 32, v.stored_size);
  put<std::uint64_t>(h + 40, v.payload_sum);
  put<std::uint64_t>(h + 56, XXH3_64bits(h, 56));
}

// Raw payloads are written and read in slices of SliceIo::slice_bytes()
// (SliceIo::kSliceBytes for host memory), each hashed just before it is
// written (or just after it is read) while it is still in the CPU's cache.
// 1 MiB measured best on the reference machine (256 KiB slices cost more in
// system calls than they saved in cache misses).
static_assert(kChunkBytes <= SliceIo::kSliceBytes, "LZ4 chunks are asked for as slices");

// A per-thread hashing state, reused across records.
XXH3_state_t* hash_state() {
  struct Holder {
    XXH3_state_t* s = XXH3_createState();
    ~Holder() { XXH3_freeState(s); }
  };
  thread_local Holder holder;
  if (holder.s == nullptr) throw std::bad_alloc();
  return holder.s;
}

// Per-thread scratch space, reused across records.
std::vector<unsigned char>& scratch(std::size_t bytes) {
  thread_local std::vector<unsigned char> buf;
  if (buf.size() < bytes) buf.resize(bytes);
  return buf;
}

std::string default_parent() {
  for (const char* var : {"SPILLWAY_SPILL_DIR", "TMPDIR"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  return "/var/tmp";
}

}  // namespace

SpillStore::SpillStore(const DiskOptions& options)
    : env_(options.env ? options.env : IoEnv::posix()),
      quota_(options.capacity_bytes),
      compression_(options.compression),
      extents_(options.capacity_bytes) {
  const std::string parent = options.directory.empty() ? default_parent() : options.directory;
  directory_ = env_->make_private_dir(parent);
  if (directory_.empty()) {
    throw IoError(errno, parent, 0, "creating a private spill directory in");
  }
  fd_ = env_->open_unlinked_file(directory_);
  if (fd_ < 0) {
    const int err = errno;
    env_->remove_dir(directory_);
    throw IoError(err, directory_, 0, "opening an unlinked spill file in");
  }
  file_name_ = directory_ + "/(unlinked spill file)";
}

SpillStore::~SpillStore() {
  if (fd_ >= 0) env_->close(fd_);
  env_->remove_dir(directory_);
}

std::uint64_t SpillStore::reservation_bytes(std::uint64_t raw_bytes) {
  // round_up saturates (to a size reserve() refuses) rather than wrap.
  if (raw_bytes > ExtentAllocator::kMaxExtentBytes) return ExtentAllocator::round_up(raw_bytes);
  return ExtentAllocator::round_up(kRecordHeaderBytes + raw_bytes);
}

std::optional<SpillExtent> SpillStore::reserve(std::uint64_t raw_bytes) {
  const std::uint64_t bytes = reservation_bytes(raw_bytes);
  detail::MutexLock lk(mu_);
  auto off = extents_.allocate(bytes);
  if (!off) return std::nullopt;
  return SpillExtent{*off, bytes};
}

void SpillStore::write_all(const void* data, std::size_t n, std::uint64_t offset) {
  const auto* p = static_cast<const unsigned char*>(data);
  while (n > 0) {
    const ssize_t w = env_->pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0) throw IoError(errno, file_name_, offset, "write");
    if (w == 0) throw IoError(EIO, file_name_, offset, "write (no progress)");
    p += w;
    n -= static_cast<std::size_t>(w);
    offset += static_cast<std::uint64_t>(w);
  }
}

void SpillStore::read_all(void* data, std::size_t n, std::uint64_t offset) {
  auto* p = static_cast<unsigned char*>(data);
  while (n > 0) {
    const ssize_t r = env_->pread(fd_, p, n, static_cast<off_t>(offset));
    if (r < 0) throw IoError(errno, file_name_, offset, "read");
    if (r == 0) throw IoError(EIO, file_name_, offset, "read (unexpected end of file)");
    p += r;
    n -= static_cast<std::size_t>(r);
    offset += static_cast<std::uint64_t>(r);
  }
}

bool SpillStore::should_compress(const void* data, std::size_t bytes) {
  if (compression_ == Compression::None) return false;
  if (compression_ == Compression::Lz4) return bytes >= kMinLz4Bytes;
  if (bytes < kMinCompressBytes) return false;
  // Adaptive. Per raw byte, writing raw costs 1/disk and compressing costs
  // 1/lz4 + ratio/disk. Even a perfect ratio cannot pay when 1/lz4 alone
  // exceeds 0.9/disk; then skip the sample, except every 32nd record, which
  // re-measures LZ4's speed on current data (it varies with the data).
  const double disk_speed = write_bandwidth_.load(std::memory_order_relaxed);  // bytes/s
  const double known_lz4 = lz4_speed_.load(std::memory_order_relaxed);
  const bool resample = adaptive_records_.fetch_add(1, std::memory_order_relaxed) % 32 == 0;
  if (!resample && known_lz4 > 0 && 1.0 / known_lz4 >= 0.9 / disk_speed) return false;
  // Compress a sample to estimate the ratio and LZ4's speed on this record.
  const std::size_t sample = std::min(bytes, kSampleBytes);
  auto& buf = scratch(static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(sample))));
  const auto t0 = Clock::now();
  const int out = LZ4_compress_default(static_cast<const char*>(data),
                                       reinterpret_cast<char*>(buf.data()),
                                       static_cast<int>(sample), static_cast<int>(buf.size()));
  const double secs = std::max(1e-9, std::chrono::duration<double>(Clock::now() - t0).count());
  if (out <= 0) return false;
  const double ratio = static_cast<double>(out) / static_cast<double>(sample);
  const double lz4_speed = static_cast<double>(sample) / secs;  // bytes/s
  lz4_speed_.store(known_lz4 > 0 ? known_lz4 * 0.7 + lz4_speed * 0.3 : lz4_speed,
                   std::memory_order_relaxed);
  return 1.0 / lz4_speed + ratio / disk_speed < 0.9 / disk_speed;
}

void SpillStore::note_write_bandwidth(std::uint64_t bytes, double seconds) {
  if (bytes < kSampleBytes || seconds <= 0) return;
  const double bw = static_cast<double>(bytes) / seconds;
  double old = write_bandwidth_.load(std::memory_order_relaxed);
  write_bandwidth_.store(old * 0.8 + bw * 0.2, std::memory_order_relaxed);
}

namespace {
// The SliceIo of a record whose bytes are in ordinary host memory: slices
// point straight into it, nothing is copied.
class HostSlices final : public SliceIo {
 public:
  HostSlices(const void* src, void* dst)
      : src_(static_cast<const unsigned char*>(src)), dst_(static_cast<unsigned char*>(dst)) {}
  const void* source(std::size_t offset, std::size_t) override { return src_ + offset; }
  void* target(std::size_t offset, std::size_t) override { return dst_ + offset; }
  const void* whole_source() override { return src_; }
  void* whole_target() override { return dst_; }

 private:
  const unsigned char* src_;
  unsigned char* dst_;
};
}  // namespace

RecordInfo SpillStore::write(SpillExtent& extent, std::uint64_t buffer_id, const void* data,
                             std::size_t bytes) {
  HostSlices io(data, nullptr);
  return write(extent, buffer_id, bytes, io);
}

std::uint64_t SpillStore::read(const SpillExtent& extent, std::uint64_t buffer_id, void* dst,
                               std::size_t bytes) {
  HostSlices io(nullptr, dst);
  return read(extent, buffer_id, bytes, io);
}

RecordInfo SpillStore::write(SpillExtent& extent, std::uint64_t buffer_id, std::size_t bytes,
                             SliceIo& io) {
  if (extent.bytes < reservation_bytes(bytes) || extent.offset % kExtentBytes != 0) {
    throw std::invalid_argument("SpillStore::write: a record of " + std::to_string(bytes) +
                                " bytes needs an extent of " +
                                std::to_string(reservation_bytes(bytes)) + " bytes, got " +
                                std::to_string(extent.bytes) + " at offset " +
                                std::to_string(extent.offset));
  }
  const auto t0 = Clock::now();
  RecordInfo info;
  Header h{RecordCodec::Raw, kChunkBytes, buffer_id, bytes, bytes, 0};
  std::uint64_t payload = bytes;
  bool compressed = false;
  if (compression_ != Compression::None &&
      should_compress(io.source(0, std::min(bytes, kSampleBytes)), bytes)) {
    // [header][u32 len | chunk]...; the header goes in last.
    const std::size_t chunks = (bytes + kChunkBytes - 1) / kChunkBytes;
    const std::size_t bound = kRecordHeaderBytes + chunks * (4 + static_cast<std::size_t>(
                                                                     LZ4_compressBound(kChunkBytes)));
    auto& buf = scratch(bound);
    unsigned char* out = buf.data() + kRecordHeaderBytes;
    std::size_t pos = 0;
    for (std::size_t done = 0; done < bytes; done += kChunkBytes) {
      const int in = static_cast<int>(std::min<std::size_t>(kChunkBytes, bytes - done));
      const int cap = LZ4_compressBound(in);
      const auto* src = static_cast<const char*>(io.source(done, static_cast<std::size_t>(in)));
      const int n = LZ4_compress_default(src, reinterpret_cast<char*>(out + pos + 4), in, cap);
      if (n > 0 && n < in) {
        put<std::uint32_t>(out + pos, static_cast<std::uint32_t>(n));
        pos += 4 + static_cast<std::size_t>(n);
      } else if (done == 0 && bytes > kChunkBytes) {
        break;  // the first chunk does not shrink: store the record raw
      } else {
        put<std::uint32_t>(out + pos, static_cast<std::uint32_t>(in) | kRawChunkFlag);
        std::memcpy(out + pos + 4, src, static_cast<std::size_t>(in));
        pos += 4 + static_cast<std::size_t>(in);
      }
    }
    if (pos > 0 && pos < bytes) {
      compressed = true;
      payload = pos;
      h.codec = RecordCodec::Lz4;
      h.stored_size = pos;
      h.payload_sum = XXH3_64bits(out, pos);
      encode_header(buf.data(), h);
      const auto w0 = Clock::now();
      write_all(buf.data(), kRecordHeaderBytes + pos, extent.offset);
      note_write_bandwidth(kRecordHeaderBytes + pos,
                           std::chrono::duration<double>(Clock::now() - w0).count());
    }
  }
  if (!compressed) {
    // The header (which holds the checksum) goes in last.
    const auto w0 = Clock::now();
    HashWorker::Job job;
    const void* whole = io.whole_source();
    if (whole != nullptr) hasher_.start(job, whole, bytes, bytes);
    if (job) {
      // Large record in host memory: one write while the helper hashes.
      write_all(whole, bytes, extent.offset + kRecordHeaderBytes);
      h.payload_sum = job.digest();
    } else {
      // Hash each slice just before writing it, while it is still in cache.
      XXH3_state_t* state = hash_state();
      XXH3_64bits_reset(state);
      const std::size_t slice = io.slice_bytes();
      for (std::size_t done = 0; done < bytes; done += slice) {
        const std::size_t n = std::min(slice, bytes - done);
        const void* src = io.source(done, n);
        XXH3_64bits_update(state, src, n);
        write_all(src, n, extent.offset + kRecordHeaderBytes + done);
      }
      h.payload_sum = XXH3_64bits_digest(state);
    }
    unsigned char header[kRecordHeaderBytes];
    encode_header(header, h);
    write_all(header, kRecordHeaderBytes, extent.offset);
    note_write_bandwidth(bytes, std::chrono::duration<double>(Clock::now() - w0).count());
  }
  info.codec = h.codec;
  info.stored_bytes = kRecordHeaderBytes + payload;
  {
    detail::MutexLock lk(mu_);
    extent.bytes = extents_.shrink(extent.offset, extent.bytes, kRecordHeaderBytes + payload);
    stored_bytes_ += info.stored_bytes;
    stored_by_offset_[extent.offset] = info.stored_bytes;
  }
  info.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return info;
}

std::uint64_t SpillStore::read(const SpillExtent& extent, std::uint64_t buffer_id,
                               std::size_t bytes, SliceIo& io) {
  unsigned char hb[kRecordHeaderBytes];
  read_all(hb, kRecordHeaderBytes, extent.offset);
  const std::uint64_t off = extent.offset;
  if (std::memcmp(hb, kMagic, 8) != 0) {
    throw CorruptionError(buffer_id, off, "bad record magic", get<std::uint64_t>(reinterpret_cast<const unsigned char*>(kMagic)),
                          get<std::uint64_t>(hb));
  }
  const std::uint64_t header_sum = XXH3_64bits(hb, 56);
  if (header_sum != get<std::uint64_t>(hb + 56)) {
    throw CorruptionError(buffer_id, off, "header checksum mismatch", get<std::uint64_t>(hb + 56),
                          header_sum);
  }
  if (get<std::uint16_t>(hb + 8) != kVersion) {
    throw CorruptionError(buffer_id, off, "unknown record version", kVersion, get<std::uint16_t>(hb + 8));
  }
  const auto codec = static_cast<RecordCodec>(hb[10]);
  const std::uint32_t chunk_bytes = get<std::uint32_t>(hb + 12);
  const std::uint64_t id = get<std::uint64_t>(hb + 16);
  const std::uint64_t raw = get<std::uint64_t>(hb + 24);
  const std::uint64_t stored = get<std::uint64_t>(hb + 32);
  const std::uint64_t payload_sum = get<std::uint64_t>(hb + 40);
  if (id != buffer_id) throw CorruptionError(buffer_id, off, "record belongs to another buffer", buffer_id, id);
  if (raw != bytes) throw CorruptionError(buffer_id, off, "raw size differs", bytes, raw);
  if (extent.bytes < kRecordHeaderBytes || stored > extent.bytes - kRecordHeaderBytes) {
    throw CorruptionError(buffer_id, off, "stored size exceeds the extent",
                          extent.bytes > kRecordHeaderBytes ? extent.bytes - kRecordHeaderBytes : 0,
                          stored);
  }
  if (codec == RecordCodec::Raw) {
    if (stored != raw) throw CorruptionError(buffer_id, off, "raw record size differs", raw, stored);
    // Slice by slice: each slice is hashed as soon as it has been read,
    // while it is still in cache — by this thread, or, for a large record
    // in host memory, by the helper while this thread reads the next one.
    HashWorker::Job job;
    if (void* whole = io.whole_target(); whole != nullptr) hasher_.start(job, whole, bytes, 0);
    XXH3_state_t* state = hash_state();
    XXH3_64bits_reset(state);
    const std::size_t slice = io.slice_bytes();
    for (std::size_t done = 0; done < bytes; done += slice) {
      const std::size_t n = std::min(slice, bytes - done);
      void* into = io.target(done, n);
      read_all(into, n, off + kRecordHeaderBytes + done);
      if (job) job.ready(done + n);
      else XXH3_64bits_update(state, into, n);
      io.deliver(done, n);
    }
    const std::uint64_t sum = job ? job.digest() : XXH3_64bits_digest(state);
    if (sum != payload_sum) throw CorruptionError(buffer_id, off, "payload checksum mismatch", payload_sum, sum);
    return kRecordHeaderBytes + stored;
  }
  if (codec != RecordCodec::Lz4) {
    throw CorruptionError(buffer_id, off, "unknown codec", 1, static_cast<std::uint64_t>(codec));
  }
  if (chunk_bytes == 0 || chunk_bytes > kMaxChunkBytes) {
    throw CorruptionError(buffer_id, off, "chunk size out of range", kChunkBytes, chunk_bytes);
  }
  auto& buf = scratch(stored);
  read_all(buf.data(), stored, off + kRecordHeaderBytes);
  const std::uint64_t sum = XXH3_64bits(buf.data(), stored);
  if (sum != payload_sum) throw CorruptionError(buffer_id, off, "payload checksum mismatch", payload_sum, sum);
  std::size_t pos = 0, done = 0;
  while (done < bytes) {
    const std::size_t want = std::min<std::size_t>(chunk_bytes, bytes - done);
    if (pos + 4 > stored) throw CorruptionError(buffer_id, off, "truncated chunk list", stored, pos);
    const std::uint32_t word = get<std::uint32_t>(buf.data() + pos);
    const std::size_t len = word & ~kRawChunkFlag;
    pos += 4;
    if (pos + len > stored) throw CorruptionError(buffer_id, off, "chunk overruns the record", stored, pos + len);
    auto* out = static_cast<char*>(io.target(done, want));
    if ((word & kRawChunkFlag) != 0) {
      if (len != want) throw CorruptionError(buffer_id, off, "raw chunk size differs", want, len);
      std::memcpy(out, buf.data() + pos, len);
    } else {
      const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(buf.data() + pos), out,
                                        static_cast<int>(len), static_cast<int>(want));
      if (n != static_cast<int>(want)) {
        throw CorruptionError(buffer_id, off, "LZ4 chunk does not decode", want, static_cast<std::uint64_t>(n < 0 ? 0 : n));
      }
    }
    io.deliver(done, want);
    pos += len;
    done += want;
  }
  if (pos != stored) throw CorruptionError(buffer_id, off, "bytes after the last chunk", stored, pos);
  return kRecordHeaderBytes + stored;
}

void SpillStore::release(const SpillExtent& extent) {
  detail::MutexLock lk(mu_);
  const std::uint64_t old_end = extents_.file_end();
  extents_.free(extent.offset, extent.bytes);
  if (auto it = stored_by_offset_.find(extent.offset); it != stored_by_offset_.end()) {
    stored_bytes_ -= it->second;
    stored_by_offset_.erase(it);
  }
  const std::uint64_t new_end = extents_.file_end();
  // Give the free tail back to the filesystem. Under the lock, so that no
  // extent allocated past new_end can be written before the truncation. A
  // failed truncation only leaves the file longer than needed.
  if (new_end < old_end) (void)env_->ftruncate(fd_, static_cast<off_t>(new_end));
}

SpillStoreStats SpillStore::stats() const {
  detail::MutexLock lk(mu_);
  const ExtentAllocatorStats e = extents_.stats();
  SpillStoreStats s;
  s.capacity_bytes = quota_;
  s.used_bytes = e.used_bytes;
  s.stored_bytes = stored_bytes_;
  s.file_bytes = e.file_bytes;
  s.largest_free_bytes = e.largest_free_bytes;
  s.fragmentation = e.fragmentation;
  s.records = stored_by_offset_.size();
  return s;
}

}  // namespace spillway::detail
