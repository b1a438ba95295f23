// python/src/pool_handle.cpp — spillway.Pool: creation, close, tracing, and its bindings.
#include <pybind11/stl.h>

#include <chrono>
#include <climits>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "arguments.hpp"
#include "errors.hpp"
#include "handles.hpp"
#include "pool_options.hpp"
#include "src/instrument/chrome_trace.hpp"
#include "stats_dict.hpp"

namespace py = pybind11;

namespace spillway::python {

// ---- PoolHandle ----------------------------------------------------------------------

PoolHandle::PoolHandle(const PoolOptions& options) : owner_pid_(current_pid()) {
  try {
    py::gil_scoped_release nogil;
    pool_ = std::make_unique<Pool>(options);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(keyword_message(e.what()));
  }
  cuda_device_tier_ = pool_->tier_enabled(Tier::Device) && pool_->device_backend_name() == "cuda";
  cuda_device_ = options.device.cuda_device;
}

PoolHandle::~PoolHandle() {
  if (pool_ == nullptr) return;
  if (current_pid() != owner_pid_) {
    // A forked child: the pool's threads are not here and its spill file is
    // the parent's. Leave both alone.
    (void)pool_.release();
    (void)new std::shared_ptr<instrument::ChromeTraceSink>(std::move(trace_));
    return;
  }
  // Every Buffer holds a reference to this pool's Python object, so none is
  // left (and nothing is pinned) when it is collected.
  if (trace_) {
    try {
      finish_trace(*pool_);
    } catch (...) {
      set_python_error_from_current_exception();
      PyErr_WriteUnraisable(nullptr);  // a destructor cannot raise: report it
    }
  }
  py::gil_scoped_release nogil;
  pool_.reset();
}

void PoolHandle::check_process(const char* call) const {
  if (current_pid() != owner_pid_) {
    throw ForkError(std::string("spillway: ") + call + ": this pool was created in process " +
                    std::to_string(owner_pid_) + " and cannot be used in process " + std::to_string(current_pid()) +
                    ", forked from it: its spill files, threads and locks belong to the parent. "
                    "Create a new Pool in the child.");
  }
}

Pool& PoolHandle::pool(const char* call) {
  check_process(call);
  if (pool_ == nullptr) throw ClosedError(std::string("spillway: ") + call + ": the pool is closed");
  return *pool_;
}

void PoolHandle::close(bool quiet) {
  if (pool_ == nullptr) return;
  const char* call = "Pool.close()";
  check_process(call);
  if (calls_in_flight > 0) {
    if (quiet) return;
    throw BusyError(std::string("spillway: ") + call + ": " + std::to_string(calls_in_flight) +
                    " call(s) on this pool are still running in other threads; close it after they return");
  }
  int views = 0;
  for (const BufferHandle* b : buffers_) views += b->exported_views();
  if (views > 0) {
    if (quiet) return;
    throw ExportedError(std::string("spillway: ") + call + ": " + std::to_string(views) +
                        " view(s) of pinned bytes are still exported (memoryview, numpy array or DLPack "
                        "tensor); drop them before closing the pool");
  }
  // Sessions first: their graphs' buffers go with them.
  const std::vector<SessionHandle*> sessions(sessions_.begin(), sessions_.end());
  sessions_.clear();
  for (SessionHandle* s : sessions) s->end();
  const std::vector<BufferHandle*> buffers(buffers_.begin(), buffers_.end());
  buffers_.clear();
  for (BufferHandle* b : buffers) b->end(BufferHandle::State::PoolClosed);
  std::exception_ptr trace_error;
  if (trace_) {
    try {
      finish_trace(*pool_);
    } catch (...) {
      trace_error = std::current_exception();
    }
  }
  std::unique_ptr<Pool> pool = std::move(pool_);
  {
    py::gil_scoped_release nogil;
    pool.reset();  // joins the pool's threads, writes trace_file and metrics_file
  }
  if (trace_error) std::rethrow_exception(trace_error);
}

void PoolHandle::start_trace(const std::string& path, std::size_t max_events, bool keep_last) {
  Pool& p = pool("Pool.start_trace()");
  if (trace_ || p.tracing()) {
    throw std::runtime_error(
        "spillway: Pool.start_trace(): the pool is already tracing (an earlier start_trace, or trace_file=)");
  }
  // Throws IoError when the file cannot be opened.
  trace_ = std::make_shared<instrument::ChromeTraceSink>(
      path, max_events, keep_last ? instrument::ChromeTraceSink::Keep::Last : instrument::ChromeTraceSink::Keep::First);
  p.set_trace(trace_);
}

py::dict PoolHandle::stop_trace() {
  Pool& p = pool("Pool.stop_trace()");
  if (!trace_) throw std::runtime_error("spillway: Pool.stop_trace(): no trace was started with start_trace()");
  const std::shared_ptr<instrument::ChromeTraceSink> sink = trace_;
  finish_trace(p);
  py::dict result;
  result["path"] = sink->path();
  result["events"] = sink->events();
  result["dropped"] = sink->dropped();
  return result;
}

void PoolHandle::finish_trace(Pool& p) {
  const std::shared_ptr<instrument::ChromeTraceSink> sink = std::move(trace_);
  py::gil_scoped_release nogil;
  p.set_trace(nullptr);  // delivers what the recorder still holds
  sink->write();         // throws IoError when the file cannot be written
}

// ---- CallInFlight --------------------------------------------------------------------

CallInFlight::CallInFlight(PoolHandle& pool, BufferHandle* buffer) noexcept : pool_(pool), buffer_(buffer) {
  ++pool_.calls_in_flight;
  if (buffer_ != nullptr) ++buffer_->calls_in_flight;
}

CallInFlight::~CallInFlight() {
  --pool_.calls_in_flight;
  if (buffer_ != nullptr) --buffer_->calls_in_flight;
}

// ---- bindings ------------------------------------------------------------------------

namespace {

// A span of the caller's own work in the pool's trace (Pool.trace_span).
class TraceSpan {
 public:
  TraceSpan(py::object pool_object, std::string name) : pool_object_(std::move(pool_object)), name_(std::move(name)) {}
  void enter() { start_ns_ = now_ns(); }
  void exit() {
    auto& p = pool_object_.cast<PoolHandle&>();
    if (p.closed() || current_pid() != p.owner_pid()) return;  // nothing to record into
    const std::uint64_t end = now_ns();
    p.pool("Pool.trace_span()").record_span(name_, start_ns_, end - start_ns_);
  }

