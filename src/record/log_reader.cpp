// src/record/log_reader.cpp — decoding an access log (log_format.hpp,
// docs/record-format.md).
//
// Every input gives an AccessLog or a LogFormatError naming the byte offset
// of what is wrong. Lengths and counts are checked against the bytes that
// are really there before anything is allocated from them, so a corrupt
// length can neither read past the input nor ask for a huge vector.
#include "src/record/log_reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <queue>
#include <unordered_map>

#include "spillway/errors.hpp"
#include "src/record/log_format.hpp"

namespace spillway::record {

LogFormatError::LogFormatError(std::uint64_t offset, const std::string& what)
    : std::runtime_error("spillway access log: at byte " + std::to_string(offset) + ": " + what), offset_(offset) {}

namespace {

using format::BlockType;

// A bounded view of the input that throws LogFormatError (naming the
// offset) instead of reading past its end.
class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, std::size_t begin, std::size_t end, const char* what)
      : bytes_(bytes), pos_(begin), end_(end), what_(what) {}
  std::size_t pos() const { return pos_; }
  std::size_t left() const { return end_ - pos_; }
  bool done() const { return pos_ == end_; }
  std::uint64_t fixed(int n) {
    need(static_cast<std::size_t>(n));
    const std::uint64_t v = format::get_le(bytes_.data() + pos_, n);
    pos_ += static_cast<std::size_t>(n);
    return v;
  }
  std::uint64_t varint() {
    const std::size_t at = pos_;
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const auto b = static_cast<std::uint8_t>(bytes_[pos_++]);
      if (shift == 63 && b > 1) throw LogFormatError(at, std::string("a varint in ") + what_ + " overflows 64 bits");
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    throw LogFormatError(at, std::string("a varint in ") + what_ + " is longer than 10 bytes");
  }
  std::string text(std::size_t n) {
    need(n);
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }

 private:
  void need(std::size_t n) const {
    if (n > end_ - pos_) {
      throw LogFormatError(pos_, std::string(what_) + " ends after " + std::to_string(end_ - pos_) +
                                     " more bytes where " + std::to_string(n) + " are needed");
    }
  }
  std::span<const std::byte> bytes_;
  std::size_t pos_, end_;
  const char* what_;
};

