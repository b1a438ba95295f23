// tiers/disk/spill_store.hpp — the disk tier: records in an unlinked spill
// file inside a private directory, placed in 4 KiB extents under an exact
// quota.
//
// Mechanism only. The pool decides which buffer to spill; the store decides
// where its bytes go in the file and how they are encoded:
//
//   reserve(raw)   takes an extent big enough for the record stored raw
//                  (header + raw bytes, rounded up to 4 KiB), or returns
//                  nothing when the quota cannot hold it. The quota counts
//                  extent bytes, so capacity_bytes is never exceeded.
//   write(...)     encodes the record (LZ4 chunks or raw, per the
//                  Compression setting), writes it, checksums it, and gives
//                  back the unused tail of the extent. Throws IoError; the
//                  extent then stays reserved and the caller releases it.
//   read(...)      reads and verifies a record into `dst`. Throws IoError
//                  when the file cannot be read, CorruptionError when the
//                  header or payload checksum does not match.
//   release(...)   returns an extent to the free list; free space at the end
//                  of the file is truncated away once it reaches
//                  DiskOptions::tail_slack_bytes.
//
// Record layout (little-endian), at the extent's offset:
//   64-byte header: magic "SPILLWY1"(8) | version u16 | codec u8 | flags u8 |
//   chunk_bytes u32 | buffer_id u64 | raw_size u64 | stored_size u64 |
//   payload XXH3-64 u64 | reserved u64 | header XXH3-64 u64 (over bytes 0..55)
//   payload: raw bytes (codec 0), or for codec 1 (LZ4) a sequence of chunks,
//   each u32 length (high bit set = chunk stored raw) then that many bytes;
//   every chunk decodes to chunk_bytes bytes except the last.
//   flags bit 0 (direct layout): the header has a 4 KiB block to itself and
//   the payload starts at offset + 4096, zero-padded to a 4 KiB multiple, so
//   the record moves with O_DIRECT straight between the file and 4 KiB-aligned
//   memory. Used for records of kDirectIoMinBytes and more when the store has
//   an O_DIRECT descriptor (DiskOptions::io); SpillExtent::direct says which
//   layout a record has, and the header must agree.
//   flags bit 1 (with bit 0, raw records only): the header's payload
//   checksum field is 0 and the checksum is in memory, in
//   SpillExtent::payload_sum. Such a record went out in one write call, header
//   block and payload together, while the IO thread hashed the payload
//   (IoEnv::pwritev_during); reading it, the header is checked as any other
//   and the payload against the checksum in memory. Spill files never
//   outlive the process that wrote them (unlinked at open), so the copy in
//   memory is the one every reader has.
//
// Thread-safety: every method may be called concurrently; reads and writes
// of different extents run in parallel (positional IO, no shared cursor).
// All filesystem access goes through the IoEnv given in DiskOptions.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <sys/uio.h>

#include "base/sync.hpp"
#include <optional>
#include <string>
#include <unordered_map>

#include "spillway/io_env.hpp"
#include "spillway/options.hpp"
#include "extent_allocator.hpp"
#include "hash_worker.hpp"

