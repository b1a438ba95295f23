// src/core/stats.cpp — PoolStats::to_string and to_prometheus.
#include <cstdio>
#include <string>

#include "spillway/options.hpp"
#include "spillway/stats.hpp"

namespace spillway {

std::string format_bytes(std::uint64_t b) {
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
                  "%-6s used %s of %s (clean %s, pinned %s, peak %s%s%s), %llu buffers, largest free "
                  "%s, fragmentation %.2f\n",
                  std::string(tier_name(t)).c_str(), format_bytes(s.used_bytes).c_str(),
                  format_bytes(s.capacity_bytes).c_str(), format_bytes(s.clean_bytes).c_str(),
                  format_bytes(s.pinned_bytes).c_str(), format_bytes(s.peak_bytes).c_str(),
                  s.thread_cached_bytes > 0 ? ", thread caches " : "",
                  s.thread_cached_bytes > 0 ? format_bytes(s.thread_cached_bytes).c_str() : "",
                  static_cast<unsigned long long>(s.buffers), format_bytes(s.largest_free_bytes).c_str(),
                  s.fragmentation);
    out += line;
  }
  for (Tier from : {Tier::Device, Tier::Host, Tier::Disk}) {
    for (Tier to : {Tier::Device, Tier::Host, Tier::Disk}) {
      const MoveStats& m = move(from, to);
      if (m.moves == 0) continue;
      std::snprintf(line, sizeof line, "moves  %s -> %s: %llu moves, %s (%s stored), %.3f s\n",
                    std::string(tier_name(from)).c_str(), std::string(tier_name(to)).c_str(),
                    static_cast<unsigned long long>(m.moves), format_bytes(m.bytes).c_str(),
                    format_bytes(m.stored_bytes).c_str(), m.seconds);
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
  std::snprintf(line, sizeof line, "disk: large records %s, %llu written with the write in flight (io_uring)\n",
                disk_direct_io ? "with O_DIRECT" : "through the page cache",
                static_cast<unsigned long long>(disk_overlapped_writes));
  out += line;
  return out;
}

namespace {

// Prometheus numbers: integers as integers, others with enough digits.
std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
std::string num(std::uint64_t v) { return std::to_string(v); }

class Exposition {
 public:
  void family(const char* name, const char* type, const char* help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  void sample(const std::string& name, const std::string& labels, const std::string& value) {
    out_ += name;
    if (!labels.empty()) out_ += "{" + labels + "}";
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

std::string tier_label(Tier t) { return "tier=\"" + std::string(tier_name(t)) + "\""; }

}  // namespace

std::string PoolStats::to_prometheus() const {
  Exposition e;
  const Tier all[] = {Tier::Device, Tier::Host, Tier::Disk};
  e.family("spillway_tier_bytes", "gauge",
           "Bytes per tier and state: used (primaries and clean copies), clean, pinned, peak, "
           "thread_cached (free blocks threads keep for their next allocation, memory tiers), "
           "capacity (absent when unlimited).");
  for (Tier t : all) {
    const TierStats& s = tier(t);
    if (!s.enabled) continue;
    const std::string l = tier_label(t);
    e.sample("spillway_tier_bytes", l + ",state=\"used\"", num(s.used_bytes));
    e.sample("spillway_tier_bytes", l + ",state=\"clean\"", num(s.clean_bytes));
    e.sample("spillway_tier_bytes", l + ",state=\"pinned\"", num(s.pinned_bytes));
    e.sample("spillway_tier_bytes", l + ",state=\"peak\"", num(s.peak_bytes));
    if (t != Tier::Disk) e.sample("spillway_tier_bytes", l + ",state=\"thread_cached\"", num(s.thread_cached_bytes));
    if (s.capacity_bytes != kUnlimited) {
      e.sample("spillway_tier_bytes", l + ",state=\"capacity\"", num(s.capacity_bytes));
    }
  }
  e.family("spillway_tier_buffers", "gauge", "Buffers whose primary copy is on the tier.");
  for (Tier t : all) {
    if (tier(t).enabled) e.sample("spillway_tier_buffers", tier_label(t), num(tier(t).buffers));
  }
  e.family("spillway_tier_fragmentation_ratio", "gauge",
           "1 - largest free extent / total free bytes of the tier.");
  for (Tier t : all) {
    if (tier(t).enabled) e.sample("spillway_tier_fragmentation_ratio", tier_label(t), num(tier(t).fragmentation));
  }
  struct PairMetric {
    const char* name;
    const char* help;
  };
  const PairMetric pairs[] = {
      {"spillway_moves_total", "Completed moves of a buffer's primary copy between tiers."},
      {"spillway_moved_bytes_total", "Logical buffer bytes moved between tiers."},
      {"spillway_move_seconds_total", "Seconds spent copying between tiers."}};
  for (int k = 0; k < 3; ++k) {
    e.family(pairs[k].name, "counter", pairs[k].help);
    for (Tier from : all) {
      for (Tier to : all) {
        if (from == to || !tier(from).enabled || !tier(to).enabled) continue;
        const MoveStats& m = move(from, to);
        const std::string l = "from=\"" + std::string(tier_name(from)) + "\",to=\"" +
                              std::string(tier_name(to)) + "\"";
        e.sample(pairs[k].name, l, k == 0 ? num(m.moves) : k == 1 ? num(m.bytes) : num(m.seconds));
      }
    }
  }
  e.family("spillway_move_duration_seconds", "histogram", "Duration of completed moves.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kMoveLatencyBounds.size(); ++i) {
    cumulative += move_latency[i];
    e.sample("spillway_move_duration_seconds_bucket", "le=\"" + num(kMoveLatencyBounds[i]) + "\"",
             num(cumulative));
  }
  cumulative += move_latency.back();
  e.sample("spillway_move_duration_seconds_bucket", "le=\"+Inf\"", num(cumulative));
  e.sample("spillway_move_duration_seconds_sum", "", num(move_latency_sum));
  e.sample("spillway_move_duration_seconds_count", "", num(cumulative));
  e.family("spillway_evictions_total", "counter", "Evictions by reason.");
  const char* reasons[] = {"pressure", "proactive", "explicit"};
  for (int r = 0; r < kEvictionReasonCount; ++r) {
    e.sample("spillway_evictions_total", std::string("reason=\"") + reasons[r] + "\"", num(evictions[static_cast<std::size_t>(r)]));
  }
  e.family("spillway_clean_evictions_total", "counter",
           "Evictions that wrote nothing because a clean copy existed below.");
  e.sample("spillway_clean_evictions_total", "", num(clean_evictions));
  e.family("spillway_pins_total", "counter", "Pins granted.");
  e.sample("spillway_pins_total", "", num(pins));
  e.family("spillway_pin_waits_total", "counter", "Pins that had to wait for bytes to move.");
  e.sample("spillway_pin_waits_total", "", num(pin_waits));
  e.family("spillway_stall_seconds_total", "counter", "Seconds callers spent waiting inside pin and allocate.");
  e.sample("spillway_stall_seconds_total", "", num(stall_seconds));
  e.family("spillway_live_buffers", "gauge", "Buffers allocated and not yet freed.");
  e.sample("spillway_live_buffers", "", num(live_buffers));
  e.family("spillway_disk_direct_io", "gauge",
           "1 when large records move with O_DIRECT (DiskOptions::io), else 0.");
  e.sample("spillway_disk_direct_io", "", num(disk_direct_io ? 1.0 : 0.0));
  e.family("spillway_disk_overlapped_writes_total", "counter",
           "Records written with the write in flight while hashed (io_uring); 0 where the kernel refuses io_uring.");
  e.sample("spillway_disk_overlapped_writes_total", "", num(static_cast<double>(disk_overlapped_writes)));
  e.family("spillway_errors_total", "counter", "Errors by kind.");
  e.sample("spillway_errors_total", "kind=\"spill_write\"", num(errors.spill_write_failures));
  e.sample("spillway_errors_total", "kind=\"fetch\"", num(errors.fetch_failures));
  e.sample("spillway_errors_total", "kind=\"corruption\"", num(errors.corruptions));
  e.sample("spillway_errors_total", "kind=\"out_of_memory\"", num(errors.out_of_memory));
  e.sample("spillway_errors_total", "kind=\"timeout\"", num(errors.timeouts));
  return e.take();
}

}  // namespace spillway
