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
#include <functional>
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

constexpr std::uint8_t kFlagDirect = 1;  // header block of its own, payload at +4096
constexpr std::uint8_t kFlagSumInMemory = 2;  // payload checksum in SpillExtent, not the header

using Header = RecordHeader;

// O_DIRECT writes of a record this large hash on the helper thread
// (HashWorker) beside the IO: the device write dwarfs the wake-up, unlike
// page-cache copies (HashWorker::kMinBytes).
constexpr std::size_t kDirectHashMinBytes = std::size_t{1} << 20;

// Drops the first n bytes of the ranges iov[0..count).
void consume(struct iovec*& iov, int& count, std::size_t n) {
  while (count > 0 && n >= iov->iov_len) {
    n -= iov->iov_len;
    ++iov;
    --count;
  }
  if (n > 0) {
    iov->iov_base = static_cast<char*>(iov->iov_base) + n;
    iov->iov_len -= n;
  }
}

constexpr std::size_t align_up(std::size_t n) { return (n + kDirectAlign - 1) & ~(kDirectAlign - 1); }
bool aligned(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % kDirectAlign == 0; }

void encode_header(unsigned char* h, const Header& v) {
  std::memset(h, 0, kRecordHeaderBytes);
  std::memcpy(h, kMagic, 8);
  put<std::uint16_t>(h + 8, kVersion);
  h[10] = static_cast<unsigned char>(v.codec);
  h[11] = v.flags;
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

// Per-thread memory reused across records, 4 KiB aligned (O_DIRECT can use it).
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer() { std::free(p_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  unsigned char* get(std::size_t bytes) {
    if (cap_ < bytes) {
      const std::size_t n = align_up(bytes);
      auto* p = static_cast<unsigned char*>(std::aligned_alloc(kDirectAlign, n));
      if (p == nullptr) throw std::bad_alloc();
      std::free(p_);
      p_ = p;
      cap_ = n;
    }
    return p_;
  }

 private:
  unsigned char* p_ = nullptr;
  std::size_t cap_ = 0;
};

// Encoded records (LZ4) and samples.
unsigned char* scratch(std::size_t bytes) {
  thread_local AlignedBuffer buf;
  return buf.get(bytes);
}
// Slices of raw records on their way to or from O_DIRECT.
unsigned char* bounce(std::size_t bytes) {
  thread_local AlignedBuffer buf;
  return buf.get(bytes);
}
// A direct record's header block and its last, partial payload block.
unsigned char* edge_blocks() {
  thread_local AlignedBuffer buf;
  return buf.get(2 * kDirectAlign);
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
      tail_slack_(std::min(options.tail_slack_bytes, options.capacity_bytes / 4)),
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
  io_mode_ = options.io;
  if (io_mode_ != DiskIo::Buffered) {
    direct_fd_ = env_->reopen_direct(fd_);
    if (direct_fd_ < 0 && io_mode_ == DiskIo::Direct) {
      const int err = errno;
      env_->close(fd_);
      env_->remove_dir(directory_);
      throw IoError(err, directory_, 0,
                    "opening the spill file with O_DIRECT (disk.io = direct; use auto or "
                    "buffered on this filesystem) in");
    }
  }
}

SpillStore::~SpillStore() {
  if (direct_fd_ >= 0) env_->close(direct_fd_);
  if (fd_ >= 0) env_->close(fd_);
  env_->remove_dir(directory_);
}

std::uint64_t SpillStore::reservation_bytes(std::uint64_t raw_bytes) {
  // round_up saturates (to a size reserve() refuses) rather than wrap.
  if (raw_bytes > ExtentAllocator::kMaxExtentBytes) return ExtentAllocator::round_up(raw_bytes);
  return ExtentAllocator::round_up(kRecordHeaderBytes + raw_bytes);
}

bool SpillStore::direct_eligible(std::uint64_t raw_bytes) const {
  return raw_bytes >= kDirectIoMinBytes && direct_io();
}

std::uint64_t SpillStore::reservation_for(std::uint64_t raw_bytes) const {
  return record_span(raw_bytes, direct_io());
}

std::uint64_t SpillStore::record_span(std::uint64_t raw_bytes, bool direct) {
  if (direct && raw_bytes >= kDirectIoMinBytes && raw_bytes <= ExtentAllocator::kMaxExtentBytes - kExtentBytes) {
    return kExtentBytes + ExtentAllocator::round_up(raw_bytes);
  }
  return reservation_bytes(raw_bytes);
}

std::optional<SpillExtent> SpillStore::reserve(std::uint64_t raw_bytes) {
  const std::uint64_t bytes = reservation_for(raw_bytes);
  detail::MutexLock lk(mu_);
  auto off = extents_.allocate(bytes);
  if (!off) return std::nullopt;
  return SpillExtent{*off, bytes};
}

void SpillStore::write_all(const void* data, std::size_t n, std::uint64_t offset) {
  struct iovec v{const_cast<void*>(data), n};
  transfer(true, false, &v, 1, offset);
}

void SpillStore::read_all(void* data, std::size_t n, std::uint64_t offset) {
  struct iovec v{data, n};
  transfer(false, false, &v, 1, offset);
}

void SpillStore::transfer(bool write, bool direct, struct iovec* iov, int count,
                          std::uint64_t offset) {
  const char* what = write ? "write" : "read";
  if (direct_fd_ < 0) direct = false;  // a direct-layout record, but no O_DIRECT descriptor
  auto skip_empty = [&] {
    while (count > 0 && iov->iov_len == 0) {
      ++iov;
      --count;
    }
  };
  skip_empty();
  while (count > 0) {
    const int fd = direct ? direct_fd_ : fd_;
    const ssize_t r = write ? env_->pwritev(fd, iov, count, static_cast<off_t>(offset))
                            : env_->preadv(fd, iov, count, static_cast<off_t>(offset));
    if (r < 0) {
      const int err = errno;
      if (direct && err == EINVAL) {
        // The filesystem accepted O_DIRECT at open but refuses this transfer
        // (an alignment it wants larger than 4 KiB, say): the same bytes go
        // through the page cache instead, and in Auto mode later records
        // use the buffered layout.
        if (write && io_mode_ == DiskIo::Auto) direct_ok_.store(false, std::memory_order_relaxed);
        direct = false;
        continue;
      }
      throw IoError(err, file_name_, offset, what);
    }
    if (r == 0) {
      throw IoError(EIO, file_name_, offset,
                    write ? "write (no progress)" : "read (unexpected end of file)");
    }
    offset += static_cast<std::uint64_t>(r);
    consume(iov, count, static_cast<std::size_t>(r));
    skip_empty();
    // A short transfer that leaves the rest unaligned finishes buffered.
    if (direct && count > 0 &&
        (offset % kDirectAlign != 0 || !aligned(iov->iov_base) || iov->iov_len % kDirectAlign != 0)) {
      direct = false;
    }
  }
}

bool SpillStore::write_during(struct iovec* iov, int count, std::uint64_t offset,
                              const std::function<void()>& meanwhile) {
  if (direct_fd_ < 0) return false;
  const ssize_t r = env_->pwritev_during(direct_fd_, iov, count, static_cast<off_t>(offset), meanwhile);
  if (r < 0) {
    const int err = errno;
    if (err == ENOSYS) return false;  // nothing ran: the caller goes another way
    if (err != EINVAL) throw IoError(err, file_name_, offset, "write");
    transfer(true, true, iov, count, offset);  // refused: transfer() goes through the page cache
    return true;
  }
  if (r == 0) throw IoError(EIO, file_name_, offset, "write (no progress)");
  consume(iov, count, static_cast<std::size_t>(r));
  if (count > 0) {  // short: the rest as transfer() would
    const std::uint64_t at = offset + static_cast<std::uint64_t>(r);
    transfer(true, at % kDirectAlign == 0 && aligned(iov->iov_base), iov, count, at);
  }
  return true;
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
  const auto cap = static_cast<std::size_t>(LZ4_compressBound(static_cast<int>(sample)));
  unsigned char* buf = scratch(cap);
  const auto t0 = Clock::now();
  const int out = LZ4_compress_default(static_cast<const char*>(data), reinterpret_cast<char*>(buf),
                                       static_cast<int>(sample), static_cast<int>(cap));
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
  extent.sum_in_memory = false;
  extent.payload_sum = 0;
  // The direct layout needs its header block on top of the payload's whole
  // blocks; an extent reserved before O_DIRECT was given up is big enough.
  const bool direct = direct_eligible(bytes) &&
                      extent.bytes >= kExtentBytes + ExtentAllocator::round_up(bytes);
  const std::size_t head = direct ? kDirectAlign : kRecordHeaderBytes;
  RecordInfo info;
  Header h{RecordCodec::Raw, kChunkBytes, buffer_id, bytes, bytes, 0,
           direct ? kFlagDirect : std::uint8_t{0}};
  std::uint64_t written = 0;  // bytes of the file the record occupies
  if (compression_ != Compression::None &&
      should_compress(io.source(0, std::min(bytes, kSampleBytes)), bytes)) {
    // [header (block)][u32 len | chunk]...[zero padding to a block when
    // direct]; the header is filled in last.
    const std::size_t chunks = (bytes + kChunkBytes - 1) / kChunkBytes;
    const std::size_t bound =
        head + chunks * (4 + static_cast<std::size_t>(LZ4_compressBound(kChunkBytes))) + kDirectAlign;
    unsigned char* buf = scratch(bound);
    unsigned char* out = buf + head;
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
        pos = 0;
        break;  // the first chunk does not shrink: store the record raw
      } else {
        put<std::uint32_t>(out + pos, static_cast<std::uint32_t>(in) | kRawChunkFlag);
        std::memcpy(out + pos + 4, src, static_cast<std::size_t>(in));
        pos += 4 + static_cast<std::size_t>(in);
      }
    }
    if (pos > 0 && pos < bytes) {
      h.codec = RecordCodec::Lz4;
      h.stored_size = pos;
      h.payload_sum = XXH3_64bits(out, pos);
      encode_header(buf, h);
      written = head + pos;
      if (direct) {
        std::memset(buf + kRecordHeaderBytes, 0, head - kRecordHeaderBytes);
        written = head + align_up(pos);
        std::memset(out + pos, 0, written - head - pos);
      }
      const auto w0 = Clock::now();
      struct iovec v{buf, static_cast<std::size_t>(written)};
      transfer(true, direct, &v, 1, extent.offset);
      note_write_bandwidth(written, std::chrono::duration<double>(Clock::now() - w0).count());
    }
  }
  if (h.codec == RecordCodec::Raw && direct) {
    const auto w0 = Clock::now();
    write_direct_raw(extent, h, bytes, io);
    written = head + align_up(bytes);
    note_write_bandwidth(written, std::chrono::duration<double>(Clock::now() - w0).count());
  } else if (h.codec == RecordCodec::Raw) {
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
      h.payload_sum = write_slices(io, bytes, extent.offset + kRecordHeaderBytes, false);
    }
    unsigned char header[kRecordHeaderBytes];
    encode_header(header, h);
    write_all(header, kRecordHeaderBytes, extent.offset);
    written = kRecordHeaderBytes + bytes;
    note_write_bandwidth(bytes, std::chrono::duration<double>(Clock::now() - w0).count());
  }
  info.codec = h.codec;
  info.stored_bytes = written;
  {
    detail::MutexLock lk(mu_);
    extent.bytes = extents_.shrink(extent.offset, extent.bytes, written);
    extent.direct = direct;
    file_length_ = std::max(file_length_, extent.offset + extent.bytes);
    stored_bytes_ += info.stored_bytes;
    stored_by_offset_[extent.offset] = info.stored_bytes;
  }
  info.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return info;
}

