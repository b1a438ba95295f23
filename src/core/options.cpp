// src/core/options.cpp — defaults, validation and SPILLWAY_* environment
// parsing for PoolOptions.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

#include "spillway/options.hpp"

namespace spillway {

namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\n");
  return s.substr(b, e - b + 1);
}

[[noreturn]] void bad(const char* what, const std::string& text, const char* expected) {
  throw std::invalid_argument(std::string("spillway: ") + what + ": cannot parse '" + text +
                              "' (expected " + expected + ")");
}

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : nullptr;
}

bool parse_bool(const std::string& text, const char* what) {
  const std::string t = lower(trim(text));
  if (t == "1" || t == "true" || t == "yes" || t == "on") return true;
  if (t == "0" || t == "false" || t == "no" || t == "off") return false;
  bad(what, text, "1/0, true/false, yes/no or on/off");
}

double parse_fraction(const std::string& text, const char* what) {
  const std::string t = trim(text);
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size() || errno != 0 || !std::isfinite(v)) {
    bad(what, text, "a number between 0 and 1");
  }
  return v;
}

std::uint64_t parse_count(const std::string& text, const char* what) {
  const std::string t = trim(text);
  if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos || t.size() > 18) {
    bad(what, text, "a non-negative integer");
  }
  return std::stoull(t);
}

}  // namespace

std::size_t HostOptions::default_capacity() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return std::size_t{1} << 30;
  return static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) / 4;
}

std::uint64_t parse_byte_size(const std::string& text, const char* what) {
  const std::string t = trim(text);
  if (lower(t) == "unlimited") return kUnlimited;
  std::size_t i = 0;
  while (i < t.size() && (std::isdigit(static_cast<unsigned char>(t[i])) || t[i] == '.')) ++i;
  if (i == 0) bad(what, text, "a size such as 4096, 64K, 1.5GiB or 'unlimited'");
  const std::string number = t.substr(0, i);
  if (number.find('.') != number.rfind('.')) bad(what, text, "a size such as 4096, 64K, 1.5GiB");
  std::string unit = lower(trim(t.substr(i)));
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();  // "KiB" -> "ki", "MB" -> "m"
  if (unit.size() == 2 && unit[1] == 'i') unit.pop_back();   // "ki" -> "k"
  double mult = 1;
  if (unit.empty()) mult = 1;
  else if (unit == "k") mult = 1024.0;
  else if (unit == "m") mult = 1024.0 * 1024;
  else if (unit == "g") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t") mult = 1024.0 * 1024 * 1024 * 1024;
  else bad(what, text, "a unit of B, K, M, G or T (binary multiples)");
  // At least one digit ("." alone is not a number; found by fuzz/options_env_fuzz).
  if (number.find_first_of("0123456789") == std::string::npos) {
    bad(what, text, "a size such as 4096, 64K, 1.5GiB");
  }
  const double v = std::strtod(number.c_str(), nullptr) * mult;
  if (!std::isfinite(v) || v < 0 || v >= 1.8e19) bad(what, text, "a size below 16 EiB");
  if (number.find('.') == std::string::npos && unit.empty()) return std::stoull(number);
  // Not llround: sizes past 2^63 do not fit a long long.
  return static_cast<std::uint64_t>(std::round(v));
}

PoolOptions PoolOptions::from_env() { return from_env(PoolOptions{}); }

