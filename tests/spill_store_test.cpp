// tests/spill_store_test.cpp — the disk tier's records: round trips for every
// codec and size, checksums, injected faults, the private directory.
#include "tiers/disk/spill_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <unistd.h>

#include <cstring>
#include <functional>
#include <stdexcept>
#include <thread>

#include "test_util.hpp"

// Header-only XXH3 (no link dependency): the tests build records by hand
// from the layout documented in spill_store.hpp.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace spillway::detail {
namespace {

using spillway::testing::fill_pattern;
using spillway::testing::find_mismatch;
using spillway::testing::ScratchDir;

DiskOptions disk_in(const std::string& dir, Compression c = Compression::Adaptive,
                    DiskIo io = DiskIo::Auto) {
  DiskOptions o;
  o.directory = dir;
  o.compression = c;
  o.io = io;
  o.tail_slack_bytes = 0;  // the file ends where its last extent does (FreedTailStaysUntilItReachesTheSlack)
  return o;
}

std::uint64_t whole_blocks(std::uint64_t n) { return (n + kDirectAlign - 1) / kDirectAlign * kDirectAlign; }

// The most bytes a record of n raw bytes occupies in the file, by layout.
std::uint64_t most_stored(const SpillExtent& e, std::uint64_t n) {
  return e.direct ? kDirectAlign + whole_blocks(n) : kRecordHeaderBytes + n;
}

std::vector<unsigned char> pattern(std::size_t n, std::uint64_t key, bool compressible) {
  std::vector<unsigned char> v(n);
  fill_pattern(v.data(), n, key, 0, compressible);
  return v;
}

// About 1.6x compressible: 32-byte blocks of 16 random bytes and a copy of
// them with one byte changed (short runs with noise).
std::vector<unsigned char> runs_with_noise(std::size_t n, std::uint64_t key) {
  std::vector<unsigned char> v(n);
  std::mt19937_64 rng(key);
  for (std::size_t i = 0; i < n; i += 32) {
    for (std::size_t j = 0; j < 16 && i + j < n; ++j) v[i + j] = static_cast<unsigned char>(rng());
    for (std::size_t j = 0; j < 16 && i + 16 + j < n; ++j) v[i + 16 + j] = v[i + j];
    if (i + 31 < n) v[i + 31] ^= static_cast<unsigned char>(rng() | 1);
  }
  return v;
}

TEST(SpillStore, RoundTripsEveryCodecAndSize) {
  ScratchDir dir;
  for (DiskIo io : {DiskIo::Buffered, DiskIo::Auto})
  for (Compression c : {Compression::None, Compression::Lz4, Compression::Adaptive}) {
    SpillStore store(disk_in(dir.path(), c, io));
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4095}, std::size_t{4096},
                          kDirectIoMinBytes - 1, kDirectIoMinBytes,
                          (std::size_t{1} << 20) + 3, std::size_t{5} << 20}) {
      for (int kind = 0; kind < 4; ++kind) {  // random, compressible, zeros, runs with noise
        std::vector<unsigned char> data = kind == 2   ? std::vector<unsigned char>(n, 0)
                                          : kind == 3 ? runs_with_noise(n, n)
                                                      : pattern(n, n + kind, kind == 1);
        auto ext = store.reserve(n);
        ASSERT_TRUE(ext);
        const RecordInfo info = store.write(*ext, 42, data.data(), n);
        EXPECT_EQ(ext->direct, store.direct_io() && n >= kDirectIoMinBytes);
        EXPECT_LE(info.stored_bytes, most_stored(*ext, n));
        EXPECT_EQ(ext->bytes % kExtentBytes, 0u);
        EXPECT_GE(ext->bytes, info.stored_bytes);
        std::vector<unsigned char> back(n, 0xEE);
        EXPECT_EQ(store.read(*ext, 42, back.data(), n), info.stored_bytes);
        EXPECT_EQ(back, data) << "codec " << static_cast<int>(c) << " size " << n << " kind " << kind;
        store.release(*ext);
      }
    }
    EXPECT_EQ(store.stats().used_bytes, 0u);
    EXPECT_EQ(store.stats().file_bytes, 0u) << "everything released: the file is empty";
  }
}

TEST(SpillStore, Lz4ShrinksCompressibleDataAndStoresRandomDataRaw) {
  ScratchDir dir;
  SpillStore store(disk_in(dir.path(), Compression::Lz4));
  const std::size_t n = 2 << 20;
  auto compressible = pattern(n, 1, true);
  auto ext = store.reserve(n);
  const RecordInfo c = store.write(*ext, 1, compressible.data(), n);
  EXPECT_EQ(c.codec, RecordCodec::Lz4);
  EXPECT_LT(c.stored_bytes, n * 6 / 10);
  EXPECT_LT(ext->bytes, SpillStore::reservation_bytes(n)) << "the unused tail went back";
  auto random = pattern(n, 2, false);
  auto ext2 = store.reserve(n);
  const RecordInfo r = store.write(*ext2, 2, random.data(), n);
  EXPECT_EQ(r.codec, RecordCodec::Raw);
  EXPECT_EQ(r.stored_bytes, most_stored(*ext2, n)) << "a raw record fills its layout";
  std::vector<unsigned char> back(n);
  store.read(*ext, 1, back.data(), n);
  EXPECT_EQ(back, compressible);
  EXPECT_EQ(store.stats().stored_bytes, c.stored_bytes + r.stored_bytes);
}

TEST(SpillStore, Lz4ShrinksModeratelyCompressibleData) {
  ScratchDir dir;
  SpillStore store(disk_in(dir.path(), Compression::Lz4));
  const std::size_t n = (3 << 20) + 17;
  auto data = runs_with_noise(n, 11);
  auto ext = store.reserve(n);
  const RecordInfo info = store.write(*ext, 11, data.data(), n);
  EXPECT_EQ(info.codec, RecordCodec::Lz4);
  EXPECT_LT(info.stored_bytes, n * 8 / 10);
  EXPECT_EQ(ext->bytes, SpillStore::reservation_bytes(info.stored_bytes - kRecordHeaderBytes));
  std::vector<unsigned char> back(n);
  EXPECT_EQ(store.read(*ext, 11, back.data(), n), info.stored_bytes);
  EXPECT_EQ(back, data);
}

TEST(SpillStore, Lz4StoresIncompressibleChunksRawInsideACompressedRecord) {
  ScratchDir dir;
  SpillStore store(disk_in(dir.path(), Compression::Lz4));
  const std::size_t mib = std::size_t{1} << 20;
  // chunk 0 compressible, chunk 1 random, chunk 2 (short) compressible.
  std::vector<unsigned char> data(2 * mib + 5000);
  fill_pattern(data.data(), mib, 1, 0, true);
  fill_pattern(data.data() + mib, mib, 2, 0, false);
  fill_pattern(data.data() + 2 * mib, 5000, 3, 0, true);
  auto ext = store.reserve(data.size());
  const RecordInfo info = store.write(*ext, 3, data.data(), data.size());
  EXPECT_EQ(info.codec, RecordCodec::Lz4);
  EXPECT_GT(info.stored_bytes, mib) << "the random chunk is kept whole";
  EXPECT_LT(info.stored_bytes, mib + mib / 2);
  std::vector<unsigned char> back(data.size());
  store.read(*ext, 3, back.data(), back.size());
  EXPECT_EQ(back, data);
}

