// fuzz/access_log_fuzz.cpp — libFuzzer target for the access log decoder
// (src/record/log_reader.cpp): any input either decodes into an AccessLog or
// throws LogFormatError naming an offset inside the input — nothing else (no
// crash, no other exception, no allocation driven by a length field). A log
// that decodes must survive encode_access_log and decode again unchanged in
// its counts, markers, header and footer.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "src/record/log_reader.hpp"
#include "src/record/log_writer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace spillway::record;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  AccessLog log;
  try {
    log = decode_access_log(bytes);
  } catch (const LogFormatError& e) {
    if (e.offset() > size) {
      std::fprintf(stderr, "offset %llu is past the input's %zu bytes: %s\n",
                   static_cast<unsigned long long>(e.offset()), size, e.what());
      std::abort();
    }
    return 0;
  }
  const AccessLog again = decode_access_log(encode_access_log(log));
  if (again.events.size() != log.events.size() || again.markers != log.markers || again.totals != log.totals ||
      again.options != log.options || again.program != log.program) {
    std::fprintf(stderr, "a decoded log did not survive encode + decode\n");
    std::abort();
  }
  return 0;
}