PoolOptions PoolOptions::from_env(PoolOptions o) {
  if (const char* v = env("SPILLWAY_DEVICE_BYTES")) {
    o.device.capacity_bytes = lower(trim(v)) == "auto"
                                  ? kAutoCapacity
                                  : parse_byte_size(v, "SPILLWAY_DEVICE_BYTES");
  }
  if (const char* v = env("SPILLWAY_DEVICE_BACKEND")) {
    const std::string t = lower(trim(v));
    if (t == "auto") o.device.backend = DeviceBackend::Auto;
    else if (t == "cuda") o.device.backend = DeviceBackend::Cuda;
    else if (t == "simulated") o.device.backend = DeviceBackend::Simulated;
    else if (t == "none" || t == "off") o.device.backend = DeviceBackend::None;
    else bad("SPILLWAY_DEVICE_BACKEND", v, "auto, cuda, simulated or none");
  }
  if (const char* v = env("SPILLWAY_STAGING_BUFFER_BYTES")) {
    o.device.staging_buffer_bytes = parse_byte_size(v, "SPILLWAY_STAGING_BUFFER_BYTES");
  }
  if (const char* v = env("SPILLWAY_STAGING_BUFFERS")) {
    o.device.staging_buffers = static_cast<unsigned>(
        std::min<std::uint64_t>(parse_count(v, "SPILLWAY_STAGING_BUFFERS"), UINT_MAX));
  }
  if (const char* v = env("SPILLWAY_HOST_BYTES")) {
    o.host.capacity_bytes = parse_byte_size(v, "SPILLWAY_HOST_BYTES");
  }
  if (const char* v = env("SPILLWAY_HOST_PINNED")) o.host.pinned = parse_bool(v, "SPILLWAY_HOST_PINNED");
  if (const char* v = env("SPILLWAY_DISK")) o.disk.enabled = parse_bool(v, "SPILLWAY_DISK");
  if (const char* v = env("SPILLWAY_DISK_DIR")) o.disk.directory = v;
  if (const char* v = env("SPILLWAY_DISK_BYTES")) {
    o.disk.capacity_bytes = parse_byte_size(v, "SPILLWAY_DISK_BYTES");
  }
  if (const char* v = env("SPILLWAY_COMPRESSION")) {
    const std::string t = lower(trim(v));
    if (t == "adaptive") o.disk.compression = Compression::Adaptive;
    else if (t == "lz4") o.disk.compression = Compression::Lz4;
    else if (t == "none" || t == "off") o.disk.compression = Compression::None;
    else bad("SPILLWAY_COMPRESSION", v, "adaptive, lz4 or none");
  }
  if (const char* v = env("SPILLWAY_DISK_IO")) {
    const std::string t = lower(trim(v));
    if (t == "auto") o.disk.io = DiskIo::Auto;
    else if (t == "direct") o.disk.io = DiskIo::Direct;
    else if (t == "buffered") o.disk.io = DiskIo::Buffered;
    else bad("SPILLWAY_DISK_IO", v, "auto, direct or buffered");
  }
  if (const char* v = env("SPILLWAY_POLICY")) {
    const std::string t = lower(trim(v));
    if (t == "lru") o.policy = EvictionPolicy::Lru;
    else if (t == "lookahead") o.policy = EvictionPolicy::Lookahead;
    else bad("SPILLWAY_POLICY", v, "lru or lookahead");
  }
  if (const char* v = env("SPILLWAY_IO_THREADS")) {
    o.io_threads = static_cast<unsigned>(
        std::min<std::uint64_t>(parse_count(v, "SPILLWAY_IO_THREADS"), UINT_MAX));
  }
  if (const char* v = env("SPILLWAY_HIGH_WATERMARK")) {
    o.high_watermark = parse_fraction(v, "SPILLWAY_HIGH_WATERMARK");
  }
  if (const char* v = env("SPILLWAY_LOW_WATERMARK")) {
    o.low_watermark = parse_fraction(v, "SPILLWAY_LOW_WATERMARK");
  }
  if (const char* v = env("SPILLWAY_PRESSURE_WAIT_MS")) {
    o.pressure_wait = std::chrono::milliseconds(parse_count(v, "SPILLWAY_PRESSURE_WAIT_MS"));
  }
  if (const char* v = env("SPILLWAY_IO_TIMEOUT_MS")) {
    o.io_timeout = std::chrono::milliseconds(parse_count(v, "SPILLWAY_IO_TIMEOUT_MS"));
  }
  if (const char* v = env("SPILLWAY_METRICS_FILE")) o.metrics_file = v;
  if (const char* v = env("SPILLWAY_TRACE")) o.trace_file = v;
  if (const char* v = env("SPILLWAY_RECORD")) o.record_file = v;
  if (const char* v = env("SPILLWAY_DETERMINISTIC")) o.deterministic_moves = parse_bool(v, "SPILLWAY_DETERMINISTIC");
  if (const char* v = env("SPILLWAY_TRACE_MAX_EVENTS")) {
    o.trace_max_events = static_cast<std::size_t>(parse_count(v, "SPILLWAY_TRACE_MAX_EVENTS"));
  }
  if (const char* v = env("SPILLWAY_TRACE_KEEP")) {
    const std::string k = v;
    if (k == "first") o.trace_keep_last = false;
    else if (k == "last") o.trace_keep_last = true;
    else throw std::invalid_argument("spillway: SPILLWAY_TRACE_KEEP: expected 'first' or 'last', got '" + k + "'");
  }
  if (const char* v = env("SPILLWAY_METRICS_INTERVAL_MS")) {
    o.metrics_interval = std::chrono::milliseconds(parse_count(v, "SPILLWAY_METRICS_INTERVAL_MS"));
  }
  if (const char* v = env("SPILLWAY_LIVE_STATS")) o.live_stats = parse_bool(v, "SPILLWAY_LIVE_STATS");
  if (const char* v = env("SPILLWAY_LIVE_STATS_INTERVAL_MS")) {
    o.live_stats_interval =
        std::chrono::milliseconds(parse_count(v, "SPILLWAY_LIVE_STATS_INTERVAL_MS"));
  }
  o.validate();
  return o;
}