TEST(SpillStore, SmallRecordsAreStoredRawUnlessLz4SavesAnExtent) {
  ScratchDir dir;
  SpillStore adaptive(disk_in(dir.path(), Compression::Adaptive));
  SpillStore lz4(disk_in(dir.path(), Compression::Lz4));
  const std::vector<unsigned char> zeros(4095, 0);
  auto a = adaptive.reserve(zeros.size());
  EXPECT_EQ(adaptive.write(*a, 1, zeros.data(), zeros.size()).codec, RecordCodec::Raw)
      << "Adaptive stores records under 4 KiB raw";
  const std::size_t fits = kExtentBytes - kRecordHeaderBytes;  // raw record fills one extent
  auto b = lz4.reserve(fits);
  EXPECT_EQ(lz4.write(*b, 2, zeros.data(), fits).codec, RecordCodec::Raw);
  auto c = lz4.reserve(fits + 1);
  EXPECT_EQ(c->bytes, 2 * kExtentBytes);
  EXPECT_EQ(lz4.write(*c, 3, zeros.data(), fits + 1).codec, RecordCodec::Lz4);
  EXPECT_EQ(c->bytes, kExtentBytes) << "compression saved an extent";
  std::vector<unsigned char> back(fits + 1, 0xAB);
  lz4.read(*c, 3, back.data(), back.size());
  EXPECT_EQ(back, std::vector<unsigned char>(zeros.begin(), zeros.begin() + fits + 1));
}

TEST(SpillStore, NoneNeverCompresses) {
  ScratchDir dir;
  SpillStore store(disk_in(dir.path(), Compression::None));
  std::vector<unsigned char> zeros(1 << 20, 0);
  auto ext = store.reserve(zeros.size());
  EXPECT_EQ(store.write(*ext, 1, zeros.data(), zeros.size()).codec, RecordCodec::Raw);
}

TEST(SpillStore, QuotaCountsReservedExtentsExactly) {
  ScratchDir dir;
  DiskOptions o = disk_in(dir.path());
  o.capacity_bytes = 3 * kExtentBytes;
  SpillStore store(o);
  EXPECT_EQ(SpillStore::reservation_bytes(kExtentBytes - kRecordHeaderBytes), kExtentBytes);
  EXPECT_EQ(SpillStore::reservation_bytes(kExtentBytes - kRecordHeaderBytes + 1), 2 * kExtentBytes);
  auto a = store.reserve(2 * kExtentBytes - kRecordHeaderBytes);
  ASSERT_TRUE(a);
  EXPECT_FALSE(store.reserve(kExtentBytes)) << "2 + 2 extents exceed a 3-extent quota";
  auto b = store.reserve(kExtentBytes - kRecordHeaderBytes);
  ASSERT_TRUE(b);
  EXPECT_EQ(store.stats().used_bytes, 3 * kExtentBytes);
  store.release(*a);
  EXPECT_TRUE(store.reserve(kExtentBytes));
}

class RecordingEnv : public testing::FaultyEnv {
 public:
  std::atomic<std::size_t> max_io{~std::size_t{0}};  // short reads/writes
  std::atomic<int> truncations{0};
  std::atomic<std::int64_t> last_truncate{-1};
  std::atomic<int> flip_at{-1};  // flip a bit at this byte of the next matching read
  std::atomic<bool> overlap{false};  // implement pwritev_during (the work, then the write)
  ssize_t pwritev_during(int fd, const struct iovec* iov, int count, off_t off,
                         const std::function<void()>& meanwhile) override {
    if (!overlap.load()) return FaultyEnv::pwritev_during(fd, iov, count, off, meanwhile);
    meanwhile();
    return pwritev(fd, iov, count, off);
  }
  ssize_t pwrite(int fd, const void* d, std::size_t n, off_t off) override {
    return FaultyEnv::pwrite(fd, d, std::min(n, max_io.load()), off);
  }
  ssize_t pread(int fd, void* d, std::size_t n, off_t off) override {
    const ssize_t r = FaultyEnv::pread(fd, d, std::min(n, max_io.load()), off);
    const int at = flip_at.load();
    if (r > at && at >= 0) static_cast<unsigned char*>(d)[at] ^= 1;
    return r;
  }
  int ftruncate(int fd, off_t len) override {
    ++truncations;
    last_truncate = len;
    return FaultyEnv::ftruncate(fd, len);
  }
};

TEST(SpillStore, LoopsOverShortReadsAndWrites) {
  ScratchDir dir;
  for (Compression c : {Compression::None, Compression::Lz4}) {
    auto env = std::make_shared<RecordingEnv>();
    env->max_io = 1000;
    DiskOptions o = disk_in(dir.path(), c);
    o.env = env;
    SpillStore store(o);
    for (bool compressible : {false, true}) {
      auto data = pattern((1 << 20) + 100000, 5, compressible);
      auto ext = store.reserve(data.size());
      const RecordInfo info = store.write(*ext, 5, data.data(), data.size());
      std::vector<unsigned char> back(data.size());
      EXPECT_EQ(store.read(*ext, 5, back.data(), back.size()), info.stored_bytes);
      EXPECT_EQ(back, data);
      store.release(*ext);
    }
    EXPECT_GT(env->writes.load(), 1000u) << "every write was cut to 1000 bytes";
  }
}

TEST(SpillStore, ReadErrorsAreIoErrorsAndTheRecordSurvives) {
  ScratchDir dir;
  auto env = std::make_shared<RecordingEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::Lz4);
  o.env = env;
  SpillStore store(o);
  auto data = pattern(300000, 12, true);
  auto ext = store.reserve(data.size());
  store.write(*ext, 12, data.data(), data.size());
  std::vector<unsigned char> back(data.size());
  env->read_errno = EIO;
  try {
    store.read(*ext, 12, back.data(), back.size());
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(e.code().value(), EIO);
    EXPECT_EQ(e.offset, ext->offset);
    EXPECT_NE(e.file.find(store.directory()), std::string::npos);
  }
  env->read_errno = 0;
  store.read(*ext, 12, back.data(), back.size());
  EXPECT_EQ(back, data);
}

// pread reports end of file (0 bytes) for reads past `eof_at`.
class ShortFileEnv : public testing::FaultyEnv {
 public:
  std::atomic<std::int64_t> eof_at{-1};
  ssize_t pread(int fd, void* d, std::size_t n, off_t off) override {
    const std::int64_t at = eof_at.load();
    if (at >= 0) {
      if (off >= at) return 0;
      n = std::min<std::size_t>(n, static_cast<std::size_t>(at - off));
    }
    return FaultyEnv::pread(fd, d, n, off);
  }
};

TEST(SpillStore, EndOfFileInsideARecordIsAnIoError) {
  ScratchDir dir;
  auto env = std::make_shared<ShortFileEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::None);
  o.env = env;
  SpillStore store(o);
  auto data = pattern(20000, 13, false);
  auto ext = store.reserve(data.size());
  store.write(*ext, 13, data.data(), data.size());
  std::vector<unsigned char> back(data.size());
  for (std::int64_t at : {std::int64_t{10}, std::int64_t{5000}}) {  // in the header, in the payload
    env->eof_at = static_cast<std::int64_t>(ext->offset) + at;
    try {
      store.read(*ext, 13, back.data(), back.size());
      FAIL() << "expected IoError at " << at;
    } catch (const IoError& e) {
      EXPECT_EQ(e.code().value(), EIO);
      EXPECT_EQ(e.offset, ext->offset + static_cast<std::uint64_t>(at));
    }
  }
  env->eof_at = -1;
  store.read(*ext, 13, back.data(), back.size());
  EXPECT_EQ(back, data);
}

