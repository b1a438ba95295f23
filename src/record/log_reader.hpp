// src/record/log_reader.hpp — decoding an access log file (docs/record-format.md).
#pragma once

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

#include "src/record/access_log.hpp"

namespace spillway::record {

// A log that cannot be decoded: truncated, a checksum that does not match,
// an unknown version or event kind. what() names the byte offset.
class LogFormatError : public std::runtime_error {
 public:
  LogFormatError(std::uint64_t offset, const std::string& what);
  std::uint64_t offset() const { return offset_; }

 private:
  std::uint64_t offset_;
};

// Decodes a whole log from memory or from a file. Throws LogFormatError for
// a bad log and IoError when the file cannot be read.
AccessLog decode_access_log(std::span<const std::byte> bytes);
AccessLog read_access_log(const std::string& path);

}  // namespace spillway::record
