// src/core/stats.cpp — PoolStats::to_string.
#include <cstdio>
#include <string>

#include "spillway/options.hpp"
#include "spillway/stats.hpp"

namespace spillway {

namespace {
std::string human(std::uint64_t b) {
  if (b == kUnlimited) return "unlimited";
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}
}  // namespace

std::string PoolStats::to_string() const {
  std::string out;
  char line[256];
  for (Tier t : {Tier::Device, Tier::Host, Tier::Disk}) {
    const TierStats& s = tier(t);
    if (!s.enabled) {
      std::snprintf(line, sizeof line, "%-6s off\n", std::string(tier_name(t)).c_str());
      out += line;
      continue;
    }
    std::snprintf(line, sizeof line,
                  "%-6s used %s of %s (clean %s, pinned %s, peak %s), %llu buffers, largest free "
                  "%s, fragmentation %.2f\n",
                  std::string(tier_name(t)).c_str(), human(s.used_bytes).c_str(),
                  human(s.capacity_bytes).c_str(), human(s.clean_bytes).c_str(),
                  human(s.pinned_bytes).c_str(), human(s.peak_bytes).c_str(),
                  static_cast<unsigned long long>(s.buffers), human(s.largest_free_bytes).c_str(),
                  s.fragmentation);
    out += line;
  }
  for (Tier from : {Tier::Device, Tier::Host, Tier::Disk}) {
    for (Tier to : {Tier::Device, Tier::Host, Tier::Disk}) {
      const MoveStats& m = move(from, to);
      if (m.moves == 0) continue;
      std::snprintf(line, sizeof line, "moves  %s -> %s: %llu moves, %s (%s stored), %.3f s\n",
                    std::string(tier_name(from)).c_str(), std::string(tier_name(to)).c_str(),
                    static_cast<unsigned long long>(m.moves), human(m.bytes).c_str(),
                    human(m.stored_bytes).c_str(), m.seconds);
      out += line;
    }
  }
  std::snprintf(line, sizeof line,
                "evictions: %llu pressure, %llu proactive, %llu explicit (%llu clean, no write)\n"
                "pins: %llu (%llu waited, %.3f s stalled); live buffers: %llu\n"
                "errors: %llu spill write, %llu fetch, %llu corruption, %llu out-of-memory, %llu "
                "timeouts\n",
                static_cast<unsigned long long>(evictions[0]),
                static_cast<unsigned long long>(evictions[1]),
                static_cast<unsigned long long>(evictions[2]),
                static_cast<unsigned long long>(clean_evictions),
                static_cast<unsigned long long>(pins), static_cast<unsigned long long>(pin_waits),
                stall_seconds, static_cast<unsigned long long>(live_buffers),
                static_cast<unsigned long long>(errors.spill_write_failures),
                static_cast<unsigned long long>(errors.fetch_failures),
                static_cast<unsigned long long>(errors.corruptions),
                static_cast<unsigned long long>(errors.out_of_memory),
                static_cast<unsigned long long>(errors.timeouts));
  out += line;
  return out;
}

}  // namespace spillway
