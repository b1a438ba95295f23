// src/record/log_format.hpp — the byte layout of an access log file, shared
// by the encoder (log_writer), the recording pool (access_recorder) and the
// decoder (log_reader). docs/record-format.md describes the same layout for
// people; a change here is a new format version there.
//
// Everything is little-endian. A file is a header, then blocks:
//
//   header   magic "SPWYALOG", u32 version, u32 header length, the recorded
//            options, the backend and program names, XXH3-64 of all of it
//   block    u8 type, u32 payload length, u32 count, u64 checksum, payload;
//            the checksum is XXH3-64 of the payload seeded with XXH3-64 of
//            the 9 bytes of type, length and count, so that a flipped bit
//            anywhere in a block, its header included, is caught
//
// Event payloads are varint-coded with deltas against the event before in
// the same block, so a block decodes on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "src/record/access_log.hpp"

namespace spillway::record::format {

inline constexpr char kMagic[8] = {'S', 'P', 'W', 'Y', 'A', 'L', 'O', 'G'};
// The version this build writes. It reads kOldestVersion to kVersion.
// Version 2 added the header's flags byte (deterministic_moves).
inline constexpr std::uint32_t kVersion = 2;
inline constexpr std::uint32_t kOldestVersion = 1;

// Header: magic(8) version(4) header_bytes(4) device(8) host(8) disk(8)
// high(8) low(8) io_threads(4) disk_enabled(1) policy(1) compression(1)
// backend_len(1) = 64 fixed bytes, then backend, u16 program length,
// program, then (version 2 on) u8 flags, then u64 checksum.
inline constexpr std::size_t kHeaderFixedBytes = 64;
inline constexpr std::size_t kHeaderMinBytes = kHeaderFixedBytes + 2 + 8;  // version 1
inline constexpr std::size_t kHeaderFlagsBytes = 1;                         // version 2 on
// The header's flags byte: bit 0 deterministic_moves; the other bits are 0
// (a reader refuses a log that sets one it does not know).
inline constexpr std::uint8_t kFlagDeterministic = 0x01;
inline constexpr std::uint8_t kKnownFlags = kFlagDeterministic;
inline constexpr std::size_t kMaxProgramBytes = 4096;  // longer names are cut (never a bigger field)
inline constexpr std::size_t kMaxReasonBytes = 4096;   // the footer's stop reason, likewise

enum class BlockType : std::uint8_t {
  Events = 1,   // count events
  Markers = 2,  // count marker names, appended to AccessLog::markers in file order
  Footer = 3,   // RecordedTotals; the last block of a complete log; count 0
};
inline constexpr std::size_t kBlockHeaderBytes = 1 + 4 + 4 + 8;
// A writer never makes a bigger block; the reader refuses one (a length
// field cannot make it allocate more than this, or than the file holds).
inline constexpr std::uint32_t kMaxBlockPayload = 16u << 20;
// Each event takes at least this many bytes (kind byte, thread, time and
// buffer varints): a count above payload / kMinEventBytes is refused at once.
inline constexpr std::uint32_t kMinEventBytes = 4;
// The longest event: kind byte, thread (5), time (10), buffer (10), value (10).
inline constexpr std::size_t kMaxEventBytes = 1 + 5 + 10 + 10 + 10;
// Footer payload: moved_bytes[3][3], moves[3][3], events, dropped (20 u64),
// then u16 length and the stop reason.
inline constexpr std::size_t kFooterFixedBytes = 20 * 8 + 2;

// The event's first byte: kind in bits 0-3, tier in bits 4-5, access in
// bit 6, bit 7 set when a value varint follows (a value of 0 is left out).
inline constexpr std::uint8_t kHasValue = 0x80;
inline std::uint8_t pack_kind_byte(const Event& e) {
  return static_cast<std::uint8_t>(static_cast<unsigned>(e.kind) | (static_cast<unsigned>(e.tier) << 4) |
                                   (e.access == Access::ReadWrite ? 0x40u : 0u) | (e.value != 0 ? kHasValue : 0u));
}

inline std::uint64_t zigzag(std::int64_t v) {
  return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
}
inline std::int64_t unzigzag(std::uint64_t v) {
  return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
}

// Writes v as a LEB128 varint at p; returns the byte after it.
inline std::byte* put_varint(std::byte* p, std::uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<std::byte>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<std::byte>(v);
  return p;
}

// The running state of an events block's deltas.
struct DeltaState {
  std::uint64_t time_ns = 0;
  std::uint64_t buffer = 0;
};

// Encodes one event at p (at most kMaxEventBytes); returns the byte after it.
inline std::byte* put_event(std::byte* p, const Event& e, DeltaState& d) {
  *p++ = static_cast<std::byte>(pack_kind_byte(e));
  p = put_varint(p, e.thread);
  p = put_varint(p, zigzag(static_cast<std::int64_t>(e.time_ns - d.time_ns)));
  p = put_varint(p, zigzag(static_cast<std::int64_t>(e.buffer - d.buffer)));
  if (e.value != 0) p = put_varint(p, e.value);
  d.time_ns = e.time_ns;
  d.buffer = e.buffer;
  return p;
}

// Little-endian fixed-width fields into a byte vector.
inline void put_u8(std::vector<std::byte>& out, std::uint8_t v) { out.push_back(static_cast<std::byte>(v)); }
inline void put_u16(std::vector<std::byte>& out, std::uint16_t v) {
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}
inline void put_u32(std::vector<std::byte>& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}
inline void put_u64(std::vector<std::byte>& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::byte>(v >> (8 * i)));
}
inline void put_f64(std::vector<std::byte>& out, double v) {
  std::uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_u64(out, bits);
}
inline std::uint64_t get_le(const std::byte* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

// The header of a log: the bytes up to the first block.
std::vector<std::byte> encode_header(const std::string& program, const RecordedOptions& options);
// The 17-byte block header for `payload` (checksummed as described above).
void put_block_header(std::vector<std::byte>& out, BlockType type, std::uint32_t count,
                      const std::byte* payload, std::size_t payload_bytes);
// The checksum a block header carries.
std::uint64_t block_checksum(BlockType type, std::uint32_t payload_bytes, std::uint32_t count,
                             const std::byte* payload);
// A Markers block's payload: each name as a varint length and its bytes.
std::vector<std::byte> encode_marker_names(const std::vector<std::string>& names);
// A Footer block's payload.
std::vector<std::byte> encode_footer(const RecordedTotals& totals);

}  // namespace spillway::record::format