TEST(SpillStore, WriteErrorThrowsIoErrorAndStoreStaysUsable) {
  ScratchDir dir;
  auto env = std::make_shared<RecordingEnv>();
  DiskOptions o = disk_in(dir.path());
  o.env = env;
  SpillStore store(o);
  auto data = pattern(50000, 6, false);
  auto ext = store.reserve(data.size());
  env->write_errno = ENOSPC;
  try {
    store.write(*ext, 6, data.data(), data.size());
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(e.code().value(), ENOSPC);
    EXPECT_EQ(e.operation, "write");
    EXPECT_NE(e.file.find(store.directory()), std::string::npos);
  }
  store.release(*ext);
  env->write_errno = 0;
  ext = store.reserve(data.size());
  store.write(*ext, 6, data.data(), data.size());
  std::vector<unsigned char> back(data.size());
  store.read(*ext, 6, back.data(), back.size());
  EXPECT_EQ(back, data);
}

TEST(SpillStore, BitFlipsAreCorruptionNeverWrongBytes) {
  ScratchDir dir;
  auto env = std::make_shared<RecordingEnv>();
  for (Compression c : {Compression::None, Compression::Lz4}) {
    DiskOptions o = disk_in(dir.path(), c);
    o.env = env;
    SpillStore store(o);
    auto data = pattern(200000, 7, true);
    auto ext = store.reserve(data.size());
    store.write(*ext, 7, data.data(), data.size());
    std::vector<unsigned char> back(data.size());
    for (int at : {3, 20, 60, 1000}) {  // magic, header fields, header checksum, payload
      env->flip_at = at;
      EXPECT_THROW(store.read(*ext, 7, back.data(), back.size()), CorruptionError) << "byte " << at;
      env->flip_at = -1;
    }
    try {
      store.read(*ext, 8, back.data(), back.size());  // another buffer's id
      FAIL();
    } catch (const CorruptionError& e) {
      EXPECT_EQ(e.buffer_id, 8u);
      EXPECT_EQ(e.record_offset, ext->offset);
    }
    store.read(*ext, 7, back.data(), back.size());
    EXPECT_EQ(back, data);
  }
}

TEST(SpillStore, WrongSizeOrIdIsCorruption) {
  ScratchDir dir;
  SpillStore store(disk_in(dir.path(), Compression::None));
  auto data = pattern(9000, 14, false);
  auto ext = store.reserve(data.size());
  store.write(*ext, 14, data.data(), data.size());
  std::vector<unsigned char> back(data.size());
  EXPECT_THROW(store.read(*ext, 14, back.data(), back.size() - 1), CorruptionError);
  EXPECT_THROW(store.read(*ext, 15, back.data(), back.size()), CorruptionError);
  SpillExtent elsewhere{ext->offset + kExtentBytes, kExtentBytes};  // inside the payload
  EXPECT_THROW(store.read(elsewhere, 14, back.data(), back.size()), CorruptionError);
}

TEST(SpillStore, PayloadBitFlipsAnywhereAreCaught) {
  ScratchDir dir;
  auto env = std::make_shared<RecordingEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::None);
  o.env = env;
  SpillStore store(o);
  const std::size_t n = (2 << 20) + 123;  // several IO slices
  auto data = pattern(n, 15, false);
  auto ext = store.reserve(n);
  store.write(*ext, 15, data.data(), n);
  env->max_io = 4096;  // so flip_at lands in every pread, header and payload
  std::vector<unsigned char> back(n);
  for (int at : {0, 63, 64, 4095}) {
    env->flip_at = at;
    EXPECT_THROW(store.read(*ext, 15, back.data(), n), CorruptionError) << "byte " << at;
  }
  env->flip_at = -1;
  store.read(*ext, 15, back.data(), n);
  EXPECT_EQ(back, data);
}

// Reads fail with EIO once `reads_left` reaches zero (negative: never).
class FailLaterEnv : public testing::FaultyEnv {
 public:
  std::atomic<int> reads_left{-1};
  ssize_t pread(int fd, void* d, std::size_t n, off_t off) override {
    if (reads_left.load() == 0) {
      errno = EIO;
      return -1;
    }
    if (reads_left.load() > 0) --reads_left;
    return FaultyEnv::pread(fd, d, n, off);
  }
};

// Raw records of HashWorker::kMinBytes and more are checksummed on the
// helper thread: flips are still caught, and a read that fails half way
// leaves the helper out of the destination before the error reaches the
// caller (which frees it at once).
TEST(SpillStore, LargeRawRecordsHashedBesideTheIoAreVerified) {
  ScratchDir dir;
  auto env = std::make_shared<RecordingEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::None, DiskIo::Buffered);  // the helper hashes buffered IO
  o.env = env;
  SpillStore store(o);
  const std::size_t n = HashWorker::kMinBytes * 2 + 123;
  auto data = pattern(n, 16, false);
  auto ext = store.reserve(n);
  store.write(*ext, 16, data.data(), n);
  std::vector<unsigned char> back(n);
  EXPECT_EQ(store.read(*ext, 16, back.data(), n), kRecordHeaderBytes + n);
  EXPECT_EQ(back, data);
  for (int at : {0, 4095, 100000}) {  // in every payload slice
    env->flip_at = at;
    EXPECT_THROW(store.read(*ext, 16, back.data(), n), CorruptionError) << "byte " << at;
  }
  env->flip_at = -1;
  // The same bytes in a file written slice by slice (a small max_io) hash
  // to the same checksum: the helper's digest is the record's XXH3.
  env->max_io = 1 << 16;
  auto ext2 = store.reserve(n);
  store.write(*ext2, 17, data.data(), n);
  env->max_io = ~std::size_t{0};
  std::fill(back.begin(), back.end(), 0);
  store.read(*ext2, 17, back.data(), n);
  EXPECT_EQ(back, data);
}

TEST(SpillStore, LargeRawRecordReadFailingHalfWayIsAnIoError) {
  ScratchDir dir;
  auto env = std::make_shared<FailLaterEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::None, DiskIo::Buffered);
  o.env = env;
  SpillStore store(o);
  const std::size_t n = HashWorker::kMinBytes * 2;
  auto data = pattern(n, 18, false);
  auto ext = store.reserve(n);
  store.write(*ext, 18, data.data(), n);
  for (int left : {1, 3, 6}) {  // the header, then some payload slices
    auto back = std::make_unique<std::vector<unsigned char>>(n);
    env->reads_left = left;
    EXPECT_THROW(store.read(*ext, 18, back->data(), n), IoError) << "after " << left << " reads";
    back.reset();  // ASan: the helper must not read this any more
  }
  env->reads_left = -1;
  std::vector<unsigned char> back(n);
  store.read(*ext, 18, back.data(), n);
  EXPECT_EQ(back, data);
}

// Captures the spill file's descriptor so a test can overwrite records.
class FdEnv : public testing::FaultyEnv {
 public:
  int fd = -1;
  int open_unlinked_file(const std::string& dir) override {
    fd = FaultyEnv::open_unlinked_file(dir);
    return fd;
  }
};

// A record assembled from the layout in spill_store.hpp.
std::vector<unsigned char> forge(std::uint8_t codec, std::uint32_t chunk_bytes, std::uint64_t id,
                                 std::uint64_t raw_size, const std::vector<unsigned char>& payload,
                                 std::uint64_t stored_size) {
  std::vector<unsigned char> r(kRecordHeaderBytes + payload.size(), 0);
  auto put = [&](std::size_t at, auto v) { std::memcpy(r.data() + at, &v, sizeof v); };
  std::memcpy(r.data(), "SPILLWY1", 8);
  put(8, std::uint16_t{1});
  r[10] = codec;
  put(12, chunk_bytes);
  put(16, id);
  put(24, raw_size);
  put(32, stored_size);
  put(40, static_cast<std::uint64_t>(XXH3_64bits(payload.data(), payload.size())));
  put(56, static_cast<std::uint64_t>(XXH3_64bits(r.data(), 56)));
  std::memcpy(r.data() + kRecordHeaderBytes, payload.data(), payload.size());
  return r;
}