std::size_t decode_header(std::span<const std::byte> bytes, AccessLog& log) {
  if (bytes.size() < sizeof format::kMagic ||
      std::memcmp(bytes.data(), format::kMagic, sizeof format::kMagic) != 0) {
    throw LogFormatError(0, "not a spillway access log (the file does not begin with \"SPWYALOG\")");
  }
  Cursor c(bytes, sizeof format::kMagic, bytes.size(), "the header");
  log.version = static_cast<std::uint32_t>(c.fixed(4));
  if (log.version < format::kOldestVersion || log.version > format::kVersion) {
    throw LogFormatError(8, "unknown format version " + std::to_string(log.version) + " (this build reads versions " +
                                std::to_string(format::kOldestVersion) + " to " + std::to_string(format::kVersion) +
                                ")");
  }
  const std::uint64_t header_bytes = c.fixed(4);
  if (header_bytes < format::kHeaderMinBytes || header_bytes > bytes.size()) {
    throw LogFormatError(12, "the header length " + std::to_string(header_bytes) + " is outside " +
                                 std::to_string(format::kHeaderMinBytes) + ".." + std::to_string(bytes.size()) +
                                 " (the file's size)");
  }
  const std::size_t sum_at = static_cast<std::size_t>(header_bytes) - 8;
  const std::uint64_t stored = format::get_le(bytes.data() + sum_at, 8);
  const std::uint64_t actual = XXH3_64bits(bytes.data(), sum_at);
  if (stored != actual) throw LogFormatError(sum_at, "the header's checksum does not match its bytes");
  Cursor h(bytes, 16, sum_at, "the header");
  RecordedOptions& o = log.options;
  o.device_bytes = h.fixed(8);
  o.host_bytes = h.fixed(8);
  o.disk_bytes = h.fixed(8);
  const std::uint64_t high = h.fixed(8), low = h.fixed(8);
  std::memcpy(&o.high_watermark, &high, 8);
  std::memcpy(&o.low_watermark, &low, 8);
  // NaN fails both comparisons.
  if (!(o.high_watermark >= 0.0 && o.high_watermark <= 1.0)) {
    throw LogFormatError(40, "the high watermark " + std::to_string(o.high_watermark) + " is not in [0, 1]");
  }
  if (!(o.low_watermark >= 0.0 && o.low_watermark <= 1.0)) {
    throw LogFormatError(48, "the low watermark " + std::to_string(o.low_watermark) + " is not in [0, 1]");
  }
  o.io_threads = static_cast<unsigned>(h.fixed(4));
  const std::size_t flags_at = h.pos();
  const std::uint64_t disk = h.fixed(1), policy = h.fixed(1), compression = h.fixed(1);
  if (disk > 1) throw LogFormatError(flags_at, "disk_enabled is " + std::to_string(disk) + ", not 0 or 1");
  if (policy > static_cast<std::uint64_t>(EvictionPolicy::Lookahead)) {
    throw LogFormatError(flags_at + 1, "unknown eviction policy " + std::to_string(policy));
  }
  if (compression > static_cast<std::uint64_t>(Compression::None)) {
    throw LogFormatError(flags_at + 2, "unknown compression " + std::to_string(compression));
  }
  o.disk_enabled = disk == 1;
  o.policy = static_cast<EvictionPolicy>(policy);
  o.compression = static_cast<Compression>(compression);
  o.device_backend = h.text(static_cast<std::size_t>(h.fixed(1)));
  const std::size_t program_at = h.pos();
  const auto program_bytes = static_cast<std::size_t>(h.fixed(2));
  if (program_bytes > format::kMaxProgramBytes) {
    throw LogFormatError(program_at, "the program name's length " + std::to_string(program_bytes) +
                                         " is over the format's limit of " + std::to_string(format::kMaxProgramBytes));
  }
  log.program = h.text(program_bytes);
  if (log.version >= 2) {
    const std::size_t flags_byte_at = h.pos();
    const auto flags = static_cast<std::uint8_t>(h.fixed(1));
    if ((flags & ~format::kKnownFlags) != 0) {
      throw LogFormatError(flags_byte_at, "unknown header flags " + std::to_string(flags & ~format::kKnownFlags) +
                                              " (this build knows deterministic_moves, bit 0)");
    }
    o.deterministic_moves = (flags & format::kFlagDeterministic) != 0;
  }
  if (!h.done()) {
    throw LogFormatError(h.pos(), "the header says it is " + std::to_string(header_bytes) + " bytes, its fields end " +
                                      std::to_string(h.left()) + " bytes before that");
  }
  return static_cast<std::size_t>(header_bytes);
}

struct Decoded {
  Event event;
  std::size_t block;  // the block's offset, for errors found after decoding
};