void PoolOptions::validate() const {
  auto fail = [](const std::string& msg) { throw std::invalid_argument("spillway: PoolOptions: " + msg); };
  if (io_threads < 1 || io_threads > 64) {
    fail("io_threads must be between 1 and 64 (got " + std::to_string(io_threads) + ")");
  }
  if (!(high_watermark > 0.0 && high_watermark <= 1.0)) {
    fail("high_watermark must be in (0, 1] (got " + std::to_string(high_watermark) + ")");
  }
  if (!(low_watermark >= 0.0 && low_watermark <= high_watermark)) {
    fail("low_watermark must be in [0, high_watermark] (got " + std::to_string(low_watermark) + ")");
  }
  if (pressure_wait.count() < 0) fail("pressure_wait must not be negative");
  if (io_timeout.count() <= 0) fail("io_timeout must be positive");
  if (device.cuda_device < 0) fail("device.cuda_device must not be negative");
  if (!trace_file.empty() && trace_max_events == 0) fail("trace_max_events must be positive when trace_file is set");
  if (!metrics_file.empty() && metrics_interval.count() <= 0) {
    fail("metrics_interval must be positive when metrics_file is set");
  }
  if (live_stats && live_stats_interval.count() <= 0) {
    fail("live_stats_interval must be positive when live_stats is set (got " +
         std::to_string(live_stats_interval.count()) + " ms)");
  }
  constexpr std::size_t MiB = std::size_t{1} << 20;
  if (device.staging_buffer_bytes == 0 || device.staging_buffer_bytes % MiB != 0 ||
      device.staging_buffer_bytes > 64 * MiB) {
    fail("device.staging_buffer_bytes must be a multiple of 1 MiB between 1 MiB and 64 MiB (got " +
         std::to_string(device.staging_buffer_bytes) + ")");
  }
  if (device.staging_buffers < 2 || device.staging_buffers > 64) {
    fail("device.staging_buffers must be between 2 and 64 (got " +
         std::to_string(device.staging_buffers) + ")");
  }
  if (disk.capacity_bytes == 0 && disk.enabled) {
    fail("disk.capacity_bytes is 0 with the disk tier enabled (set disk.enabled = false instead)");
  }
}

namespace detail {

// Read by every pool, like SPILLWAY_RECORD: `spillway record --deterministic`
// sets it for a program that builds its PoolOptions without from_env().
bool deterministic_moves_from_env() {
  const char* v = env("SPILLWAY_DETERMINISTIC");
  return v != nullptr && parse_bool(v, "SPILLWAY_DETERMINISTIC");
}

}  // namespace detail

}  // namespace spillway
