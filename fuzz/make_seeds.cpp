// fuzz/make_seeds.cpp — writes the seed corpora in fuzz/corpus/: records the
// real encoder wrote (raw and LZ4, several sizes) in record_decoder's input
// layout, typical SPILLWAY_* settings for options_env, and small access logs
// (with and without footer, markers, several threads) for access_log.
//   make_seeds DIR   (DIR/record_decoder/, DIR/options_env/, DIR/access_log/)
#include <xxhash.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "memory_env.hpp"
#include "src/record/log_writer.hpp"
#include "tiers/disk/spill_store.hpp"

namespace {

void save(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!f) {
    std::fprintf(stderr, "make_seeds: cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace spillway;
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir + "/record_decoder");
  std::filesystem::create_directories(dir + "/options_env");
  int n = 0;
  for (Compression c : {Compression::None, Compression::Lz4}) {
    for (std::size_t size : {std::size_t{1}, std::size_t{100}, std::size_t{5000}, std::size_t{70000}}) {
      std::vector<unsigned char> data(size);
      for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<unsigned char>((i / 7) * 31 + (i % 3));
      auto env = std::make_shared<fuzz::MemoryEnv>();
      DiskOptions o;
      o.env = env;
      o.compression = c;
      detail::SpillStore store(o);
      auto extent = store.reserve(size);
      store.write(*extent, 7, data.data(), size);
      std::vector<unsigned char> input = {0, static_cast<unsigned char>(size & 0xff),
                                          static_cast<unsigned char>((size >> 8) & 0xff),
                                          static_cast<unsigned char>((size >> 16) & 0xff)};
      // The record as written (the file may end before the extent does).
      const std::size_t end = std::min<std::size_t>(env->file.size(), extent->offset + extent->bytes);
      input.insert(input.end(), env->file.begin() + static_cast<long>(extent->offset),
                   env->file.begin() + static_cast<long>(end));
      save(dir + "/record_decoder/seed-" + std::to_string(n++), input);
      // The same record in the direct layout (flag bits 5 and 6: a 4 KiB
      // header block with the layout flag set, the payload at +4096, read
      // into aligned memory).
      std::vector<unsigned char> direct(input.begin(), input.begin() + 4);
      direct[0] = 32 | 64;
      std::vector<unsigned char> header(input.begin() + 4, input.begin() + 4 + detail::kRecordHeaderBytes);
      header[11] = 1;
      const std::uint64_t sum = XXH3_64bits(header.data(), 56);
      std::memcpy(header.data() + 56, &sum, sizeof sum);
      direct.insert(direct.end(), header.begin(), header.end());
      direct.resize(4 + detail::kDirectAlign, 0);
      direct.insert(direct.end(), input.begin() + 4 + detail::kRecordHeaderBytes, input.end());
      direct.resize(4 + detail::kDirectAlign + (direct.size() - 4 - detail::kDirectAlign + detail::kDirectAlign - 1) /
                            detail::kDirectAlign * detail::kDirectAlign, 0);
      save(dir + "/record_decoder/seed-" + std::to_string(n++), direct);
    }
  }
  const std::vector<std::string> settings = {
      std::string(1, '\x00') + "64M\n" + std::string(1, '\x02') + "1.5G\n" + std::string(1, '\x08') + "lookahead",
      std::string(1, '\x01') + "simulated\n" + std::string(1, '\x07') + "lz4\n" + std::string(1, '\x09') + "4",
      std::string(1, '\x0a') + "0.8\n" + std::string(1, '\x0b') + "0.5\n" + std::string(1, '\x0c') + "250",
      std::string(1, '\x0e') + "2 MiB\n" + std::string(1, '\x0f') + "8\n" + std::string(1, '\x06') + "unlimited",
      std::string(1, '\x12') + "/tmp/t.json\n" + std::string(1, '\x13') + "1000\n" + std::string(1, '\x14') + "last",
  };
  for (std::size_t i = 0; i < settings.size(); ++i) {
    save(dir + "/options_env/seed-" + std::to_string(i), std::vector<unsigned char>(settings[i].begin(), settings[i].end()));
  }
  std::filesystem::create_directories(dir + "/access_log");
  int logs = 0;
  for (int variant = 0; variant < 4; ++variant) {
    record::AccessLog log;
    log.program = "seed";
    log.options.device_backend = "simulated";
    log.options.device_bytes = 1 << 20;
    log.options.host_bytes = 2 << 20;
    log.options.disk_bytes = kUnlimited;
    if (variant >= 2) log.markers = {"clear_session"};
    std::uint64_t t = 0;
    for (int i = 0; i < 8 * (variant + 1); ++i) {
      record::Event e;
      e.kind = static_cast<record::EventKind>(1 + i % 7);
      e.tier = static_cast<Tier>(i % 3);
      e.access = i % 2 ? Access::ReadWrite : Access::Read;
      e.thread = static_cast<std::uint32_t>(i % (variant + 1));
      e.time_ns = t += 1000 + 37 * static_cast<std::uint64_t>(i);
      e.buffer = 1 + static_cast<std::uint64_t>(i) / 3;
      e.value = e.kind == record::EventKind::Allocate ? 4096 : e.kind == record::EventKind::Hint ? 7 : 0;
      log.events.push_back(e);
    }
    if (variant >= 2) log.events.push_back({record::EventKind::Marker, Tier::Host, Access::Read, 0, t + 1, 0, 0});
    if (variant % 2 == 0) {
      record::RecordedTotals totals;
      totals.moves[0][1] = 3;
      totals.moved_bytes[0][1] = 3 * 4096;
      totals.events = log.events.size();
      log.totals = totals;
    }
    const std::vector<std::byte> bytes = record::encode_access_log(log, 5);
    std::vector<unsigned char> raw(bytes.size());
    std::memcpy(raw.data(), bytes.data(), bytes.size());
    save(dir + "/access_log/seed-" + std::to_string(logs++), raw);
  }
  std::printf("make_seeds: %d records, %zu settings, %d access logs in %s\n", n, settings.size(), logs, dir.c_str());
  return 0;
}