std::vector<unsigned char> chunk(std::uint32_t word, const std::vector<unsigned char>& bytes) {
  std::vector<unsigned char> c(4 + bytes.size());
  std::memcpy(c.data(), &word, 4);
  std::memcpy(c.data() + 4, bytes.data(), bytes.size());
  return c;
}

TEST(SpillStore, RecordsWithValidChecksumsButBadContentAreCorruption) {
  ScratchDir dir;
  auto env = std::make_shared<FdEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::Lz4);
  o.env = env;
  SpillStore store(o);
  const std::size_t n = 6000;
  auto data = pattern(n, 16, false);
  auto ext = store.reserve(n);
  store.write(*ext, 16, data.data(), n);
  ASSERT_GE(env->fd, 0);
  auto put_record = [&](const std::vector<unsigned char>& r) {
    ASSERT_EQ(env->target().pwrite(env->fd, r.data(), r.size(), static_cast<off_t>(ext->offset)),
              static_cast<ssize_t>(r.size()));
  };
  std::vector<unsigned char> back(n);

  // The documented layout, built by hand, reads back: raw codec...
  put_record(forge(0, 1 << 20, 16, n, data, n));
  store.read(*ext, 16, back.data(), n);
  EXPECT_EQ(back, data);
  // ...and an LZ4 record holding one raw chunk.
  {
    auto payload = chunk(static_cast<std::uint32_t>(n) | 0x80000000u, data);
    put_record(forge(1, 1 << 20, 16, n, payload, payload.size()));
    std::fill(back.begin(), back.end(), 0);
    store.read(*ext, 16, back.data(), n);
    EXPECT_EQ(back, data);
  }

  std::vector<unsigned char> garbage(100, 0xFF);
  const std::vector<std::pair<const char*, std::vector<unsigned char>>> bad = {
      {"LZ4 chunk that does not decode", [&] {
         auto p = chunk(100, garbage);
         return forge(1, 1 << 20, 16, n, p, p.size());
       }()},
      {"chunk longer than the record", [&] {
         auto p = chunk(5000, garbage);
         return forge(1, 1 << 20, 16, n, p, p.size());
       }()},
      {"raw chunk of the wrong size", [&] {
         auto p = chunk(100 | 0x80000000u, garbage);
         return forge(1, 1 << 20, 16, n, p, p.size());
       }()},
      {"bytes after the last chunk", [&] {
         auto p = chunk(static_cast<std::uint32_t>(n) | 0x80000000u, data);
         p.insert(p.end(), {1, 2, 3, 4});
         return forge(1, 1 << 20, 16, n, p, p.size());
       }()},
      {"unknown codec", forge(7, 1 << 20, 16, n, data, n)},
      {"zero chunk size", [&] {
         auto p = chunk(static_cast<std::uint32_t>(n) | 0x80000000u, data);
         return forge(1, 0, 16, n, p, p.size());
       }()},
      {"stored size beyond the extent", forge(0, 1 << 20, 16, n, data, std::uint64_t{1} << 40)},
      {"stored size that wraps", [&] {
         auto p = chunk(static_cast<std::uint32_t>(n) | 0x80000000u, data);
         return forge(1, 1 << 20, 16, n, p, ~std::uint64_t{0} - 10);
       }()},
      {"raw record with stored != raw", forge(0, 1 << 20, 16, n, data, n - 1)},
  };
  for (const auto& [what, record] : bad) {
    put_record(record);
    EXPECT_THROW(store.read(*ext, 16, back.data(), n), CorruptionError) << what;
  }
}

TEST(SpillStore, WriteRefusesAnExtentTooSmallForTheRecord) {
  ScratchDir dir;
  SpillStore store(disk_in(dir.path(), Compression::None));
  auto data = pattern(10000, 17, false);
  auto small = store.reserve(100);
  ASSERT_TRUE(small);
  EXPECT_THROW(store.write(*small, 17, data.data(), data.size()), std::invalid_argument);
  EXPECT_EQ(small->bytes, kExtentBytes);
  store.release(*small);
  EXPECT_FALSE(store.reserve(~std::uint64_t{0})) << "a huge request is refused, not wrapped";
  EXPECT_FALSE(store.reserve(~std::uint64_t{0} - 60));
}

TEST(SpillStore, StatsFollowRecords) {
  ScratchDir dir;
  SpillStore store(disk_in(dir.path(), Compression::None));
  EXPECT_EQ(store.capacity(), kUnlimited);
  EXPECT_EQ(store.stats().capacity_bytes, kUnlimited);
  auto data = pattern(3 * kExtentBytes, 18, false);
  std::vector<SpillExtent> exts;
  for (int i = 0; i < 4; ++i) {
    exts.push_back(*store.reserve(data.size()));
    store.write(exts.back(), 100 + i, data.data(), data.size());
  }
  auto s = store.stats();
  EXPECT_EQ(s.records, 4u);
  EXPECT_EQ(s.stored_bytes, 4 * (kRecordHeaderBytes + data.size()));
  EXPECT_EQ(s.used_bytes, 4 * 4 * kExtentBytes);
  EXPECT_EQ(s.file_bytes, s.used_bytes);
  EXPECT_EQ(s.fragmentation, 0.0);
  store.release(exts[0]);
  store.release(exts[2]);
  s = store.stats();
  EXPECT_EQ(s.records, 2u);
  EXPECT_EQ(s.used_bytes, 2 * 4 * kExtentBytes);
  EXPECT_EQ(s.file_bytes, 4 * 4 * kExtentBytes);
  EXPECT_EQ(s.largest_free_bytes, 4 * kExtentBytes);
  EXPECT_DOUBLE_EQ(s.fragmentation, 0.5) << "two equal holes";
}

TEST(SpillStore, ReleasingTheTailTruncatesTheFile) {
  ScratchDir dir;
  auto env = std::make_shared<RecordingEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::None);
  o.env = env;
  SpillStore store(o);
  auto data = pattern(3 * kExtentBytes, 8, false);
  auto a = store.reserve(data.size());
  store.write(*a, 1, data.data(), data.size());
  auto b = store.reserve(data.size());
  store.write(*b, 2, data.data(), data.size());
  const auto end = store.stats().file_bytes;
  EXPECT_EQ(end, a->bytes + b->bytes);
  store.release(*b);
  EXPECT_EQ(store.stats().file_bytes, a->bytes);
  EXPECT_EQ(env->last_truncate.load(), static_cast<std::int64_t>(a->bytes));
  const int before = env->truncations;
  auto c = store.reserve(data.size());  // reuses the space at the end
  EXPECT_EQ(c->offset, a->bytes);
  store.release(*a);  // a hole in front of c: no truncation
  EXPECT_EQ(env->truncations.load(), before);
  store.release(*c);
  EXPECT_EQ(env->last_truncate.load(), 0);
}

TEST(SpillStore, PrivateDirectoryHoldsNoNamedFileAndIsRemoved) {
  ScratchDir dir;
  std::string path;
  {
    SpillStore store(disk_in(dir.path()));
    path = store.directory();
    struct stat st{};
    ASSERT_EQ(::lstat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_EQ(st.st_uid, ::getuid());
    auto data = pattern(10000, 9, false);
    auto e = store.reserve(data.size());
    store.write(*e, 1, data.data(), data.size());
    EXPECT_EQ(dir.regular_files(), 0u);
    EXPECT_EQ(dir.entries(), 1u) << "only the private directory";
    std::size_t inside = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(path)) ++inside;
    EXPECT_EQ(inside, 0u) << "the spill file has no name";
  }
  struct stat st{};
  EXPECT_NE(::lstat(path.c_str(), &st), 0) << "directory removed";
  EXPECT_EQ(dir.entries(), 0u);
}