namespace spillway::detail {

inline constexpr std::size_t kRecordHeaderBytes = 64;
inline constexpr std::uint64_t kExtentBytes = 4096;
// O_DIRECT's alignment of memory, offsets and lengths (the largest logical
// block size in common use; also the page size).
inline constexpr std::size_t kDirectAlign = 4096;

enum class RecordCodec : std::uint8_t { Raw = 0, Lz4 = 1 };

// A record header's fields (see the layout above).
struct RecordHeader {
  RecordCodec codec;
  std::uint32_t chunk_bytes;
  std::uint64_t buffer_id;
  std::uint64_t raw_size;
  std::uint64_t stored_size;
  std::uint64_t payload_sum;
  std::uint8_t flags = 0;
};

struct SpillExtent {
  std::uint64_t offset = 0;  // in the spill file, multiple of kExtentBytes
  std::uint64_t bytes = 0;   // extent length, multiple of kExtentBytes
  bool direct = false;       // the record written into it has the direct layout
  // A raw direct record written in one request while its payload was hashed
  // (header flags bit 1): its payload checksum, kept here rather than in the
  // header (SpillStore::write sets both).
  bool sum_in_memory = false;
  std::uint64_t payload_sum = 0;
};

struct RecordInfo {
  RecordCodec codec = RecordCodec::Raw;
  std::uint64_t stored_bytes = 0;  // header + payload bytes written
  double seconds = 0.0;            // time spent encoding and writing
};

// How a record's bytes reach memory the store cannot address directly (VRAM):
// the store asks for them one slice at a time (at most kSliceBytes, in
// order), so staging needs only one slice of host memory.
class SliceIo {
 public:
  static constexpr std::size_t kSliceBytes = std::size_t{1} << 20;
  virtual ~SliceIo() = default;
  // Writing: host memory holding the record's bytes [offset, offset + n),
  // valid until the next call.
  virtual const void* source(std::size_t offset, std::size_t n) = 0;
  // Reading: host memory to receive bytes [offset, offset + n); deliver()
  // follows once they are there. A record that then fails its checksum
  // throws CorruptionError after some slices were delivered: the caller
  // must discard the destination.
  virtual void* target(std::size_t offset, std::size_t n) = 0;
  virtual void deliver(std::size_t offset, std::size_t n) {
    (void)offset;
    (void)n;
  }
  // When the record's bytes are in host memory as one range that stays put
  // for the whole call: that range (the store then hashes on a second core
  // while it writes or reads). Null otherwise.
  virtual const void* whole_source() { return nullptr; }
  virtual void* whole_target() { return nullptr; }
  // The slice size the store uses with this SliceIo for raw records: a
  // multiple of kSliceBytes (LZ4 chunks, at most kSliceBytes, never
  // straddle two slices).
  virtual std::size_t slice_bytes() const { return kSliceBytes; }
};

struct SpillStoreStats {
  std::uint64_t capacity_bytes = 0;     // the quota (kUnlimited when none)
  std::uint64_t used_bytes = 0;         // bytes of extents in use
  std::uint64_t stored_bytes = 0;       // bytes of records written into them
  std::uint64_t file_bytes = 0;         // current file length
  std::uint64_t largest_free_bytes = 0; // largest free extent inside the file
  double fragmentation = 0.0;           // over free extents inside the file
  std::uint64_t records = 0;
  bool direct_io = false;  // large records move with O_DIRECT
  std::uint64_t overlapped_writes = 0;  // records written with the write kept in flight
};

class SpillStore {
 public:
  // Creates the private directory and opens the unlinked spill file. Throws
  // IoError naming the directory when either fails.
  explicit SpillStore(const DiskOptions& options);
  // Closes the file and removes the directory.
  ~SpillStore();
  SpillStore(const SpillStore&) = delete;
  SpillStore& operator=(const SpillStore&) = delete;

  const std::string& directory() const { return directory_; }
  std::uint64_t capacity() const { return quota_; }

  // The extent bytes a record of `raw_bytes` reserves in the buffered layout
  // (header and payload packed together).
  static std::uint64_t reservation_bytes(std::uint64_t raw_bytes);
  // The extent bytes this store reserves for such a record: one 4 KiB block
  // more when it will be written with the direct layout.
  std::uint64_t reservation_for(std::uint64_t raw_bytes) const;
  // The file bytes a record of `raw_bytes` spans from its offset in a store
  // whose direct_io() is `direct` (for callers locating damage on disk).
  static std::uint64_t record_span(std::uint64_t raw_bytes, bool direct);
  // Whether large records move with O_DIRECT (DiskOptions::io and what the
  // filesystem supports).
  bool direct_io() const { return direct_fd_ >= 0 && direct_ok_.load(std::memory_order_relaxed); }
  std::optional<SpillExtent> reserve(std::uint64_t raw_bytes);
  // Writes one record into `extent` (which shrinks to the bytes it keeps).
  RecordInfo write(SpillExtent& extent, std::uint64_t buffer_id, const void* data,
                   std::size_t bytes);
  // Reads and verifies the record in `extent` into dst (exactly `bytes`).
  // Returns the stored bytes read.
  std::uint64_t read(const SpillExtent& extent, std::uint64_t buffer_id, void* dst,
                     std::size_t bytes);
  void release(const SpillExtent& extent);
  // The same, slice by slice through `io` (for bytes not in host memory).
  RecordInfo write(SpillExtent& extent, std::uint64_t buffer_id, std::size_t bytes, SliceIo& io);
  std::uint64_t read(const SpillExtent& extent, std::uint64_t buffer_id, std::size_t bytes,
                     SliceIo& io);