 private:
  // The steady clock, as the pool's events (TraceEvent::time_ns).
  static std::uint64_t now_ns() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
  }
  py::object pool_object_;
  std::string name_;
  std::uint64_t start_ns_ = 0;
};

std::unique_ptr<BufferHandle> allocate(py::object self, py::handle nbytes, py::handle tier, py::handle label) {
  const char* call = "Pool.allocate()";
  const std::uint64_t bytes = size_argument(nbytes, call, "nbytes");
  const Tier where = tier_argument(tier, call, "tier", {Tier::Device, Tier::Host, Tier::Disk});
  const std::string text = str_argument(label, call, "label");
  auto& handle = self.cast<PoolHandle&>();
  Pool& pool = handle.pool(call);
  Buffer buffer;
  {
    CallInFlight busy(handle);
    py::gil_scoped_release nogil;
    buffer = pool.allocate(static_cast<std::size_t>(bytes), where, text);
  }
  return std::make_unique<BufferHandle>(std::move(self), handle, std::move(buffer));
}

py::tuple enabled_tiers(Pool& pool) {
  py::list names;
  for (Tier t : {Tier::Device, Tier::Host, Tier::Disk}) {
    if (pool.tier_enabled(t)) names.append(py::str(std::string(tier_name(t))));
  }
  return py::tuple(names);
}

std::string pool_repr(PoolHandle& h) {
  if (h.closed()) return "<spillway.Pool (closed)>";
  if (current_pid() != h.owner_pid()) return "<spillway.Pool of process " + std::to_string(h.owner_pid()) + ">";
  const PoolStats s = h.pool("repr(Pool)").stats();
  std::string text = "<spillway.Pool";
  const char* sep = " ";
  for (Tier t : {Tier::Device, Tier::Host, Tier::Disk}) {
    const TierStats& ts = s.tier(t);
    text += sep + std::string(tier_name(t)) + " ";
    text += ts.enabled ? format_bytes(ts.used_bytes) + "/" + format_bytes(ts.capacity_bytes) : "off";
    sep = ", ";
  }
  return text + ", " + std::to_string(s.live_buffers) + " buffers>";
}

}  // namespace