// A raw record in the direct layout (header block, payload, zero-padded last
// block). From 4 KiB-aligned host memory the payload's whole blocks go
// straight to the file: with a write kept in flight (write_during), header
// block and payload in one write while this thread hashes the payload,
// the checksum kept in memory; else, with the helper hashing, the back part
// of the payload first, then the header block and the front part together
// (adjacent in the file), once the checksum is known; hashing inline, the
// checksum first and then everything in one call. Other memory goes slice
// by slice through a bounce buffer, the header block last.
void SpillStore::write_direct_raw(SpillExtent& extent, RecordHeader& h, std::size_t bytes,
                                  SliceIo& io) {
  const std::uint64_t base = extent.offset + kDirectAlign;
  unsigned char* block = edge_blocks();  // [header block][last payload block]
  unsigned char* last = block + kDirectAlign;
  std::memset(block, 0, kDirectAlign);
  const void* whole = io.whole_source();
  if (whole != nullptr && aligned(whole)) {
    const auto* src = static_cast<const unsigned char*>(whole);
    const std::size_t body = bytes & ~(kDirectAlign - 1);
    const std::size_t tail = bytes - body;
    if (tail > 0) {
      std::memcpy(last, src + body, tail);
      std::memset(last + tail, 0, kDirectAlign - tail);
    }
    const std::size_t last_len = tail > 0 ? kDirectAlign : 0;
    auto* body_ptr = const_cast<unsigned char*>(src);
    // Where the environment keeps a write in flight (PosixEnv: io_uring):
    // header block and payload go out in one write while this thread
    // hashes the payload, and the checksum stays in memory (flags bit 1).
    // A checksum in the header would have to be known before the header is
    // written: hashing first, or writing the header in a request of its own
    // (which the device serves after the payload), each cost a 1 MiB record
    // about a quarter of its write time on the reference machine.
    RecordHeader in_memory = h;
    in_memory.flags |= kFlagSumInMemory;
    in_memory.payload_sum = 0;
    encode_header(block, in_memory);
    std::uint64_t sum = 0;
    struct iovec one[3] = {{block, kDirectAlign}, {body_ptr, body}, {last, last_len}};
    if (write_during(one, 3, extent.offset, [&] { sum = XXH3_64bits(whole, bytes); })) {
      overlapped_writes_.fetch_add(1, std::memory_order_relaxed);
      extent.payload_sum = sum;
      extent.sum_in_memory = true;
      return;
    }
    // Nothing was written (write_during ran nothing): the header block is
    // encoded again below, with the checksum in it.
    HashWorker::Job job;
    hasher_.start(job, whole, bytes, bytes, kDirectHashMinBytes);
    if (job) {
      const std::size_t front = (body / 2) & ~(kDirectAlign - 1);
      struct iovec back[2] = {{body_ptr + front, body - front}, {last, last_len}};
      transfer(true, true, back, 2, base + front);
      h.payload_sum = job.digest();
      encode_header(block, h);
      struct iovec head_front[2] = {{block, kDirectAlign}, {body_ptr, front}};
      transfer(true, true, head_front, 2, extent.offset);
      return;
    }
    h.payload_sum = XXH3_64bits(whole, bytes);
    encode_header(block, h);
    transfer(true, true, one, 3, extent.offset);
    return;
  }
  h.payload_sum = write_slices(io, bytes, base, true);
  encode_header(block, h);
  struct iovec v{block, kDirectAlign};
  transfer(true, true, &v, 1, extent.offset);
}

