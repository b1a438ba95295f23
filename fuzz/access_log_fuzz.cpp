// fuzz/access_log_fuzz.cpp — libFuzzer target for the access log decoder
// (src/record/log_reader.cpp): any input either decodes into an AccessLog or
// throws LogFormatError naming an offset inside the input — nothing else (no
// crash, no other exception, no allocation driven by a length field). A log
// that decodes must survive encode_access_log and decode again unchanged in
// its counts, markers, header and footer.
//
// Checksums would stop almost every mutation at the first block, so each
// input is decoded twice: as it is, and "resealed" (every checksum that can
// be located recomputed), which lets the fuzzer reach the field parsers.
#include <xxhash.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include <vector>

#include "src/record/log_format.hpp"
#include "src/record/log_reader.hpp"
#include "src/record/log_writer.hpp"

namespace {

using namespace spillway::record;

// Recomputes the header's and each block's checksum where the lengths say
// they are (stopping at the first length that overruns).
std::vector<std::byte> reseal(std::span<const std::byte> in) {
  std::vector<std::byte> b(in.begin(), in.end());
  if (b.size() < 16) return b;
  const std::uint64_t header = format::get_le(b.data() + 12, 4);
  if (header < 8 || header > b.size()) return b;
  const std::uint64_t sum = XXH3_64bits(b.data(), header - 8);
  for (int i = 0; i < 8; ++i) b[header - 8 + i] = static_cast<std::byte>(sum >> (8 * i));
  std::size_t pos = header;
  while (b.size() - pos >= format::kBlockHeaderBytes) {
    const auto type = static_cast<format::BlockType>(b[pos]);
    const auto len = static_cast<std::uint32_t>(format::get_le(b.data() + pos + 1, 4));
    const auto count = static_cast<std::uint32_t>(format::get_le(b.data() + pos + 5, 4));
    if (len > b.size() - pos - format::kBlockHeaderBytes) break;
    const std::uint64_t c = format::block_checksum(type, len, count, b.data() + pos + format::kBlockHeaderBytes);
    for (int i = 0; i < 8; ++i) b[pos + 9 + i] = static_cast<std::byte>(c >> (8 * i));
    pos += format::kBlockHeaderBytes + len;
  }
  return b;
}

void check(std::span<const std::byte> bytes) {
  const std::size_t size = bytes.size();
  AccessLog log;
  try {
    log = decode_access_log(bytes);
  } catch (const LogFormatError& e) {
    if (e.offset() > size) {
      std::fprintf(stderr, "offset %llu is past the input's %zu bytes: %s\n",
                   static_cast<unsigned long long>(e.offset()), size, e.what());
      std::abort();
    }
    return;
  }
  const AccessLog again = decode_access_log(encode_access_log(log));
  if (again.events.size() != log.events.size() || again.markers != log.markers || again.totals != log.totals ||
      again.options != log.options || again.program != log.program) {
    std::fprintf(stderr, "a decoded log did not survive encode + decode\n");
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  check(bytes);
  check(reseal(bytes));
  return 0;
}
