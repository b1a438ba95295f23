// fuzz/options_env_fuzz.cpp — libFuzzer target for PoolOptions::from_env and
// parse_byte_size: any value in any SPILLWAY_* variable either parses into
// options that validate() accepts, or throws std::invalid_argument naming
// the variable — nothing else (no crash, no other exception, no overflow).
//
// Input: lines "INDEX=VALUE"; INDEX (one byte, mod the table) picks the
// variable, VALUE is its value (NUL bytes end it, as in a real environment).
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "spillway/options.hpp"

namespace {

const char* const kVariables[] = {
    "SPILLWAY_DEVICE_BYTES", "SPILLWAY_DEVICE_BACKEND", "SPILLWAY_HOST_BYTES", "SPILLWAY_HOST_PINNED",
    "SPILLWAY_DISK", "SPILLWAY_DISK_DIR", "SPILLWAY_DISK_BYTES", "SPILLWAY_COMPRESSION", "SPILLWAY_POLICY",
    "SPILLWAY_IO_THREADS", "SPILLWAY_HIGH_WATERMARK", "SPILLWAY_LOW_WATERMARK", "SPILLWAY_PRESSURE_WAIT_MS",
    "SPILLWAY_IO_TIMEOUT_MS", "SPILLWAY_STAGING_BUFFER_BYTES", "SPILLWAY_STAGING_BUFFERS",
    "SPILLWAY_METRICS_FILE", "SPILLWAY_METRICS_INTERVAL_MS", "SPILLWAY_TRACE", "SPILLWAY_TRACE_MAX_EVENTS",
    "SPILLWAY_TRACE_KEEP", "SPILLWAY_LIVE_STATS", "SPILLWAY_LIVE_STATS_INTERVAL_MS", "SPILLWAY_RECORD",
};
constexpr std::size_t kCount = sizeof kVariables / sizeof kVariables[0];

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  for (const char* v : kVariables) ::unsetenv(v);
  std::vector<std::string> values;
  std::size_t i = 0;
  while (i + 1 < size) {
    const std::size_t which = data[i] % kCount;
    std::size_t j = i + 1;
    std::string value;
    while (j < size && data[j] != '\n') {
      if (data[j] == '\0') break;
      value.push_back(static_cast<char>(data[j]));
      ++j;
    }
    while (j < size && data[j] != '\n') ++j;
    ::setenv(kVariables[which], value.c_str(), 1);
    values.push_back(value);
    i = j + 1;
  }
  try {
    const spillway::PoolOptions o = spillway::PoolOptions::from_env();
    o.validate();  // from_env validated; a second look must agree
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).find("spillway") == std::string::npos) std::abort();  // must say whose error
  }
  for (const auto& v : values) {
    try {
      (void)spillway::parse_byte_size(v, "fuzz");
    } catch (const std::invalid_argument&) {
    }
  }
  return 0;
}