// A raw payload slice by slice from `io` at file offset `base`, each slice
// hashed just before it is written, while it is still in cache; returns the
// payload's checksum. Direct: through O_DIRECT, a slice that is not whole
// aligned blocks by way of the bounce buffer (zero-padded).
std::uint64_t SpillStore::write_slices(SliceIo& io, std::size_t bytes, std::uint64_t base,
                                       bool direct) {
  XXH3_state_t* state = hash_state();
  XXH3_64bits_reset(state);
  const std::size_t slice = io.slice_bytes();
  for (std::size_t done = 0; done < bytes; done += slice) {
    const std::size_t n = std::min(slice, bytes - done);
    const void* src = io.source(done, n);
    XXH3_64bits_update(state, src, n);
    struct iovec v{const_cast<void*>(src), n};
    if (direct && (!aligned(src) || n % kDirectAlign != 0)) {
      unsigned char* b = bounce(align_up(n));
      std::memcpy(b, src, n);
      std::memset(b + n, 0, align_up(n) - n);
      v = {b, align_up(n)};
    }
    transfer(true, direct, &v, 1, base + done);
  }
  return XXH3_64bits_digest(state);
}

// Checks a record's header against what the caller expects of it; returns
// its fields. Throws CorruptionError naming the first mismatch.
RecordHeader SpillStore::check_header(const unsigned char* hb, const SpillExtent& extent,
                                std::uint64_t buffer_id, std::size_t bytes) const {
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
  Header h{static_cast<RecordCodec>(hb[10]), get<std::uint32_t>(hb + 12), get<std::uint64_t>(hb + 16),
           get<std::uint64_t>(hb + 24), get<std::uint64_t>(hb + 32), get<std::uint64_t>(hb + 40),
           hb[11]};
  const std::uint8_t want_flags =
      extent.direct ? static_cast<std::uint8_t>(kFlagDirect | (extent.sum_in_memory ? kFlagSumInMemory : 0)) : 0;
  if (h.flags != want_flags) throw CorruptionError(buffer_id, off, "record layout flags differ", want_flags, h.flags);
  if ((h.flags & kFlagSumInMemory) != 0 && h.codec != RecordCodec::Raw) {
    throw CorruptionError(buffer_id, off, "checksum in memory but the record is not raw", 0,
                          static_cast<std::uint64_t>(h.codec));
  }
  if (h.buffer_id != buffer_id) throw CorruptionError(buffer_id, off, "record belongs to another buffer", buffer_id, h.buffer_id);
  if (h.raw_size != bytes) throw CorruptionError(buffer_id, off, "raw size differs", bytes, h.raw_size);
  const std::uint64_t head = extent.direct ? kDirectAlign : kRecordHeaderBytes;
  if (extent.bytes < head || h.stored_size > extent.bytes - head) {
    throw CorruptionError(buffer_id, off, "stored size exceeds the extent",
                          extent.bytes > head ? extent.bytes - head : 0, h.stored_size);
  }
  if (h.codec == RecordCodec::Raw) {
    if (h.stored_size != h.raw_size) throw CorruptionError(buffer_id, off, "raw record size differs", h.raw_size, h.stored_size);
  } else if (h.codec == RecordCodec::Lz4) {
    if (h.chunk_bytes == 0 || h.chunk_bytes > kMaxChunkBytes) {
      throw CorruptionError(buffer_id, off, "chunk size out of range", kChunkBytes, h.chunk_bytes);
    }
  } else {
    throw CorruptionError(buffer_id, off, "unknown codec", 1, static_cast<std::uint64_t>(h.codec));
  }
  return h;
}