TEST(PosixEnv, PrivateDirectoriesAreFreshAnd0700EvenUnderARestrictiveUmask) {
  ScratchDir dir;
  auto env = IoEnv::posix();
  EXPECT_EQ(env.get(), IoEnv::posix().get()) << "one process-wide instance";
  const mode_t old = ::umask(0277);
  const std::string a = env->make_private_dir(dir.path());
  ::umask(old);
  const std::string b = env->make_private_dir(dir.path() + "/");
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_NE(a, b);
  for (const auto& p : {a, b}) {
    struct stat st{};
    ASSERT_EQ(::lstat(p.c_str(), &st), 0);
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u) << p;
    EXPECT_EQ(p.rfind(dir.path() + "/spillway-", 0), 0u) << p;
  }
  EXPECT_EQ(env->remove_dir(a), 0);
  EXPECT_EQ(env->remove_dir(b), 0);
  EXPECT_EQ(dir.entries(), 0u);
  errno = 0;
  EXPECT_EQ(env->make_private_dir(dir.path() + "/missing"), "");
  EXPECT_EQ(errno, ENOENT);
}

TEST(PosixEnv, UnlinkedFilesHaveNoNameAndLinksAreNotFollowed) {
  ScratchDir dir;
  auto env = IoEnv::posix();
  const std::string priv = env->make_private_dir(dir.path());
  ASSERT_FALSE(priv.empty());
  const int fd = env->open_unlinked_file(priv);
  ASSERT_GE(fd, 0);
  struct stat st{};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u) << "no name in any directory";
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(env->pwrite(fd, "abc", 3, 8192), 3);
  char got[3] = {};
  EXPECT_EQ(env->pread(fd, got, 3, 8192), 3);
  EXPECT_EQ(std::memcmp(got, "abc", 3), 0);
  EXPECT_EQ(env->ftruncate(fd, 4096), 0);
  EXPECT_EQ(env->pread(fd, got, 3, 8192), 0) << "truncated away";
  EXPECT_EQ(env->close(fd), 0);
  // A symlink in place of the directory is refused, not followed.
  const std::string link = dir.path() + "/link";
  ASSERT_EQ(::symlink(priv.c_str(), link.c_str()), 0);
  EXPECT_LT(env->open_unlinked_file(link), 0);
  ::unlink(link.c_str());
  EXPECT_EQ(env->remove_dir(priv), 0) << "the directory was left empty";
}

TEST(SpillStore, UnwritableParentIsAClearIoError) {
  try {
    SpillStore store(disk_in("/nonexistent/spillway-parent"));
    FAIL();
  } catch (const IoError& e) {
    EXPECT_EQ(e.file, "/nonexistent/spillway-parent");
    EXPECT_EQ(e.code().value(), ENOENT);
  }
}

class SpillStoreConcurrent : public ::testing::TestWithParam<Compression> {};

TEST_P(SpillStoreConcurrent, RecordsRoundTrip) {
  ScratchDir dir;
  SpillStore store(disk_in(dir.path(), GetParam()));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      // Rounds of: write 12 records, read them all back (while the other
      // threads write and read theirs), release every other one, then the rest.
      for (int round = 0; round < 4; ++round) {
        std::vector<std::pair<SpillExtent, std::uint64_t>> mine;
        for (int i = 0; i < 12; ++i) {
          const std::uint64_t id = static_cast<std::uint64_t>(t * 10000 + round * 100 + i);
          const std::size_t n = 1000 + static_cast<std::size_t>(id * 997 % 300000);
          auto data = pattern(n, id, i % 2 == 0);
          auto e = store.reserve(n);
          if (!e) {
            ++bad;
            return;
          }
          store.write(*e, id, data.data(), n);
          mine.emplace_back(*e, id);
        }
        for (int pass = 0; pass < 2; ++pass) {
          for (std::size_t i = pass; i < mine.size(); i += 2) {
            const auto [e, id] = mine[i];
            const std::size_t n = 1000 + static_cast<std::size_t>(id * 997 % 300000);
            std::vector<unsigned char> back(n);
            store.read(e, id, back.data(), n);
            if (back != pattern(n, id, i % 2 == 0)) ++bad;
            store.release(e);
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(store.stats().used_bytes, 0u);
  EXPECT_EQ(store.stats().records, 0u);
}

INSTANTIATE_TEST_SUITE_P(Codecs, SpillStoreConcurrent,
                         ::testing::Values(Compression::None, Compression::Lz4,
                                           Compression::Adaptive));

}  // namespace
}  // namespace spillway::detail

namespace spillway::detail {
namespace {

// Serves a "device" buffer that the store may not address, by copying slices
// through a staging buffer, as the CUDA backend does.
class CopyingSlices final : public SliceIo {
 public:
  explicit CopyingSlices(std::vector<unsigned char>& device) : device_(device) {}
  const void* source(std::size_t offset, std::size_t n) override {
    check(offset, n);
    stage_.assign(device_.begin() + offset, device_.begin() + offset + n);
    return stage_.data();
  }
  void* target(std::size_t offset, std::size_t n) override {
    check(offset, n);
    stage_.assign(n, 0xCD);
    return stage_.data();
  }
  void deliver(std::size_t offset, std::size_t n) override {
    std::copy(stage_.begin(), stage_.begin() + n, device_.begin() + offset);
    ++delivered_;
  }
  std::size_t largest_slice = 0;
  int delivered_ = 0;

 private:
  void check(std::size_t offset, std::size_t n) {
    ASSERT_LE(offset + n, device_.size());
    ASSERT_LE(n, kSliceBytes);
    largest_slice = std::max(largest_slice, n);
  }
  std::vector<unsigned char>& device_;
  std::vector<unsigned char> stage_;
};

TEST(SpillStoreSlices, StagedRecordsRoundTripAndMatchDirectOnes) {
  spillway::testing::ScratchDir dir;
  for (Compression c : {Compression::None, Compression::Lz4, Compression::Adaptive}) {
    SpillStore store(disk_in(dir.path(), c));
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4095},
                          (std::size_t{1} << 20) + 3, std::size_t{5} << 20}) {
      for (bool compressible : {false, true}) {
        std::vector<unsigned char> device = pattern(n, n + 17, compressible);
        const std::vector<unsigned char> original = device;
        // Staged write, direct read.
        CopyingSlices io(device);
        auto ext = store.reserve(n);
        store.write(*ext, 9, n, io);
        EXPECT_LE(io.largest_slice, SliceIo::kSliceBytes);
        std::vector<unsigned char> direct(n);
        store.read(*ext, 9, direct.data(), n);
        EXPECT_EQ(direct, original) << "codec " << static_cast<int>(c) << " size " << n;
        // Direct write, staged read.
        auto ext2 = store.reserve(n);
        store.write(*ext2, 10, original.data(), n);
        std::fill(device.begin(), device.end(), 0);
        CopyingSlices back(device);
        store.read(*ext2, 10, n, back);
        EXPECT_EQ(device, original) << "codec " << static_cast<int>(c) << " size " << n;
        EXPECT_EQ(back.delivered_, static_cast<int>((n + SliceIo::kSliceBytes - 1) / SliceIo::kSliceBytes));
        store.release(*ext);
        store.release(*ext2);
      }
    }
  }
}

