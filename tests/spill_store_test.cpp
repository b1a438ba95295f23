// tests/spill_store_test.cpp — the disk tier's records: round trips for every
// codec and size, checksums, injected faults, the private directory.
#include "tiers/disk/spill_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <thread>

#include "test_util.hpp"

namespace spillway::detail {
namespace {

using spillway::testing::fill_pattern;
using spillway::testing::find_mismatch;
using spillway::testing::ScratchDir;

DiskOptions disk_in(const std::string& dir, Compression c = Compression::Adaptive) {
  DiskOptions o;
  o.directory = dir;
  o.compression = c;
  return o;
}

std::vector<unsigned char> pattern(std::size_t n, std::uint64_t key, bool compressible) {
  std::vector<unsigned char> v(n);
  fill_pattern(v.data(), n, key, 0, compressible);
  return v;
}

TEST(SpillStore, RoundTripsEveryCodecAndSize) {
  ScratchDir dir;
  for (Compression c : {Compression::None, Compression::Lz4, Compression::Adaptive}) {
    SpillStore store(disk_in(dir.path(), c));
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{4095}, std::size_t{4096},
                          (std::size_t{1} << 20) + 3, std::size_t{5} << 20}) {
      for (int kind = 0; kind < 3; ++kind) {  // random, compressible, zeros
        std::vector<unsigned char> data = kind == 2 ? std::vector<unsigned char>(n, 0)
                                                    : pattern(n, n + kind, kind == 1);
        auto ext = store.reserve(n);
        ASSERT_TRUE(ext);
        const RecordInfo info = store.write(*ext, 42, data.data(), n);
        EXPECT_LE(info.stored_bytes, kRecordHeaderBytes + n);
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
  EXPECT_EQ(r.stored_bytes, n + kRecordHeaderBytes);
  std::vector<unsigned char> back(n);
  store.read(*ext, 1, back.data(), n);
  EXPECT_EQ(back, compressible);
  EXPECT_EQ(store.stats().stored_bytes, c.stored_bytes + r.stored_bytes);
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
  auto env = std::make_shared<RecordingEnv>();
  env->max_io = 1000;
  DiskOptions o = disk_in(dir.path(), Compression::None);
  o.env = env;
  SpillStore store(o);
  auto data = pattern(100000, 5, false);
  auto ext = store.reserve(data.size());
  store.write(*ext, 5, data.data(), data.size());
  std::vector<unsigned char> back(data.size());
  store.read(*ext, 5, back.data(), back.size());
  EXPECT_EQ(back, data);
  EXPECT_GT(env->writes.load(), 100u);
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
  }
  struct stat st{};
  EXPECT_NE(::lstat(path.c_str(), &st), 0) << "directory removed";
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

TEST(SpillStore, ConcurrentRecordsRoundTrip) {
  ScratchDir dir;
  SpillStore store(disk_in(dir.path(), Compression::Lz4));
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::size_t n = 1000 + static_cast<std::size_t>((t * 50 + i) * 997 % 300000);
        auto data = pattern(n, t * 1000 + i, i % 2 == 0);
        auto e = store.reserve(n);
        store.write(*e, t * 1000 + i, data.data(), n);
        std::vector<unsigned char> back(n);
        store.read(*e, t * 1000 + i, back.data(), n);
        if (back != data) ++bad;
        store.release(*e);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(store.stats().used_bytes, 0u);
}

}  // namespace
}  // namespace spillway::detail
