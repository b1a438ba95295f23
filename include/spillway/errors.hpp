// spillway/errors.hpp — the exceptions spillway throws.
//
// Every failure that can cost a user bytes or time ends in one of these, with
// a message that names what was asked and what was in the way:
//   OutOfMemory      no room could be made on a tier within the pressure wait
//   IoError          a spill file operation failed (file, offset, errno)
//   CorruptionError  a stored record failed its checks (buffer, record, sums)
// Usage errors (a pin on a tier the pool does not have, a buffer used after
// its pool was destroyed) throw std::invalid_argument / std::logic_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "spillway/tier.hpp"

namespace spillway {

// Thrown when `bytes` could not be placed on `tier` (nor, for allocate, on
// any slower tier). `pinned_by_label` lists what held the room.
struct OutOfMemory : std::bad_alloc {
  OutOfMemory(Tier tier, std::size_t bytes, std::string detail,
              std::vector<std::pair<std::string, std::size_t>> pinned_by_label = {});
  const char* what() const noexcept override { return message_.c_str(); }

  Tier tier;
  std::size_t bytes_requested;
  std::vector<std::pair<std::string, std::size_t>> pinned_by_label;

 private:
  std::string message_;
};

// A spill-file read or write failed. code() carries errno.
struct IoError : std::system_error {
  IoError(int err, std::string file, std::uint64_t offset, std::string operation);
  std::string file;
  std::uint64_t offset;
  std::string operation;
};

// A record read back from disk does not match what was written.
struct CorruptionError : std::runtime_error {
  CorruptionError(std::uint64_t buffer_id, std::uint64_t record_offset, std::string what_failed,
                  std::uint64_t expected_checksum, std::uint64_t actual_checksum);
  std::uint64_t buffer_id;
  std::uint64_t record_offset;
  std::uint64_t expected_checksum;
  std::uint64_t actual_checksum;
};

}  // namespace spillway