TEST(SpillStoreSlices, StagedReadOfADamagedRecordThrows) {
  spillway::testing::ScratchDir dir;
  auto env = std::make_shared<spillway::testing::FaultyEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::None);
  o.env = env;
  SpillStore store(o);
  std::vector<unsigned char> device = pattern(3 << 20, 5, false);
  auto ext = store.reserve(device.size());
  store.write(*ext, 1, device.data(), device.size());
  env->flip_reads = true;
  CopyingSlices io(device);
  EXPECT_THROW(store.read(*ext, 1, device.size(), io), CorruptionError);
}

// ---- O_DIRECT (DiskIo::Auto / Direct) ----------------------------------------------

long long first_difference(const unsigned char* a, const unsigned char* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return static_cast<long long>(i);
  }
  return -1;
}

// Host memory at a 4 KiB boundary (as the pool's arena blocks of 64 KiB and
// more are), plus `shift` bytes.
struct AlignedHost {
  unsigned char* base;
  unsigned char* p;
  AlignedHost(std::size_t n, std::size_t shift)
      : base(static_cast<unsigned char*>(std::aligned_alloc(kDirectAlign, whole_blocks(n + shift) + kDirectAlign))),
        p(base + shift) {}
  // A copy of `bytes` there.
  explicit AlignedHost(const std::vector<unsigned char>& bytes, std::size_t shift = 0)
      : AlignedHost(bytes.size(), shift) {
    std::memcpy(p, bytes.data(), bytes.size());
  }
  ~AlignedHost() { std::free(base); }
  AlignedHost(const AlignedHost&) = delete;
  AlignedHost& operator=(const AlignedHost&) = delete;
};

// Raw records, O_DIRECT where the filesystem has it, through `env`.
DiskOptions direct_disk(const ScratchDir& dir, std::shared_ptr<IoEnv> env) {
  DiskOptions o = disk_in(dir.path(), Compression::None, DiskIo::Auto);
  o.env = std::move(env);
  return o;
}

#define SKIP_WITHOUT_O_DIRECT(store)                                                          \
  if (!(store).direct_io())                                                                  \
  GTEST_SKIP() << "the filesystem of " << dir.path() << " has no O_DIRECT; the store is buffered"

TEST(DirectIo, LargeRecordsUseTheDirectLayoutFromAlignedAndUnalignedMemory) {
  ScratchDir dir;
  for (Compression c : {Compression::None, Compression::Lz4}) {
    SpillStore store(disk_in(dir.path(), c, DiskIo::Auto));
    SKIP_WITHOUT_O_DIRECT(store);
    EXPECT_TRUE(store.stats().direct_io);
    for (std::size_t n : {std::size_t{kDirectIoMinBytes}, (std::size_t{1} << 20) + 3, std::size_t{5} << 20}) {
      for (bool compressible : {false, true}) {
        const auto data = pattern(n, n + 7, compressible);
        for (std::size_t shift : {std::size_t{0}, std::size_t{256}}) {  // aligned, and not
          AlignedHost src(n, shift);
          std::memcpy(src.p, data.data(), n);
          auto ext = store.reserve(n);
          ASSERT_TRUE(ext);
          EXPECT_EQ(ext->bytes, kExtentBytes + whole_blocks(n)) << "a header block of its own";
          const RecordInfo info = store.write(*ext, 3, src.p, n);
          EXPECT_TRUE(ext->direct);
          EXPECT_EQ(ext->offset % kDirectAlign, 0u);
          if (info.codec == RecordCodec::Raw) EXPECT_EQ(info.stored_bytes, kDirectAlign + whole_blocks(n));
          else EXPECT_LT(info.stored_bytes, kDirectAlign + whole_blocks(n));
          EXPECT_EQ(info.codec == RecordCodec::Lz4, c == Compression::Lz4 && compressible);
          for (std::size_t back_shift : {std::size_t{0}, std::size_t{1}}) {
            AlignedHost back(n, back_shift);
            std::memset(back.p, 0xEE, n);
            EXPECT_EQ(store.read(*ext, 3, back.p, n), ext->bytes);
            EXPECT_EQ(first_difference(back.p, data.data(), n), -1)
                << "codec " << static_cast<int>(c) << " size " << n << " shifts " << shift << "/" << back_shift;
          }
          store.release(*ext);
        }
      }
    }
    EXPECT_EQ(store.stats().file_bytes, 0u);
  }
}

TEST(DirectIo, FlipsInEveryPartOfADirectRecordAreCorruption) {
  ScratchDir dir;
  for (bool overlap : {false, true}) {  // checksum in the header; in memory
    auto env = std::make_shared<RecordingEnv>();
    env->overlap = overlap;
    SpillStore store(direct_disk(dir, env));
    SKIP_WITHOUT_O_DIRECT(store);
    const std::size_t n = (std::size_t{2} << 20) + 5;  // a partial last block
    const auto data = pattern(n, 21, false);
    AlignedHost src(data);
    auto ext = store.reserve(n);
    store.write(*ext, 21, src.p, n);
    ASSERT_TRUE(ext->direct);
    EXPECT_EQ(ext->sum_in_memory, overlap);
    // RecordingEnv flips byte `at` of every read it sees that is long
    // enough: the header block (0, 40), the payload, the last block's
    // payload bytes.
    for (int at : {0, 40, 4095, 100000, 4096 + 4}) {
      for (std::size_t back_shift : {std::size_t{0}, std::size_t{8}}) {
        AlignedHost back(n, back_shift);
        env->flip_at = at;
        EXPECT_THROW(store.read(*ext, 21, back.p, n), CorruptionError)
            << "byte " << at << " shift " << back_shift << " overlap " << overlap;
      }
    }
    env->flip_at = -1;
    AlignedHost back(n, 0);
    store.read(*ext, 21, back.p, n);
    EXPECT_EQ(first_difference(back.p, data.data(), n), -1);
  }
}

// An environment whose O_DIRECT descriptor does not exist, or refuses IO.
class NoDirectEnv : public testing::FaultyEnv {
 public:
  bool refuse_open = true;  // reopen_direct fails with EINVAL
  int direct_fd = -1;
  std::atomic<int> refused{0};
  int reopen_direct(int fd) override {
    if (refuse_open) {
      errno = EINVAL;
      return -1;
    }
    direct_fd = FaultyEnv::reopen_direct(fd);
    return direct_fd;
  }
  ssize_t pwrite(int fd, const void* d, std::size_t n, off_t off) override {
    if (fd == direct_fd) return refuse();
    return FaultyEnv::pwrite(fd, d, n, off);
  }
  ssize_t pread(int fd, void* d, std::size_t n, off_t off) override {
    if (fd == direct_fd) return refuse();
    return FaultyEnv::pread(fd, d, n, off);
  }

 private:
  ssize_t refuse() {
    ++refused;
    errno = EINVAL;
    return -1;
  }
};

TEST(DirectIo, DirectModeRefusesAFilesystemWithoutItAndAutoFallsBack) {
  ScratchDir dir;
  auto env = std::make_shared<NoDirectEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::None, DiskIo::Direct);
  o.env = env;
  try {
    SpillStore store(o);
    ADD_FAILURE() << "disk.io = direct started without O_DIRECT";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("O_DIRECT"), std::string::npos) << e.what();
    EXPECT_EQ(e.code().value(), EINVAL);
  }
  EXPECT_EQ(dir.entries(), 0u) << "the private directory was removed again";
  o.io = DiskIo::Auto;
  SpillStore store(o);
  EXPECT_FALSE(store.direct_io());
  const std::size_t n = std::size_t{1} << 20;
  const auto data = pattern(n, 4, false);
  auto ext = store.reserve(n);
  EXPECT_EQ(ext->bytes, SpillStore::reservation_bytes(n));
  store.write(*ext, 4, data.data(), n);
  EXPECT_FALSE(ext->direct);
  std::vector<unsigned char> back(n);
  store.read(*ext, 4, back.data(), n);
  EXPECT_EQ(back, data);
}