  SpillStoreStats stats() const;

 private:
  // One range through the buffered descriptor (transfer() below).
  void write_all(const void* data, std::size_t n, std::uint64_t offset);
  void read_all(void* data, std::size_t n, std::uint64_t offset);
  // Transfers every byte of the ranges in `iov` at `offset`, through the
  // O_DIRECT descriptor when `direct` (every range and the offset 4 KiB
  // aligned) and while what is left stays aligned, else through the
  // buffered one (the kernel keeps the two coherent). Throws IoError.
  void transfer(bool write, bool direct, struct iovec* iov, int count, std::uint64_t offset);
  // The ranges through the O_DIRECT descriptor while meanwhile() runs
  // (IoEnv::pwritev_during), finishing a short or refused write as
  // transfer() would. False, having run nothing, where the environment
  // cannot keep a write in flight. Throws IoError.
  bool write_during(struct iovec* iov, int count, std::uint64_t offset,
                    const std::function<void()>& meanwhile);
  bool direct_eligible(std::uint64_t raw_bytes) const;
  void write_direct_raw(SpillExtent& extent, RecordHeader& h, std::size_t bytes, SliceIo& io);
  std::uint64_t write_slices(SliceIo& io, std::size_t bytes, std::uint64_t base, bool direct);
  bool read_direct_whole(const SpillExtent& extent, std::uint64_t buffer_id, std::size_t bytes,
                         unsigned char* dst);
  RecordHeader check_header(const unsigned char* header, const SpillExtent& extent,
                            std::uint64_t buffer_id, std::size_t bytes) const;
  std::uint64_t read_direct_raw(const SpillExtent& extent, std::uint64_t buffer_id,
                                std::size_t bytes, SliceIo& io, const RecordHeader& h);
  void decode_lz4(const unsigned char* payload, const RecordHeader& h, std::uint64_t offset,
                  std::size_t bytes, SliceIo& io);
  // The Compression setting applied to one record (Adaptive: measured).
  bool should_compress(const void* data, std::size_t bytes);
  void note_write_bandwidth(std::uint64_t bytes, double seconds);

  std::shared_ptr<IoEnv> env_;
  std::string directory_;
  std::string file_name_;  // for error messages
  int fd_ = -1;
  int direct_fd_ = -1;  // the same file with O_DIRECT, or -1
  DiskIo io_mode_ = DiskIo::Auto;
  // Cleared (Auto only) when the filesystem refuses an O_DIRECT write after
  // all: later records are buffered.
  std::atomic<bool> direct_ok_{true};
  std::uint64_t quota_ = 0;
  std::uint64_t tail_slack_ = 0;  // DiskOptions::tail_slack_bytes, capped at quota_ / 4
  Compression compression_;
  HashWorker hasher_;  // checksums large raw records beside the IO
  // Estimated raw write bandwidth in bytes/s (EWMA of measured writes),
  // starting from a guess a page-cache write easily beats.
  std::atomic<double> write_bandwidth_{1.0e9};
  std::atomic<std::uint64_t> overlapped_writes_{0};
  // LZ4's measured compression speed in bytes/s (EWMA of samples; 0: none yet).
  std::atomic<double> lz4_speed_{0.0};
  std::atomic<std::uint64_t> adaptive_records_{0};
  mutable detail::Mutex mu_;  // guards the members below
  ExtentAllocator extents_ SPILLWAY_GUARDED_BY(mu_);
  std::uint64_t stored_bytes_ SPILLWAY_GUARDED_BY(mu_) = 0;
  // How far the file reaches: the end of the furthest extent written since
  // the last truncation (free extents inside it keep their blocks).
  std::uint64_t file_length_ SPILLWAY_GUARDED_BY(mu_) = 0;
  std::unordered_map<std::uint64_t, std::uint64_t> stored_by_offset_ SPILLWAY_GUARDED_BY(mu_);
};

}  // namespace spillway::detail
