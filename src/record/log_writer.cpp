// src/record/log_writer.cpp — the encoder side of the access log format
// (log_format.hpp): the header, block headers, marker and footer payloads,
// and encode_access_log().
#include "src/record/log_writer.hpp"

#include <xxhash.h>

#include <algorithm>
#include <stdexcept>

#include "src/record/log_format.hpp"

namespace spillway::record {

namespace format {

std::vector<std::byte> encode_header(const std::string& program, const RecordedOptions& o) {
  const std::string backend = o.device_backend.substr(0, 255);
  const std::string name = program.substr(0, kMaxProgramBytes);
  std::vector<std::byte> out;
  const std::size_t header_bytes = kHeaderMinBytes + kHeaderFlagsBytes + backend.size() + name.size();
  out.reserve(header_bytes);
  for (char c : kMagic) out.push_back(static_cast<std::byte>(c));
  put_u32(out, kVersion);
  put_u32(out, static_cast<std::uint32_t>(header_bytes));
  put_u64(out, o.device_bytes);
  put_u64(out, o.host_bytes);
  put_u64(out, o.disk_bytes);
  put_f64(out, o.high_watermark);
  put_f64(out, o.low_watermark);
  put_u32(out, o.io_threads);
  put_u8(out, o.disk_enabled ? 1 : 0);
  put_u8(out, static_cast<std::uint8_t>(o.policy));
  put_u8(out, static_cast<std::uint8_t>(o.compression));
  put_u8(out, static_cast<std::uint8_t>(backend.size()));
  for (char c : backend) out.push_back(static_cast<std::byte>(c));
  put_u16(out, static_cast<std::uint16_t>(name.size()));
  for (char c : name) out.push_back(static_cast<std::byte>(c));
  put_u8(out, o.deterministic_moves ? kFlagDeterministic : 0);
  put_u64(out, XXH3_64bits(out.data(), out.size()));
  return out;
}

std::uint64_t block_checksum(BlockType type, std::uint32_t payload_bytes, std::uint32_t count,
                             const std::byte* payload) {
  std::vector<std::byte> head;
  head.reserve(9);
  put_u8(head, static_cast<std::uint8_t>(type));
  put_u32(head, payload_bytes);
  put_u32(head, count);
  return XXH3_64bits_withSeed(payload, payload_bytes, XXH3_64bits(head.data(), head.size()));
}

void put_block_header(std::vector<std::byte>& out, BlockType type, std::uint32_t count, const std::byte* payload,
                      std::size_t payload_bytes) {
  if (payload_bytes > kMaxBlockPayload) {
    throw std::length_error("spillway access log: a block of " + std::to_string(payload_bytes) +
                            " bytes is over the format's limit of " + std::to_string(kMaxBlockPayload));
  }
  const auto len = static_cast<std::uint32_t>(payload_bytes);
  put_u8(out, static_cast<std::uint8_t>(type));
  put_u32(out, len);
  put_u32(out, count);
  put_u64(out, block_checksum(type, len, count, payload));
}

std::vector<std::byte> encode_marker_names(const std::vector<std::string>& names) {
  std::vector<std::byte> out;
  for (const std::string& n : names) {
    std::byte tmp[10];
    const std::byte* end = put_varint(tmp, n.size());
    out.insert(out.end(), static_cast<const std::byte*>(tmp), end);
    for (char c : n) out.push_back(static_cast<std::byte>(c));
  }
  return out;
}

std::vector<std::byte> encode_footer(const RecordedTotals& t) {
  std::vector<std::byte> out;
  out.reserve(kFooterFixedBytes + t.stop_reason.size());
  for (const auto& row : t.moved_bytes) {
    for (std::uint64_t v : row) put_u64(out, v);
  }
  for (const auto& row : t.moves) {
    for (std::uint64_t v : row) put_u64(out, v);
  }
  put_u64(out, t.events);
  put_u64(out, t.dropped);
  const std::string reason = t.stop_reason.substr(0, kMaxReasonBytes);
  put_u16(out, static_cast<std::uint16_t>(reason.size()));
  for (char c : reason) out.push_back(static_cast<std::byte>(c));
  return out;
}

}  // namespace format

namespace {

void append_block(std::vector<std::byte>& out, format::BlockType type, std::uint32_t count,
                  const std::vector<std::byte>& payload) {
  format::put_block_header(out, type, count, payload.data(), payload.size());
  out.insert(out.end(), payload.begin(), payload.end());
}

}  // namespace

std::vector<std::byte> encode_access_log(const AccessLog& log, std::size_t events_per_block) {
  events_per_block = std::clamp<std::size_t>(events_per_block, 1, format::kMaxBlockPayload / format::kMaxEventBytes);
  std::vector<std::byte> out = format::encode_header(log.program, log.options);
  if (!log.markers.empty()) {
    append_block(out, format::BlockType::Markers, static_cast<std::uint32_t>(log.markers.size()),
                 format::encode_marker_names(log.markers));
  }
  std::vector<std::byte> payload;
  for (std::size_t first = 0; first < log.events.size(); first += events_per_block) {
    const std::size_t n = std::min(events_per_block, log.events.size() - first);
    payload.resize(n * format::kMaxEventBytes);
    std::byte* p = payload.data();
    format::DeltaState d;
    for (std::size_t i = first; i < first + n; ++i) p = format::put_event(p, log.events[i], d);
    payload.resize(static_cast<std::size_t>(p - payload.data()));
    append_block(out, format::BlockType::Events, static_cast<std::uint32_t>(n), payload);
  }
  if (log.totals) append_block(out, format::BlockType::Footer, 0, format::encode_footer(*log.totals));
  return out;
}

}  // namespace spillway::record
