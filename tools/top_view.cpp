// tools/top_view.cpp — see top_view.hpp.
#include "top_view.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "spillway/options.hpp"

namespace spillway::tools {

namespace {

constexpr Tier kTiers[] = {Tier::Device, Tier::Host, Tier::Disk};

// cur - prev of a counter; 0 when it went backwards (another pool).
std::uint64_t delta(std::uint64_t cur, std::uint64_t prev) { return cur > prev ? cur - prev : 0; }

int cells(std::uint64_t part, std::uint64_t whole, int width) {
  if (whole == 0 || whole == kUnlimited) return 0;
  const double f = std::min(1.0, static_cast<double>(part) / static_cast<double>(whole));
  return static_cast<int>(std::lround(f * width));
}

std::string name(Tier t) { return std::string(tier_name(t)); }

}  // namespace


std::string tier_bar(const TierStats& t, int width) {
  const int used = cells(t.used_bytes, t.capacity_bytes, width);
  const int pinned = std::min(used, cells(t.pinned_bytes, t.capacity_bytes, width));
  std::string bar = "[";
  bar.append(static_cast<std::size_t>(pinned), '#');
  bar.append(static_cast<std::size_t>(used - pinned), '=');
  bar.append(static_cast<std::size_t>(width - used), '.');
  bar += ']';
  return bar;
}

std::string render_top(const PoolStats& prev, const PoolStats& cur, double seconds) {
  const bool rates = seconds > 0;
  std::string out;
  char line[512];
  out += "tier    [# pinned  = used  . free]\n";
  for (Tier t : kTiers) {
    const TierStats& s = cur.tier(t);
    if (!s.enabled) {
      std::snprintf(line, sizeof line, "%-7s off\n", name(t).c_str());
      out += line;
      continue;
    }
    const std::string bar = s.capacity_bytes == kUnlimited ? "(no quota)" : tier_bar(s);
    std::snprintf(line, sizeof line, "%-7s %-*s  used %s  pinned %s  cap %s  buffers %llu",
                  name(t).c_str(), kTopBarWidth + 2, bar.c_str(), format_bytes(s.used_bytes).c_str(),
                  format_bytes(s.pinned_bytes).c_str(), format_bytes(s.capacity_bytes).c_str(),
                  static_cast<unsigned long long>(s.buffers));
    out += line;
    if (t == Tier::Disk) {
      std::snprintf(line, sizeof line, "  (stored %s, file %s)", format_bytes(cur.disk_stored_bytes).c_str(),
                    format_bytes(cur.disk_file_bytes).c_str());
      out += line;
    }
    out += '\n';
  }

  out += '\n';
  if (rates) {
    std::snprintf(line, sizeof line, "%-18s %10s %10s %12s %14s %10s\n", "moves", "count", "per s",
                  "bytes", "per s", "copying");
  } else {
    std::snprintf(line, sizeof line, "%-18s %10s %12s %10s\n", "moves", "count", "bytes", "copying");
  }
  out += line;
  bool any = false;
  for (Tier from : kTiers) {
    for (Tier to : kTiers) {
      const MoveStats& m = cur.move(from, to);
      if (m.moves == 0) continue;
      any = true;
      const std::string pair = "  " + name(from) + " -> " + name(to);
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.3f s", m.seconds);
      if (rates) {
        const MoveStats& p = prev.move(from, to);
        char mps[32], bps[32];
        std::snprintf(mps, sizeof mps, "%.1f", static_cast<double>(delta(m.moves, p.moves)) / seconds);
        std::snprintf(bps, sizeof bps, "%s/s",
                      format_bytes(static_cast<std::uint64_t>(
                                      std::llround(static_cast<double>(delta(m.bytes, p.bytes)) / seconds)))
                          .c_str());
        std::snprintf(line, sizeof line, "%-18s %10llu %10s %12s %14s %10s\n", pair.c_str(),
                      static_cast<unsigned long long>(m.moves), mps, format_bytes(m.bytes).c_str(), bps,
                      secs);
      } else {
        std::snprintf(line, sizeof line, "%-18s %10llu %12s %10s\n", pair.c_str(),
                      static_cast<unsigned long long>(m.moves), format_bytes(m.bytes).c_str(), secs);
      }
      out += line;
    }
  }
  if (!any) out += "  (none yet)\n";

  out += '\n';
  if (rates) {
    std::snprintf(line, sizeof line, "stall      %.3f s total, %.3f s per s\n", cur.stall_seconds,
                  std::max(0.0, cur.stall_seconds - prev.stall_seconds) / seconds);
    out += line;
    std::snprintf(line, sizeof line, "pins       %llu (%llu waited), %.1f per s\n",
                  static_cast<unsigned long long>(cur.pins),
                  static_cast<unsigned long long>(cur.pin_waits),
                  static_cast<double>(delta(cur.pins, prev.pins)) / seconds);
  } else {
    std::snprintf(line, sizeof line, "stall      %.3f s total\n", cur.stall_seconds);
    out += line;
    std::snprintf(line, sizeof line, "pins       %llu (%llu waited)\n",
                  static_cast<unsigned long long>(cur.pins),
                  static_cast<unsigned long long>(cur.pin_waits));
  }
  out += line;
  std::snprintf(line, sizeof line,
                "evictions  %llu pressure, %llu proactive, %llu explicit (%llu clean, no write)\n",
                static_cast<unsigned long long>(cur.evictions[0]),
                static_cast<unsigned long long>(cur.evictions[1]),
                static_cast<unsigned long long>(cur.evictions[2]),
                static_cast<unsigned long long>(cur.clean_evictions));
  out += line;
  const ErrorStats& e = cur.errors;
  std::snprintf(line, sizeof line,
                "errors     %llu spill write, %llu fetch, %llu corruption, %llu out of memory, %llu "
                "timeout\n",
                static_cast<unsigned long long>(e.spill_write_failures),
                static_cast<unsigned long long>(e.fetch_failures),
                static_cast<unsigned long long>(e.corruptions),
                static_cast<unsigned long long>(e.out_of_memory),
                static_cast<unsigned long long>(e.timeouts));
  out += line;
  std::snprintf(line, sizeof line, "buffers    %llu live\n",
                static_cast<unsigned long long>(cur.live_buffers));
  out += line;
  return out;
}

}  // namespace spillway::tools