TEST(DirectIo, TransfersTheFilesystemRefusesGoThroughThePageCache) {
  ScratchDir dir;
  auto env = std::make_shared<NoDirectEnv>();
  env->refuse_open = false;
  SpillStore store(direct_disk(dir, env));
  SKIP_WITHOUT_O_DIRECT(store);
  const std::size_t n = (std::size_t{1} << 20) + 3;
  const auto data = pattern(n, 6, false);
  AlignedHost src(data);
  auto ext = store.reserve(n);
  store.write(*ext, 6, src.p, n);  // refused with EINVAL, written buffered
  EXPECT_GE(env->refused.load(), 1);
  EXPECT_TRUE(ext->direct) << "the layout was chosen before the refusal";
  EXPECT_FALSE(store.direct_io()) << "Auto gives O_DIRECT up for later records";
  AlignedHost back(n, 0);
  store.read(*ext, 6, back.p, n);
  EXPECT_EQ(first_difference(back.p, data.data(), n), -1);
  auto ext2 = store.reserve(n);
  store.write(*ext2, 7, src.p, n);
  EXPECT_FALSE(ext2->direct);
  store.read(*ext2, 7, back.p, n);
  EXPECT_EQ(first_difference(back.p, data.data(), n), -1);
}

TEST(DirectIo, ShortDirectTransfersFinishAndRoundTrip) {
  ScratchDir dir;
  for (std::size_t cut : {std::size_t{1000}, std::size_t{3 * 4096}}) {  // unaligned, aligned
    auto env = std::make_shared<RecordingEnv>();
    env->max_io = cut;
    SpillStore store(direct_disk(dir, env));
    SKIP_WITHOUT_O_DIRECT(store);
    const std::size_t n = (std::size_t{1} << 20) + 777;
    const auto data = pattern(n, 8, false);
    AlignedHost src(data);
    auto ext = store.reserve(n);
    store.write(*ext, 8, src.p, n);
    EXPECT_TRUE(ext->direct);
    AlignedHost back(n, 0);
    store.read(*ext, 8, back.p, n);
    EXPECT_EQ(first_difference(back.p, data.data(), n), -1) << "cut " << cut;
  }
}

