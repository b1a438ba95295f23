// src/core/errors.cpp — messages for the contract's exceptions.
#include "spillway/errors.hpp"

#include <cstdio>
#include <sstream>

namespace spillway {

namespace {

std::string hex64(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string oom_message(Tier tier, std::size_t bytes, const std::string& detail,
                        const std::vector<std::pair<std::string, std::size_t>>& pinned) {
  std::ostringstream os;
  os << "spillway: out of memory: cannot place " << bytes << " bytes on the " << tier_name(tier)
     << " tier";
  if (!detail.empty()) os << ": " << detail;
  if (!pinned.empty()) {
    os << "; pinned:";
    for (const auto& [label, n] : pinned) {
      os << ' ' << (label.empty() ? std::string("(unlabelled)") : label) << '=' << n;
    }
  }
  return os.str();
}

}  // namespace

OutOfMemory::OutOfMemory(Tier t, std::size_t bytes, std::string detail,
                         std::vector<std::pair<std::string, std::size_t>> pinned)
    : tier(t),
      bytes_requested(bytes),
      pinned_by_label(std::move(pinned)),
      message_(oom_message(t, bytes, detail, pinned_by_label)) {}

IoError::IoError(int err, std::string f, std::uint64_t off, std::string op)
    : std::system_error(err, std::generic_category(),
                        "spillway: " + op + " of '" + f + "' at offset " + std::to_string(off) +
                            " failed"),
      file(std::move(f)),
      offset(off),
      operation(std::move(op)) {}

CorruptionError::CorruptionError(std::uint64_t id, std::uint64_t record, std::string what_failed,
                                 std::uint64_t expected, std::uint64_t actual)
    : std::runtime_error("spillway: corrupt spill record for buffer " + std::to_string(id) +
                         " at file offset " + std::to_string(record) + ": " + what_failed +
                         " (expected " + hex64(expected) + ", found " + hex64(actual) + ")"),
      buffer_id(id),
      record_offset(record),
      expected_checksum(expected),
      actual_checksum(actual) {}

}  // namespace spillway