void bind_pool(py::module_& m) {
  py::class_<TraceSpan>(m, "TraceSpan", "A span of the program's own work in the pool's trace; see Pool.trace_span.")
      .def("__enter__",
           [](py::object self) {
             self.cast<TraceSpan&>().enter();
             return self;
           })
      .def("__exit__", [](TraceSpan& s, py::handle, py::handle, py::handle) { s.exit(); });

  py::class_<PoolHandle>(m, "Pool", R"doc(The C++ pool behind spillway.Pool (which adds the keyword signature).

Use spillway.Pool; this base class takes the options as one dict.)doc")
      .def(py::init([](const py::dict& keywords, bool from_env) {
             PoolOptions base = from_env ? PoolOptions::from_env() : PoolOptions{};
             return std::make_unique<PoolHandle>(options_from_keywords(std::move(base), keywords));
           }),
           py::arg("options"), py::arg("from_env") = false)
      .def("allocate", &allocate, py::arg("nbytes"), py::arg("tier") = "host", py::arg("label") = "",
           R"doc(Allocates a buffer of `nbytes` bytes (an int or a size string such as "64M").

It goes on `tier` ("device", "host" or "disk") if room can be made there,
else on the next slower tier that has room. Contents are unspecified, except
that a buffer placed on disk reads as zeros. Blocks (with the GIL released)
while room is made; raises OutOfMemory when no tier at or below `tier` can
hold it.)doc")
      .def("stats", [](PoolHandle& h) { return stats_to_dict(h.pool("Pool.stats()").stats()); },
           "A consistent snapshot of where the bytes are and what moved, as a dict (see docs/python.md).")
      .def("stats_text", [](PoolHandle& h) { return h.pool("Pool.stats_text()").stats().to_string(); },
           "The same snapshot as a human-readable multi-line summary.")
      .def("prometheus", [](PoolHandle& h) { return h.pool("Pool.prometheus()").stats().to_prometheus(); },
           "The same snapshot in the Prometheus text exposition format.")
      .def_property_readonly("options",
                             [](PoolHandle& h) { return options_to_keywords(h.pool("Pool.options").options()); },
                             "The pool's options as keywords: Pool(**pool.options) configures the same pool.")
      .def_property_readonly("tiers", [](PoolHandle& h) { return enabled_tiers(h.pool("Pool.tiers")); },
                             "The enabled tiers, fastest first.")
      .def_property_readonly(
          "device_backend", [](PoolHandle& h) { return std::string(h.pool("Pool.device_backend").device_backend_name()); },
          "'cuda', 'simulated' or 'none'.")
      .def_property_readonly(
          "host_memory", [](PoolHandle& h) { return std::string(h.pool("Pool.host_memory").host_memory_kind()); },
          "'pinned' (page-locked, with the CUDA backend), 'pageable' or 'none'.")
      .def_property_readonly(
          "spill_directory",
          [](PoolHandle& h) -> py::object {
            const std::string dir = h.pool("Pool.spill_directory").spill_directory();
            if (dir.empty()) return py::none();
            return py::str(dir);
          },
          "The pool's private spill directory (None when the disk tier is off).")
      .def_property_readonly("pid", &PoolHandle::owner_pid, "The process that created the pool.")
      .def_property_readonly("closed", &PoolHandle::closed)
      .def(
          "close", [](PoolHandle& h) { h.close(false); },
          R"doc(Frees every buffer on every tier and stops the pool's threads.

Pins that have no exported views are released and buffers freed first; later
use of them raises ClosedError. Raises BufferError (and closes nothing) while
a memoryview, numpy array or DLPack tensor of a pinned buffer is alive.
Idempotent.)doc")
      .def(
          "_close_at_exit",
          [](PoolHandle& h) {
            h.close(true);
            // Views still alive: the pool stays open, but the trace is written.
            if (!h.closed() && h.tracing_to_file()) h.stop_trace();
          },
          "For spillway's atexit handler: close() unless views are alive; write a started trace either way.")
      .def("__enter__",
           [](py::object self) {
             self.cast<PoolHandle&>().pool("Pool.__enter__()");
             return self;
           })
      .def("__exit__",
           [](PoolHandle& h, py::handle type, py::handle, py::handle) {
             // Leaving because of an exception: do not replace it with a
             // BufferError about views that the traceback may be keeping.
             h.close(!type.is_none());
           })
      .def(
          "quiesce",
          [](PoolHandle& h) {
            Pool& p = h.pool("Pool.quiesce()");
            CallInFlight busy(h);
            py::gil_scoped_release nogil;
            p.quiesce();
          },
          "Waits until no move is in flight and the proactive spiller is idle.")
      .def(
          "check_invariants",
          [](PoolHandle& h) {
            Pool& p = h.pool("Pool.check_invariants()");
            CallInFlight busy(h);
            py::gil_scoped_release nogil;
            return p.check_invariants();
          },
          "Checks the pool's bookkeeping; returns the problems found (an empty list when all is well). Slow.")
      .def(
          "start_trace",
          [](PoolHandle& h, py::handle path, py::handle max_events, py::handle keep) {
            const char* call = "Pool.start_trace()";
            const std::string file = path_argument(path, call, "path");
            const auto max = static_cast<std::size_t>(int_argument(max_events, call, "max_events", 1, LLONG_MAX));
            const std::string which = str_argument(keep, call, "keep");
            if (which != "first" && which != "last") {
              throw py::value_error(argument_error_prefix(call, "keep") + "must be 'first' or 'last', got '" + which + "'");
            }
            h.start_trace(file, max, which == "last");
          },
          py::arg("path"), py::arg("max_events") = instrument::ChromeTraceSink::kDefaultMaxPoolEvents,
          py::arg("keep") = "first",
          R"doc(Records the pool's events into a Chrome Trace Event JSON file that ui.perfetto.dev opens.

At most `max_events` pool events are kept: the first ones, or the last ones
with keep="last". The file is written by stop_trace() or close().)doc")
      .def("stop_trace", &PoolHandle::stop_trace,
           "Stops the trace and writes its file; returns {'path', 'events', 'dropped'}.")
      .def_property_readonly(
          "tracing", [](PoolHandle& h) { return h.pool("Pool.tracing").tracing(); },
          "Whether the pool records events (start_trace or trace_file=).")
      .def(
          "trace_span",
          [](py::object self, py::handle name) {
            const std::string text = str_argument(name, "Pool.trace_span()", "name");
            self.cast<PoolHandle&>().pool("Pool.trace_span()");
            return TraceSpan(std::move(self), text);
          },
          py::arg("name"),
          "A context manager that records its duration as a span named `name` on the calling thread's track.")
      .def("__repr__", &pool_repr);
}

}  // namespace spillway::python