std::uint64_t SpillStore::read(const SpillExtent& extent, std::uint64_t buffer_id,
                               std::size_t bytes, SliceIo& io) {
  const std::uint64_t off = extent.offset;
  if (extent.direct) {
    // A raw record fills its extent exactly. Then, into aligned host memory,
    // header block, payload and last block in one read, guessing it is raw
    // (the header says whether it was); elsewhere the header block first,
    // then the payload slice by slice.
    const bool looks_raw = extent.bytes == kDirectAlign + ExtentAllocator::round_up(bytes);
    void* whole = io.whole_target();
    if (looks_raw && whole != nullptr && aligned(whole)) {
      if (read_direct_whole(extent, buffer_id, bytes, static_cast<unsigned char*>(whole))) {
        io.deliver(0, bytes);
        return extent.bytes;
      }
    } else if (looks_raw) {
      unsigned char* blocks = edge_blocks();
      struct iovec v{blocks, kDirectAlign};
      transfer(false, true, &v, 1, off);
      const Header h = check_header(blocks, extent, buffer_id, bytes);
      if (h.codec == RecordCodec::Raw) return read_direct_raw(extent, buffer_id, bytes, io, h);
    }
    // An LZ4 record: the whole extent, then decode.
    unsigned char* buf = scratch(extent.bytes);
    struct iovec v{buf, static_cast<std::size_t>(extent.bytes)};
    transfer(false, true, &v, 1, off);
    const Header h = check_header(buf, extent, buffer_id, bytes);
    if (h.codec != RecordCodec::Lz4) {
      throw CorruptionError(buffer_id, off, "raw record in an extent of another size",
                            kDirectAlign + ExtentAllocator::round_up(bytes), extent.bytes);
    }
    decode_lz4(buf + kDirectAlign, h, off, bytes, io);
    return extent.bytes;
  }
  unsigned char hb[kRecordHeaderBytes];
  read_all(hb, kRecordHeaderBytes, off);
  const Header h = check_header(hb, extent, buffer_id, bytes);
  if (h.codec == RecordCodec::Raw) {
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
    if (sum != h.payload_sum) throw CorruptionError(buffer_id, off, "payload checksum mismatch", h.payload_sum, sum);
    return kRecordHeaderBytes + h.stored_size;
  }
  unsigned char* buf = scratch(h.stored_size);
  read_all(buf, h.stored_size, off + kRecordHeaderBytes);
  decode_lz4(buf, h, off, bytes, io);
  return kRecordHeaderBytes + h.stored_size;
}