void decode_events(Cursor& c, std::uint32_t count, std::size_t block_at, std::vector<Decoded>& out) {
  format::DeltaState d;
  for (std::uint32_t i = 0; i < count; ++i) {
    if (c.done()) {
      throw LogFormatError(c.pos(), "the block at " + std::to_string(block_at) + " says it holds " +
                                        std::to_string(count) + " events, its payload ends after " + std::to_string(i));
    }
    const std::size_t at = c.pos();
    const auto b = static_cast<std::uint8_t>(c.fixed(1));
    const unsigned kind = b & 0x0f, tier = (b >> 4) & 3;
    if (kind < static_cast<unsigned>(EventKind::Allocate) || kind > static_cast<unsigned>(EventKind::Marker)) {
      throw LogFormatError(at, "unknown event kind " + std::to_string(kind));
    }
    if (tier > static_cast<unsigned>(Tier::Disk)) throw LogFormatError(at, "unknown tier 3 in an event");
    Event e;
    e.kind = static_cast<EventKind>(kind);
    e.tier = static_cast<Tier>(tier);
    e.access = (b & 0x40) != 0 ? Access::ReadWrite : Access::Read;
    const std::size_t thread_at = c.pos();
    const std::uint64_t thread = c.varint();
    if (thread > UINT32_MAX) throw LogFormatError(thread_at, "thread number " + std::to_string(thread) + " is over 2^32");
    e.thread = static_cast<std::uint32_t>(thread);
    e.time_ns = d.time_ns + static_cast<std::uint64_t>(format::unzigzag(c.varint()));
    e.buffer = d.buffer + static_cast<std::uint64_t>(format::unzigzag(c.varint()));
    if ((b & format::kHasValue) != 0) {
      const std::size_t value_at = c.pos();
      e.value = c.varint();
      // The encoder leaves a zero value out: one written anyway would not
      // come back byte for byte.
      if (e.value == 0) throw LogFormatError(value_at, "an event's value is present but 0");
    }
    d.time_ns = e.time_ns;
    d.buffer = e.buffer;
    out.push_back({e, block_at});
  }
  if (!c.done()) {
    throw LogFormatError(c.pos(), "the block at " + std::to_string(block_at) + " holds " + std::to_string(c.left()) +
                                      " bytes after its " + std::to_string(count) + " events");
  }
}

RecordedTotals decode_footer(Cursor& c) {
  RecordedTotals t;
  for (auto& row : t.moved_bytes) {
    for (auto& v : row) v = c.fixed(8);
  }
  for (auto& row : t.moves) {
    for (auto& v : row) v = c.fixed(8);
  }
  t.events = c.fixed(8);
  t.dropped = c.fixed(8);
  const std::size_t reason_at = c.pos();
  const auto reason_bytes = static_cast<std::size_t>(c.fixed(2));
  if (reason_bytes > format::kMaxReasonBytes) {
    throw LogFormatError(reason_at, "the stop reason's length " + std::to_string(reason_bytes) +
                                        " is over the format's limit of " + std::to_string(format::kMaxReasonBytes));
  }
  t.stop_reason = c.text(reason_bytes);
  if (!c.done()) throw LogFormatError(c.pos(), "the footer has " + std::to_string(c.left()) + " bytes too many");
  return t;
}

// Per thread in file order; across threads by time, ties in file order (a
// k-way merge, so that a thread's own order is kept whatever its times say).
std::vector<Event> merge_threads(std::vector<Decoded>& decoded) {
  std::unordered_map<std::uint32_t, std::vector<std::size_t>> by_thread;
  for (std::size_t i = 0; i < decoded.size(); ++i) by_thread[decoded[i].event.thread].push_back(i);
  struct Head {
    std::uint64_t time;
    std::size_t index;  // into decoded (file order)
    const std::vector<std::size_t>* queue;
    std::size_t next;
    bool operator>(const Head& o) const { return time != o.time ? time > o.time : index > o.index; }
  };
  std::priority_queue<Head, std::vector<Head>, std::greater<>> heads;
  for (const auto& [thread, queue] : by_thread) {
    heads.push({decoded[queue[0]].event.time_ns, queue[0], &queue, 1});
  }
  std::vector<Event> out;
  out.reserve(decoded.size());
  while (!heads.empty()) {
    Head h = heads.top();
    heads.pop();
    out.push_back(decoded[h.index].event);
    if (h.next < h.queue->size()) {
      const std::size_t i = (*h.queue)[h.next];
      heads.push({decoded[i].event.time_ns, i, h.queue, h.next + 1});
    }
  }
  return out;
}

}  // namespace

