// src/record/log_reader.cpp — STUB until the log format lands: every call throws.
#include "src/record/log_reader.hpp"

namespace spillway::record {

LogFormatError::LogFormatError(std::uint64_t offset, const std::string& what)
    : std::runtime_error("spillway access log: at byte " + std::to_string(offset) + ": " + what), offset_(offset) {}

AccessLog decode_access_log(std::span<const std::byte>) {
  throw LogFormatError(0, "the access-log decoder is not built yet");
}
AccessLog read_access_log(const std::string&) {
  throw LogFormatError(0, "the access-log decoder is not built yet");
}

}  // namespace spillway::record
