// python/src/pool_options.cpp — the keyword table of spillway.Pool.
#include "pool_options.hpp"

#include <array>
#include <climits>
#include <stdexcept>
#include <utility>

#include "arguments.hpp"

namespace py = pybind11;

namespace spillway::python {

namespace {

constexpr const char* kCall = "Pool()";

// One choice of an enumerated option: its Python spelling and its value.
template <class E>
struct Choice {
  const char* name;
  E value;
};

template <class E, std::size_t N>
E choice_argument(py::handle value, const char* name, const std::array<Choice<E>, N>& choices) {
  const std::string text = str_argument(value, kCall, name);
  for (const auto& c : choices) {
    if (text == c.name) return c.value;
  }
  std::string names;
  for (const auto& c : choices) names += (names.empty() ? "'" : ", '") + std::string(c.name) + "'";
  throw py::value_error(argument_error_prefix(kCall, name) + "must be one of " + names + ", got '" + text + "'");
}

template <class E, std::size_t N>
py::str choice_name(E value, const std::array<Choice<E>, N>& choices) {
  for (const auto& c : choices) {
    if (c.value == value) return py::str(c.name);
  }
  return py::str("unknown");
}

constexpr std::array<Choice<DeviceBackend>, 4> kBackends{{{"auto", DeviceBackend::Auto},
                                                          {"cuda", DeviceBackend::Cuda},
                                                          {"simulated", DeviceBackend::Simulated},
                                                          {"none", DeviceBackend::None}}};
constexpr std::array<Choice<Compression>, 3> kCompressions{
    {{"adaptive", Compression::Adaptive}, {"lz4", Compression::Lz4}, {"none", Compression::None}}};
constexpr std::array<Choice<DiskIo>, 3> kDiskIo{
    {{"auto", DiskIo::Auto}, {"direct", DiskIo::Direct}, {"buffered", DiskIo::Buffered}}};
constexpr std::array<Choice<EvictionPolicy>, 2> kPolicies{
    {{"lru", EvictionPolicy::Lru}, {"lookahead", EvictionPolicy::Lookahead}}};

py::object size_value(std::uint64_t bytes) {
  if (bytes == kUnlimited) return py::str("unlimited");
  return py::int_(bytes);
}

py::object seconds_value(std::chrono::milliseconds ms) { return py::float_(static_cast<double>(ms.count()) / 1000.0); }

py::object path_value(const std::string& path) {
  if (path.empty()) return py::none();
  return py::str(path);
}

// What applying one keyword may need beyond the field itself.
struct Applying {
  bool disk_bytes_zero = false;  // disk_bytes=0: the disk tier off
};

struct Field {
  const char* name;
  void (*set)(PoolOptions&, py::handle, Applying&);
  py::object (*get)(const PoolOptions&);
};

// The keywords, grouped as PoolOptions is: device, host, disk, then the pool.
const std::array<Field, 28> kFields{{
    {"device_bytes",
     [](PoolOptions& o, py::handle v, Applying&) {
       if (py::isinstance<py::str>(v) && v.cast<std::string>() == "auto") {
         o.device.capacity_bytes = kAutoCapacity;
       } else {
         o.device.capacity_bytes = size_argument(v, kCall, "device_bytes");
       }
     },
     [](const PoolOptions& o) -> py::object {
       if (o.device.capacity_bytes == kAutoCapacity) return py::str("auto");
       return py::int_(o.device.capacity_bytes);
     }},
    {"device_backend",
     [](PoolOptions& o, py::handle v, Applying&) { o.device.backend = choice_argument(v, "device_backend", kBackends); },
     [](const PoolOptions& o) -> py::object { return choice_name(o.device.backend, kBackends); }},
    {"cuda_device",
     [](PoolOptions& o, py::handle v, Applying&) {
       o.device.cuda_device = static_cast<int>(int_argument(v, kCall, "cuda_device", 0, INT_MAX));
     },
     [](const PoolOptions& o) -> py::object { return py::int_(o.device.cuda_device); }},
    {"staging_buffer_bytes",
     [](PoolOptions& o, py::handle v, Applying&) {
       o.device.staging_buffer_bytes = size_argument(v, kCall, "staging_buffer_bytes");
     },
     [](const PoolOptions& o) -> py::object { return py::int_(o.device.staging_buffer_bytes); }},
    {"staging_buffers",
     [](PoolOptions& o, py::handle v, Applying&) {
       o.device.staging_buffers = static_cast<unsigned>(int_argument(v, kCall, "staging_buffers", 0, UINT_MAX));
     },
     [](const PoolOptions& o) -> py::object { return py::int_(o.device.staging_buffers); }},
    {"host_bytes",
     [](PoolOptions& o, py::handle v, Applying&) { o.host.capacity_bytes = size_argument(v, kCall, "host_bytes"); },
     [](const PoolOptions& o) -> py::object { return py::int_(o.host.capacity_bytes); }},
    {"host_pinned",
     [](PoolOptions& o, py::handle v, Applying&) { o.host.pinned = bool_argument(v, kCall, "host_pinned"); },
     [](const PoolOptions& o) -> py::object { return py::bool_(o.host.pinned); }},
    {"disk",
     [](PoolOptions& o, py::handle v, Applying&) { o.disk.enabled = bool_argument(v, kCall, "disk"); },
     [](const PoolOptions& o) -> py::object { return py::bool_(o.disk.enabled); }},
    {"disk_dir",
     [](PoolOptions& o, py::handle v, Applying&) { o.disk.directory = path_argument(v, kCall, "disk_dir"); },
     [](const PoolOptions& o) { return path_value(o.disk.directory); }},
    {"disk_bytes",
     [](PoolOptions& o, py::handle v, Applying& a) {
       const std::uint64_t bytes = size_argument(v, kCall, "disk_bytes", true);
       // 0 turns the tier off, as device_bytes=0 and host_bytes=0 do (the C++
       // field itself rejects 0 with the tier enabled).
       if (bytes == 0) {
         a.disk_bytes_zero = true;
       } else {
         o.disk.capacity_bytes = bytes;
       }
     },
     [](const PoolOptions& o) { return size_value(o.disk.capacity_bytes); }},
    {"compression",
     [](PoolOptions& o, py::handle v, Applying&) { o.disk.compression = choice_argument(v, "compression", kCompressions); },
     [](const PoolOptions& o) -> py::object { return choice_name(o.disk.compression, kCompressions); }},
    {"disk_io",
     [](PoolOptions& o, py::handle v, Applying&) { o.disk.io = choice_argument(v, "disk_io", kDiskIo); },
     [](const PoolOptions& o) -> py::object { return choice_name(o.disk.io, kDiskIo); }},
    {"tail_slack_bytes",
     [](PoolOptions& o, py::handle v, Applying&) {
       o.disk.tail_slack_bytes = size_argument(v, kCall, "tail_slack_bytes");
     },
     [](const PoolOptions& o) -> py::object { return py::int_(o.disk.tail_slack_bytes); }},
    {"policy",
     [](PoolOptions& o, py::handle v, Applying&) { o.policy = choice_argument(v, "policy", kPolicies); },
     [](const PoolOptions& o) -> py::object { return choice_name(o.policy, kPolicies); }},
    {"io_threads",
     [](PoolOptions& o, py::handle v, Applying&) {
       o.io_threads = static_cast<unsigned>(int_argument(v, kCall, "io_threads", 0, UINT_MAX));
     },
     [](const PoolOptions& o) -> py::object { return py::int_(o.io_threads); }},
    {"high_watermark",
     [](PoolOptions& o, py::handle v, Applying&) { o.high_watermark = float_argument(v, kCall, "high_watermark"); },
     [](const PoolOptions& o) -> py::object { return py::float_(o.high_watermark); }},
    {"low_watermark",
     [](PoolOptions& o, py::handle v, Applying&) { o.low_watermark = float_argument(v, kCall, "low_watermark"); },
     [](const PoolOptions& o) -> py::object { return py::float_(o.low_watermark); }},
    {"pressure_wait",
     [](PoolOptions& o, py::handle v, Applying&) { o.pressure_wait = duration_argument(v, kCall, "pressure_wait"); },
     [](const PoolOptions& o) { return seconds_value(o.pressure_wait); }},
    {"io_timeout",
     [](PoolOptions& o, py::handle v, Applying&) { o.io_timeout = duration_argument(v, kCall, "io_timeout"); },
     [](const PoolOptions& o) { return seconds_value(o.io_timeout); }},
    {"metrics_file",
     [](PoolOptions& o, py::handle v, Applying&) { o.metrics_file = path_argument(v, kCall, "metrics_file"); },
     [](const PoolOptions& o) { return path_value(o.metrics_file); }},
    {"metrics_interval",
     [](PoolOptions& o, py::handle v, Applying&) {
       o.metrics_interval = duration_argument(v, kCall, "metrics_interval");
     },
     [](const PoolOptions& o) { return seconds_value(o.metrics_interval); }},
    {"trace_file",
     [](PoolOptions& o, py::handle v, Applying&) { o.trace_file = path_argument(v, kCall, "trace_file"); },
     [](const PoolOptions& o) { return path_value(o.trace_file); }},
    {"trace_max_events",
     [](PoolOptions& o, py::handle v, Applying&) {
       o.trace_max_events = static_cast<std::size_t>(int_argument(v, kCall, "trace_max_events", 0, LLONG_MAX));
     },
     [](const PoolOptions& o) -> py::object { return py::int_(o.trace_max_events); }},
    {"trace_keep_last",
     [](PoolOptions& o, py::handle v, Applying&) { o.trace_keep_last = bool_argument(v, kCall, "trace_keep_last"); },
     [](const PoolOptions& o) -> py::object { return py::bool_(o.trace_keep_last); }},
    {"live_stats",
     [](PoolOptions& o, py::handle v, Applying&) { o.live_stats = bool_argument(v, kCall, "live_stats"); },
     [](const PoolOptions& o) -> py::object { return py::bool_(o.live_stats); }},
    {"live_stats_interval",
     [](PoolOptions& o, py::handle v, Applying&) {
       o.live_stats_interval = duration_argument(v, kCall, "live_stats_interval");
     },
     [](const PoolOptions& o) { return seconds_value(o.live_stats_interval); }},
    {"record_file",
     [](PoolOptions& o, py::handle v, Applying&) { o.record_file = path_argument(v, kCall, "record_file"); },
     [](const PoolOptions& o) { return path_value(o.record_file); }},
    {"deterministic_moves",
     [](PoolOptions& o, py::handle v, Applying&) {
       o.deterministic_moves = bool_argument(v, kCall, "deterministic_moves");
     },
     [](const PoolOptions& o) -> py::object { return py::bool_(o.deterministic_moves); }},
}};

const Field* find_field(const std::string& name) {
  for (const Field& f : kFields) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

}  // namespace

std::string keyword_message(std::string message) {
  const std::pair<const char*, const char*> renames[] = {
      {"spillway: PoolOptions: ", "spillway: Pool(): "},
      {"device.staging_buffer_bytes", "staging_buffer_bytes"},
      {"device.staging_buffers", "staging_buffers"},
      {"device.cuda_device", "cuda_device"},
      {"disk.capacity_bytes", "disk_bytes"},
  };
  for (const auto& [from, to] : renames) {
    const std::string f = from;
    for (std::size_t at = message.find(f); at != std::string::npos; at = message.find(f, at + std::string(to).size())) {
      message.replace(at, f.size(), to);
    }
  }
  return message;
}

PoolOptions options_from_keywords(PoolOptions options, const py::dict& keywords) {
  Applying applying;
  for (const auto& [key, value] : keywords) {
    if (!py::isinstance<py::str>(key)) throw py::type_error("spillway: Pool(): keywords must be strings");
    const auto name = key.cast<std::string>();
    const Field* field = find_field(name);
    if (field == nullptr) {
      throw py::type_error("spillway: Pool() got an unexpected keyword argument '" + name + "'");
    }
    if (value.is_none()) continue;
    field->set(options, value, applying);
  }
  if (applying.disk_bytes_zero) {
    if (keywords.contains("disk") && keywords["disk"].ptr() == Py_True) {
      throw py::value_error("spillway: Pool(): disk_bytes=0 turns the disk tier off, but disk=True asks for it");
    }
    options.disk.enabled = false;
  }
  try {
    options.validate();
  } catch (const std::invalid_argument& e) {
    throw py::value_error(keyword_message(e.what()));
  }
  return options;
}

py::dict options_to_keywords(const PoolOptions& options) {
  py::dict keywords;
  for (const Field& f : kFields) keywords[py::str(f.name)] = f.get(options);
  return keywords;
}

std::vector<std::string> option_keywords() {
  std::vector<std::string> names;
  names.reserve(kFields.size());
  for (const Field& f : kFields) names.emplace_back(f.name);
  return names;
}

}  // namespace spillway::python