AccessLog decode_access_log(std::span<const std::byte> bytes) {
  AccessLog log;
  std::size_t pos = decode_header(bytes, log);
  std::vector<Decoded> decoded;
  while (pos < bytes.size()) {
    const std::size_t at = pos;
    if (bytes.size() - pos < format::kBlockHeaderBytes) {
      throw LogFormatError(at, "a block header is cut off after " + std::to_string(bytes.size() - pos) + " of " +
                                   std::to_string(format::kBlockHeaderBytes) + " bytes (truncated log)");
    }
    const auto type = static_cast<std::uint8_t>(bytes[pos]);
    const auto len = static_cast<std::uint32_t>(format::get_le(bytes.data() + pos + 1, 4));
    const auto count = static_cast<std::uint32_t>(format::get_le(bytes.data() + pos + 5, 4));
    const std::uint64_t stored = format::get_le(bytes.data() + pos + 9, 8);
    const std::size_t payload_at = pos + format::kBlockHeaderBytes;
    if (type < static_cast<std::uint8_t>(BlockType::Events) || type > static_cast<std::uint8_t>(BlockType::Footer)) {
      throw LogFormatError(at, "unknown block type " + std::to_string(type));
    }
    if (len > format::kMaxBlockPayload) {
      throw LogFormatError(at + 1, "a block length of " + std::to_string(len) + " bytes is over the format's limit of " +
                                       std::to_string(format::kMaxBlockPayload));
    }
    if (len > bytes.size() - payload_at) {
      throw LogFormatError(at + 1, "the block's length of " + std::to_string(len) + " bytes overruns the file, which has " +
                                       std::to_string(bytes.size() - payload_at) + " bytes left (truncated log)");
    }
    const std::byte* payload = bytes.data() + payload_at;
    if (format::block_checksum(static_cast<BlockType>(type), len, count, payload) != stored) {
      throw LogFormatError(at + 9, "the checksum of the block at " + std::to_string(at) + " does not match its bytes");
    }
    Cursor c(bytes, payload_at, payload_at + len, "a block");
    switch (static_cast<BlockType>(type)) {
      case BlockType::Events:
        if (count > len / format::kMinEventBytes) {
          throw LogFormatError(at + 5, "the block says it holds " + std::to_string(count) + " events in " +
                                           std::to_string(len) + " bytes");
        }
        decoded.reserve(decoded.size() + count);
        decode_events(c, count, at, decoded);
        break;
      case BlockType::Markers:
        for (std::uint32_t i = 0; i < count; ++i) {
          if (c.done()) {
            throw LogFormatError(c.pos(), "the marker block at " + std::to_string(at) + " says it holds " +
                                              std::to_string(count) + " names, it ends after " + std::to_string(i));
          }
          const std::size_t len_at = c.pos();
          const std::uint64_t n = c.varint();
          if (n > c.left()) throw LogFormatError(len_at, "a marker name's length overruns its block");
          log.markers.push_back(c.text(static_cast<std::size_t>(n)));
        }
        if (!c.done()) throw LogFormatError(c.pos(), "the marker block has bytes after its names");
        break;
      case BlockType::Footer: {
        if (count != 0) throw LogFormatError(at + 5, "the footer's count is " + std::to_string(count) + ", not 0");
        log.totals = decode_footer(c);
        if (log.totals->events != decoded.size()) {
          throw LogFormatError(payload_at + 18 * 8, "the footer says " + std::to_string(log.totals->events) +
                                                        " events were written, the blocks hold " +
                                                        std::to_string(decoded.size()));
        }
        if (payload_at + len != bytes.size()) {
          throw LogFormatError(payload_at + len, std::to_string(bytes.size() - payload_at - len) +
                                                     " bytes follow the footer, which ends a log");
        }
        break;
      }
    }
    pos = payload_at + len;
  }
  for (const Decoded& d : decoded) {
    if (d.event.kind == EventKind::Marker && d.event.value >= log.markers.size()) {
      throw LogFormatError(d.block, "a marker event in the block at " + std::to_string(d.block) + " names marker " +
                                        std::to_string(d.event.value) + ", the log has " +
                                        std::to_string(log.markers.size()));
    }
  }
  log.events = merge_threads(decoded);
  return log;
}

AccessLog read_access_log(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(errno, path, 0, "opening the access log");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    throw IoError(err, path, 0, "reading the access log's size");
  }
  std::vector<std::byte> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::pread(fd, bytes.data() + got, bytes.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw IoError(err, path, got, "reading the access log");
    }
    if (n == 0) break;  // shrank while read: decode what is there
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  bytes.resize(got);
  return decode_access_log(bytes);
}

}  // namespace spillway::record