// PosixEnv keeps a write in flight while the caller works (io_uring) where
// the kernel lets it; elsewhere it says ENOSYS having run nothing.
TEST(PosixEnv, WriteDuringRunsTheWorkOnceWhileTheWriteIsInFlight) {
  ScratchDir dir;
  auto env = IoEnv::posix();
  const int fd = env->open_unlinked_file(dir.path());
  ASSERT_GE(fd, 0);
  const std::size_t n = 3 * 4096 + 17;
  const auto data = pattern(n, 40, false);
  const auto more = pattern(100, 41, false);
  struct iovec v[2] = {{const_cast<unsigned char*>(data.data()), 4096}, {const_cast<unsigned char*>(data.data()) + 4096, n - 4096}};
  int runs = 0;
  const ssize_t r = env->pwritev_during(fd, v, 2, 4096, [&] {
    ++runs;
    // Other calls on the environment may run meanwhile; another
    // pwritev_during may not (ENOSYS, nothing run).
    EXPECT_EQ(env->pwrite(fd, more.data(), more.size(), 0), static_cast<ssize_t>(more.size()));
    struct iovec w{const_cast<unsigned char*>(more.data()), more.size()};
    errno = 0;
    EXPECT_EQ(env->pwritev_during(fd, &w, 1, 0, [] { ADD_FAILURE() << "nested work ran"; }), -1);
    EXPECT_EQ(errno, ENOSYS);
  });
  if (r < 0 && errno == ENOSYS && runs == 0) {
    env->close(fd);
    GTEST_SKIP() << "no io_uring here (seccomp or kernel.io_uring_disabled): the disk tier uses plain system calls";
  }
  EXPECT_EQ(runs, 1);
  ASSERT_EQ(r, static_cast<ssize_t>(n));
  std::vector<unsigned char> back(n), head(more.size());
  ASSERT_EQ(env->pread(fd, back.data(), n, 4096), static_cast<ssize_t>(n));
  EXPECT_EQ(back, data);
  ASSERT_EQ(env->pread(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  EXPECT_EQ(head, more);
  // What the work throws comes out after the write has ended: the bytes are
  // in the file when the exception arrives.
  const auto second = pattern(n, 42, false);
  struct iovec s2{const_cast<unsigned char*>(second.data()), n};
  EXPECT_THROW(env->pwritev_during(fd, &s2, 1, 8 * 4096, [] { throw std::runtime_error("hash failed"); }),
               std::runtime_error);
  ASSERT_EQ(env->pread(fd, back.data(), n, 8 * 4096), static_cast<ssize_t>(n));
  EXPECT_EQ(back, second);
  // Errors of the write itself: -1 and errno, after the work ran.
  runs = 0;
  errno = 0;
  EXPECT_EQ(env->pwritev_during(-1, &s2, 1, 0, [&] { ++runs; }), -1);
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(runs, 1);
  env->close(fd);
}

// An environment that overlaps nothing but implements pwritev_during (the
// work, then the write), with faults on the write.
class DuringEnv : public testing::FaultyEnv {
 public:
  std::atomic<int> calls{0};
  std::atomic<int> fail_errno{0};  // the overlapped write fails with it
  std::atomic<std::size_t> max_io{~std::size_t{0}};  // ... or writes at most this much
  ssize_t pwritev_during(int fd, const struct iovec* iov, int count, off_t off,
                         const std::function<void()>& meanwhile) override {
    ++calls;
    meanwhile();
    if (const int err = fail_errno.load(); err != 0) {
      errno = err;
      return -1;
    }
    std::size_t left = max_io.load();
    std::vector<struct iovec> cut;
    for (int k = 0; k < count && left > 0; ++k) {
      cut.push_back({iov[k].iov_base, std::min(iov[k].iov_len, left)});
      left -= cut.back().iov_len;
    }
    return pwritev(fd, cut.data(), static_cast<int>(cut.size()), off);
  }
};

TEST(DirectIo, OverlappedWritesFinishShortOrRefusedOnesAndReportErrors) {
  ScratchDir dir;
  const std::size_t n = (std::size_t{1} << 20) + 5;
  const auto data = pattern(n, 43, false);
  AlignedHost src(data);
  struct Case {
    int fail;
    std::size_t max_io;
  };
  for (const Case c : {Case{0, ~std::size_t{0}}, Case{0, 3 * 4096}, Case{0, 1000}, Case{EINVAL, ~std::size_t{0}}}) {
    auto env = std::make_shared<DuringEnv>();
    env->fail_errno = c.fail;
    env->max_io = c.max_io;
    SpillStore store(direct_disk(dir, env));
    SKIP_WITHOUT_O_DIRECT(store);
    auto ext = store.reserve(n);
    store.write(*ext, 43, src.p, n);
    EXPECT_EQ(env->calls.load(), 1);
    EXPECT_TRUE(ext->direct);
    EXPECT_TRUE(ext->sum_in_memory) << "hashed during the write: the checksum stays in memory";
    AlignedHost back(n, 0);
    store.read(*ext, 43, back.p, n);
    EXPECT_EQ(first_difference(back.p, data.data(), n), -1) << "fail " << c.fail << " max_io " << c.max_io;
  }
  auto env = std::make_shared<DuringEnv>();
  SpillStore store(direct_disk(dir, env));
  auto ext = store.reserve(n);
  env->fail_errno = ENOSPC;
  try {
    store.write(*ext, 44, src.p, n);
    ADD_FAILURE() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_EQ(e.code().value(), ENOSPC);
    EXPECT_EQ(e.offset, ext->offset) << "header block and payload go in one write";
  }
  env->fail_errno = 0;
  env->write_errno = EIO;  // the pwrite underneath fails
  EXPECT_THROW(store.write(*ext, 44, src.p, n), IoError);
  env->write_errno = 0;
  store.write(*ext, 44, src.p, n);
  AlignedHost back(n, 0);
  store.read(*ext, 44, back.p, n);
  EXPECT_EQ(first_difference(back.p, data.data(), n), -1);
}

// Counts the vectored calls the store makes (each becomes one request to
// the device) and can fail them; overlaps like DuringEnv.
class VectorEnv : public testing::FaultyEnv {
 public:
  ssize_t pwritev_during(int fd, const struct iovec* iov, int count, off_t off,
                         const std::function<void()>& meanwhile) override {
    meanwhile();
    return pwritev(fd, iov, count, off);
  }
  std::atomic<int> writev_calls{0}, readv_calls{0};
  std::atomic<off_t> last_write_at{-1}, last_read_at{-1};
  std::atomic<std::size_t> last_write_bytes{0};
  std::atomic<int> fail_errno{0};
  ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t off) override {
    ++writev_calls;
    last_write_at = off;
    std::size_t n = 0;
    for (int k = 0; k < count; ++k) n += iov[k].iov_len;
    last_write_bytes = n;
    if (const int err = fail_errno.load(); err != 0) {
      errno = err;
      return -1;
    }
    return IoEnv::pwritev(fd, iov, count, off);
  }
  ssize_t preadv(int fd, const struct iovec* iov, int count, off_t off) override {
    ++readv_calls;
    last_read_at = off;
    if (const int err = fail_errno.load(); err != 0) {
      errno = err;
      return -1;
    }
    return IoEnv::preadv(fd, iov, count, off);
  }
};

TEST(DirectIo, ARawRecordInAlignedMemoryMovesInOneCallEachWay) {
  ScratchDir dir;
  auto env = std::make_shared<VectorEnv>();
  SpillStore store(direct_disk(dir, env));
  SKIP_WITHOUT_O_DIRECT(store);
  for (std::size_t n : {std::size_t{kDirectIoMinBytes}, (std::size_t{4} << 20) + 5, std::size_t{4} << 20}) {
    const auto data = pattern(n, n, false);
    AlignedHost src(data);
    auto ext = store.reserve(n);
    env->writev_calls = 0;
    store.write(*ext, 21, src.p, n);
    EXPECT_EQ(env->writev_calls.load(), 1) << n << " bytes: header block and payload in one write";
    EXPECT_EQ(env->last_write_at.load(), static_cast<off_t>(ext->offset));
    EXPECT_EQ(env->last_write_bytes.load(), kDirectAlign + whole_blocks(n));
    EXPECT_TRUE(ext->sum_in_memory);
    EXPECT_EQ(ext->payload_sum, XXH3_64bits(data.data(), n));
    AlignedHost back(n, 0);
    env->readv_calls = 0;
    store.read(*ext, 21, back.p, n);
    EXPECT_EQ(env->readv_calls.load(), 1) << n << " bytes: header block and payload in one read";
    EXPECT_EQ(env->last_read_at.load(), static_cast<off_t>(ext->offset));
    EXPECT_EQ(first_difference(back.p, data.data(), n), -1);
    // The checksum in memory is what the bytes are checked against.
    SpillExtent wrong = *ext;
    wrong.payload_sum ^= 1;
    EXPECT_THROW(store.read(wrong, 21, back.p, n), CorruptionError);
    AlignedHost unaligned(n, 8);  // header block first, then the payload slice by slice
    EXPECT_THROW(store.read(wrong, 21, unaligned.p, n), CorruptionError);
    SpillExtent forgot = *ext;
    forgot.sum_in_memory = false;
    EXPECT_THROW(store.read(forgot, 21, unaligned.p, n), CorruptionError) << "header flags say in memory";
    store.read(*ext, 21, unaligned.p, n);
    EXPECT_EQ(first_difference(unaligned.p, data.data(), n), -1);
    // Failures of either request are IoErrors; the store stays usable.
    env->fail_errno = EIO;
    EXPECT_THROW(store.read(*ext, 21, back.p, n), IoError);
    store.release(*ext);
    ext = store.reserve(n);
    env->fail_errno = ENOSPC;
    try {
      store.write(*ext, 22, src.p, n);
      ADD_FAILURE() << "expected IoError";
    } catch (const IoError& e) {
      EXPECT_EQ(e.code().value(), ENOSPC);
      EXPECT_EQ(e.offset, ext->offset);
    }
    env->fail_errno = 0;
    store.write(*ext, 22, src.p, n);
    store.read(*ext, 22, back.p, n);
    EXPECT_EQ(first_difference(back.p, data.data(), n), -1);
    store.release(*ext);
  }
}

TEST(SpillStore, FreedTailStaysUntilItReachesTheSlack) {
  ScratchDir dir;
  auto env = std::make_shared<RecordingEnv>();
  DiskOptions o = disk_in(dir.path(), Compression::None);
  o.env = env;
  o.tail_slack_bytes = 8 * kExtentBytes;
  SpillStore store(o);
  auto data = pattern(3 * kExtentBytes, 9, false);  // 4 extents with its header
  auto a = store.reserve(data.size());
  store.write(*a, 1, data.data(), data.size());
  auto b = store.reserve(data.size());
  store.write(*b, 2, data.data(), data.size());
  const auto end = store.stats().file_bytes;
  EXPECT_EQ(end, 8 * kExtentBytes);
  store.release(*b);  // 4 extents free at the end: under the slack
  EXPECT_EQ(env->truncations.load(), 0);
  EXPECT_EQ(store.stats().file_bytes, end) << "the file keeps its blocks";
  auto c = store.reserve(data.size());
  EXPECT_EQ(c->offset, b->offset) << "the next record overwrites them";
  store.write(*c, 3, data.data(), data.size());
  EXPECT_EQ(store.stats().file_bytes, end);
  store.release(*c);
  store.release(*a);  // now 8 extents free: the slack is reached
  EXPECT_EQ(env->truncations.load(), 1);
  EXPECT_EQ(env->last_truncate.load(), 0);
  EXPECT_EQ(store.stats().file_bytes, 0u);
  EXPECT_EQ(store.stats().used_bytes, 0u);

  // The slack is at most a quarter of the quota.
  auto env2 = std::make_shared<RecordingEnv>();
  o.env = env2;
  o.capacity_bytes = 16 * kExtentBytes;  // slack: min(8, 4) extents
  SpillStore small(o);
  auto d = small.reserve(data.size());
  small.write(*d, 4, data.data(), data.size());
  auto e = small.reserve(data.size());
  small.write(*e, 5, data.data(), data.size());
  small.release(*e);  // 4 extents: a quarter of the quota
  EXPECT_EQ(env2->truncations.load(), 1);
  EXPECT_EQ(env2->last_truncate.load(), static_cast<std::int64_t>(d->bytes));
}

}  // namespace
}  // namespace spillway::detail