// A direct record into 4 KiB-aligned host memory, guessing it is raw: the
// header block and the payload's first piece in one read, then the rest piece by piece while the helper hashes
// what has arrived (inline, in one read, when the helper is busy or the
// record small). False, having read only the header block and the first
// piece, when the header says the record is not raw.
bool SpillStore::read_direct_whole(const SpillExtent& extent, std::uint64_t buffer_id,
                                   std::size_t bytes, unsigned char* dst) {
  const std::uint64_t off = extent.offset;
  const std::size_t body = bytes & ~(kDirectAlign - 1);
  const std::size_t tail = bytes - body;
  unsigned char* blocks = edge_blocks();
  unsigned char* last = blocks + kDirectAlign;
  const std::size_t last_len = tail > 0 ? kDirectAlign : 0;
  // Pieces: the helper lags one piece behind the reads, so the last piece's
  // hash is what remains after the IO; but each piece also drains the
  // device's queue before the next is issued, and a read under 8 MiB no
  // longer keeps the device busy. Measured on the reference machine: 8 MiB
  // pieces from 16 MiB on (16 MiB: 6.1 ms against 6.7 in one read); smaller
  // records in one read with the hash after it (two 2 MiB pieces of a 4 MiB
  // record gained nothing, 1 MiB pieces halved the out-of-core sweep's
  // fetch speed).
  constexpr std::size_t kPieceBytes = std::size_t{8} << 20;
  HashWorker::Job job;
  hasher_.start(job, dst, bytes, 0, 2 * kPieceBytes);
  const std::size_t piece = !job ? body : kPieceBytes;
  std::size_t done = std::min(body, piece);
  struct iovec v[3] = {{blocks, kDirectAlign}, {dst, done}, {last, done == body ? last_len : 0}};
  transfer(false, true, v, 3, off);
  const Header h = check_header(blocks, extent, buffer_id, bytes);
  if (h.codec != RecordCodec::Raw) return false;
  const std::uint64_t want = (h.flags & kFlagSumInMemory) != 0 ? extent.payload_sum : h.payload_sum;
  if (job) job.ready(done);
  while (done < body) {
    const std::size_t n = std::min(piece, body - done);
    const bool final_piece = done + n == body;
    struct iovec w[2] = {{dst + done, n}, {last, final_piece ? last_len : 0}};
    transfer(false, true, w, 2, off + kDirectAlign + done);
    done += n;
    if (job && !final_piece) job.ready(done);
  }
  std::memcpy(dst + body, last, tail);
  std::uint64_t sum;
  if (job) {
    job.ready(bytes);
    sum = job.digest();
  } else {
    sum = XXH3_64bits(dst, bytes);
  }
  if (sum != want) throw CorruptionError(buffer_id, off, "payload checksum mismatch", want, sum);
  return true;
}

