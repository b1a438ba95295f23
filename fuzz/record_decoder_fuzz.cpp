// fuzz/record_decoder_fuzz.cpp — libFuzzer target for the disk tier's
// record decoder (SpillStore::read): whatever bytes sit in the spill file,
// reading a record either returns the buffer's bytes or throws
// CorruptionError / IoError — never crashes, overruns, hangs or allocates
// without bound.
//
// Input: 1 flag byte, 3 bytes of requested raw size (at most 1 MiB), then the
// record (header + payload) as it would sit in the file. Checksums stop
// random bytes at the first check, so the flags let the fuzzer ask the
// harness to make parts of the header consistent first and reach the codec
// paths behind them: bit 0 sets magic and version, bit 1 the buffer id,
// bit 2 the raw size, bit 3 the payload checksum (over the stored bytes the
// header declares), bit 4 the header checksum (last). Bit 5 reads the record
// as the direct layout (header block of 4 KiB, payload at +4096; bit 0 then
// also sets the layout flag), bit 6 into 4 KiB-aligned memory (the one-read
// path of direct records), bit 7 with the payload checksum in memory (the
// extent carries the XXH3 of the raw-size bytes after the header block; bit 0
// then also sets the header's flag for it).
#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "memory_env.hpp"
#include "spillway/errors.hpp"
#include "tiers/disk/spill_store.hpp"

namespace {

constexpr std::uint64_t kBufferId = 7;

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spillway;
  if (size < 4) return 0;
  const unsigned flags = data[0];
  const std::size_t raw = (static_cast<std::size_t>(data[1]) | static_cast<std::size_t>(data[2]) << 8 |
                           static_cast<std::size_t>(data[3]) << 16) % ((1u << 20) + 1);
  std::vector<unsigned char> record(data + 4, data + size);
  const bool direct = (flags & 32) != 0;
  const bool in_memory = (flags & 128) != 0;
  const std::size_t hdr = direct ? detail::kDirectAlign : detail::kRecordHeaderBytes;
  if (record.size() >= hdr) {
    unsigned char* h = record.data();
    if (flags & 1) {
      std::memcpy(h, "SPILLWY1", 8);
      put<std::uint16_t>(h + 8, 1);
      h[11] = static_cast<unsigned char>((direct ? 1 : 0) | (direct && in_memory ? 2 : 0));
    }
    if (flags & 2) put<std::uint64_t>(h + 16, kBufferId);
    if (flags & 4) put<std::uint64_t>(h + 24, raw);
    if (flags & 8) {
      const std::uint64_t stored = get<std::uint64_t>(h + 32);
      const std::size_t avail = record.size() - hdr;
      if (stored <= avail) put<std::uint64_t>(h + 40, XXH3_64bits(h + hdr, stored));
    }
    if (flags & 16) put<std::uint64_t>(h + 56, XXH3_64bits(h, 56));
  }
  auto env = std::make_shared<fuzz::MemoryEnv>();
  env->file = record;
  DiskOptions o;
  o.env = env;
  detail::SpillStore store(o);
  const std::uint64_t extent_bytes = (record.size() + detail::kExtentBytes - 1) / detail::kExtentBytes *
                                     detail::kExtentBytes;
  // Room for an aligned start inside; bit 6 uses it.
  std::vector<unsigned char> out(raw + detail::kDirectAlign);
  unsigned char* dst = out.data();
  if (flags & 64) {
    const auto at = reinterpret_cast<std::uintptr_t>(dst);
    dst += (detail::kDirectAlign - at % detail::kDirectAlign) % detail::kDirectAlign;
  }
  try {
    detail::SpillExtent extent{0, extent_bytes, direct};
    if (in_memory) {
      extent.sum_in_memory = true;
      if (record.size() >= hdr + raw) extent.payload_sum = XXH3_64bits(record.data() + hdr, raw);
    }
    store.read(extent, kBufferId, dst, raw);
  } catch (const CorruptionError&) {
  } catch (const IoError&) {
  }
  return 0;
}