// The payload of a raw direct record whose header block was read and
// checked: slice by slice, straight into the target where it is aligned.
std::uint64_t SpillStore::read_direct_raw(const SpillExtent& extent, std::uint64_t buffer_id,
                                          std::size_t bytes, SliceIo& io, const Header& h) {
  const std::uint64_t base = extent.offset + kDirectAlign;
  XXH3_state_t* state = hash_state();
  XXH3_64bits_reset(state);
  const std::size_t slice = io.slice_bytes();
  for (std::size_t done = 0; done < bytes; done += slice) {
    const std::size_t n = std::min(slice, bytes - done);
    void* into = io.target(done, n);
    if (aligned(into) && n % kDirectAlign == 0) {
      struct iovec v{into, n};
      transfer(false, true, &v, 1, base + done);
    } else {
      unsigned char* b = bounce(align_up(n));
      struct iovec v{b, align_up(n)};
      transfer(false, true, &v, 1, base + done);
      std::memcpy(into, b, n);
    }
    XXH3_64bits_update(state, into, n);
    io.deliver(done, n);
  }
  const std::uint64_t sum = XXH3_64bits_digest(state);
  const std::uint64_t want = (h.flags & kFlagSumInMemory) != 0 ? extent.payload_sum : h.payload_sum;
  if (sum != want) throw CorruptionError(buffer_id, extent.offset, "payload checksum mismatch", want, sum);
  return extent.bytes;
}

// Verifies an LZ4 record's payload (in memory) and decodes it into `io`.
void SpillStore::decode_lz4(const unsigned char* payload, const Header& h, std::uint64_t off,
                            std::size_t bytes, SliceIo& io) {
  const std::uint64_t buffer_id = h.buffer_id;
  const std::uint64_t stored = h.stored_size;
  const std::uint64_t sum = XXH3_64bits(payload, stored);
  if (sum != h.payload_sum) throw CorruptionError(buffer_id, off, "payload checksum mismatch", h.payload_sum, sum);
  std::size_t pos = 0, done = 0;
  while (done < bytes) {
    const std::size_t want = std::min<std::size_t>(h.chunk_bytes, bytes - done);
    if (pos + 4 > stored) throw CorruptionError(buffer_id, off, "truncated chunk list", stored, pos);
    const std::uint32_t word = get<std::uint32_t>(payload + pos);
    const std::size_t len = word & ~kRawChunkFlag;
    pos += 4;
    if (pos + len > stored) throw CorruptionError(buffer_id, off, "chunk overruns the record", stored, pos + len);
    auto* out = static_cast<char*>(io.target(done, want));
    if ((word & kRawChunkFlag) != 0) {
      if (len != want) throw CorruptionError(buffer_id, off, "raw chunk size differs", want, len);
      std::memcpy(out, payload + pos, len);
    } else {
      const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(payload + pos), out,
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
}

void SpillStore::release(const SpillExtent& extent) {
  detail::MutexLock lk(mu_);
  extents_.free(extent.offset, extent.bytes);
  if (auto it = stored_by_offset_.find(extent.offset); it != stored_by_offset_.end()) {
    stored_bytes_ -= it->second;
    stored_by_offset_.erase(it);
  }
  const std::uint64_t new_end = extents_.file_end();
  // Give the free tail back to the filesystem once it is tail_slack_ or
  // more. Under the lock, so that no extent allocated past new_end can be
  // written before the truncation. A failed truncation only leaves the file
  // longer than needed.
  if (file_length_ > new_end && file_length_ - new_end >= std::max<std::uint64_t>(tail_slack_, 1)) {
    (void)env_->ftruncate(fd_, static_cast<off_t>(new_end));
    file_length_ = new_end;
  }
}

SpillStoreStats SpillStore::stats() const {
  detail::MutexLock lk(mu_);
  const ExtentAllocatorStats e = extents_.stats();
  SpillStoreStats s;
  s.capacity_bytes = quota_;
  s.used_bytes = e.used_bytes;
  s.stored_bytes = stored_bytes_;
  s.file_bytes = std::max(e.file_bytes, file_length_);
  s.largest_free_bytes = e.largest_free_bytes;
  s.fragmentation = e.fragmentation;
  s.records = stored_by_offset_.size();
  s.direct_io = direct_io();
  s.overlapped_writes = overlapped_writes_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace spillway::detail
