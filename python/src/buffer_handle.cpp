// python/src/buffer_handle.cpp — spillway.Buffer: pin, evict, free, and its bindings.
#include <climits>
#include <string>
#include <utility>

#include "arguments.hpp"
#include "errors.hpp"
#include "handles.hpp"

namespace py = pybind11;

namespace spillway::python {

// ---- BufferHandle --------------------------------------------------------------------

BufferHandle::BufferHandle(py::object pool_object, PoolHandle& pool, Buffer buffer)
    : pool_object_(std::move(pool_object)),
      pool_(pool),
      nbytes_(buffer.size()),
      id_(buffer.id()),
      label_(buffer.label()) {
  buffer_.emplace(std::move(buffer));
  pool_.attach(this);
}

BufferHandle::~BufferHandle() {
  // No pin is left: each holds a reference to this buffer's Python object.
  if (buffer_.has_value() && current_pid() != pool_.owner_pid()) {
    (void)new Buffer(std::move(*buffer_));  // a forked child: leave the parent's storage alone
  }
  buffer_.reset();
  pool_.detach(this);
}

std::string BufferHandle::describe() const {
  return "buffer '" + label_ + "' (id " + std::to_string(id_) + ")";
}

Buffer& BufferHandle::buffer(const char* call) {
  pool_.check_process(call);
  switch (state_) {
    case State::Live:
      return *buffer_;
    case State::Freed:
      throw ClosedError(std::string("spillway: ") + call + ": " + describe() + " has been freed");
    case State::PoolClosed:
      break;
  }
  throw ClosedError(std::string("spillway: ") + call + ": the pool of " + describe() + " is closed");
}

std::unique_ptr<PinHandle> BufferHandle::pin(py::object self, Tier where, Access access) {
  Buffer& b = buffer("Buffer.pin()");
  // A resident buffer is pinned at once, keeping the GIL; only a pin that
  // may move bytes or wait lets other Python threads run meanwhile.
  Pin pin = b.try_pin(where, access);
  if (!pin) {
    CallInFlight busy(pool_, this);
    py::gil_scoped_release nogil;
    pin = b.pin(where, access);
  }
  return std::make_unique<PinHandle>(std::move(self), *this, std::move(pin));
}

void BufferHandle::free(const char* call) {
  if (state_ != State::Live) return;
  pool_.check_process(call);
  if (calls_in_flight > 0) {
    throw BusyError(std::string("spillway: ") + call + ": another thread is inside a call on " + describe() +
                    "; free it after that call returns");
  }
  if (const int views = exported_views(); views > 0) {
    throw ExportedError(std::string("spillway: ") + call + ": " + std::to_string(views) + " view(s) of " +
                        describe() +
                        " are still exported (memoryview, numpy array or DLPack tensor); drop them first");
  }
  end(State::Freed);
}

void BufferHandle::end(State why) noexcept {
  const char* reason = why == State::Freed ? "released when its buffer was freed" : "released when its pool was closed";
  for (PinHandle* p : pins_) p->end(reason);
  pins_.clear();
  if (buffer_.has_value()) buffer_->reset();
  buffer_.reset();
  state_ = why;
  pool_.detach(this);
}

int BufferHandle::exported_views() const noexcept {
  int views = 0;
  for (const PinHandle* p : pins_) views += p->exports;
  return views;
}

// ---- bindings ------------------------------------------------------------------------

namespace {

py::tuple clean_tiers(Buffer& b) {
  const unsigned mask = b.clean_copies();
  py::list names;
  for (Tier t : {Tier::Device, Tier::Host, Tier::Disk}) {
    if ((mask & (1u << tier_index(t))) != 0) names.append(py::str(std::string(tier_name(t))));
  }
  return py::tuple(names);
}

std::string buffer_repr(BufferHandle& h) {
  std::string where;
  switch (h.state()) {
    case BufferHandle::State::Live:
      if (current_pid() != h.pool().owner_pid()) {
        where = "of process " + std::to_string(h.pool().owner_pid());
      } else {
        where = "on " + std::string(tier_name(h.buffer("repr(Buffer)").tier()));
      }
      break;
    case BufferHandle::State::Freed:
      where = "freed";
      break;
    case BufferHandle::State::PoolClosed:
      where = "pool closed";
      break;
  }
  return "<spillway.Buffer id=" + std::to_string(h.id()) + " label='" + h.label() + "' " +
         std::to_string(h.nbytes()) + " bytes, " + where + ">";
}

}  // namespace

void bind_buffer(py::module_& m) {
  py::class_<BufferHandle>(m, "Buffer", R"doc(A handle to bytes in a Pool that may live on any tier.

Made by Pool.allocate(). Pin it to touch the bytes; while no pin holds it the
pool may spill it down (device -> host -> disk). Freed by free(), by leaving
a `with` block, or when it is garbage collected.)doc")
      .def_property_readonly("nbytes", &BufferHandle::nbytes, "The buffer's size in bytes.")
      .def_property_readonly("id", &BufferHandle::id, "The pool's id for the buffer (as in stats, traces and errors).")
      .def_property_readonly("label", &BufferHandle::label, "The label given to allocate().")
      .def_property_readonly(
          "tier", [](BufferHandle& h) { return std::string(tier_name(h.buffer("Buffer.tier").tier())); },
          "Where the authoritative bytes are now: 'device', 'host' or 'disk'.")
      .def_property_readonly(
          "clean_tiers", [](BufferHandle& h) { return clean_tiers(h.buffer("Buffer.clean_tiers")); },
          "Tiers that hold a byte-identical clean copy besides the primary one.")
      .def_property_readonly(
          "freed", [](BufferHandle& h) { return h.state() != BufferHandle::State::Live; },
          "Whether the buffer was freed (or its pool closed).")
      .def_property_readonly("pool", &BufferHandle::pool_object, "The Pool the buffer belongs to.")
      .def(
          "pin",
          [](py::object self, py::handle tier, py::handle access) {
            const char* call = "Buffer.pin()";
            const Tier where = tier_argument(tier, call, "tier", {Tier::Device, Tier::Host});
            const Access a = access_argument(access, call);
            return self.cast<BufferHandle&>().pin(self, where, a);
          },
          py::arg("tier") = "host", py::arg("access") = "rw",
          R"doc(Makes `tier` ("device" or "host") hold the bytes and returns a Pin on them.

Blocks, with the GIL released, until the bytes are there. access="r" gives
read-only views and keeps clean copies on slower tiers (a later eviction then
writes nothing); "rw" gives writable views. Raises OutOfMemory when no room
can be made within the pool's pressure_wait, IoError or CorruptionError when
the bytes cannot be read back from disk.)doc")
      .def(
          "evict",
          [](BufferHandle& h, py::handle tier) {
            const char* call = "Buffer.evict()";
            const Tier where = tier_argument(tier, call, "tier", {Tier::Host, Tier::Disk});
            Buffer& b = h.buffer(call);
            CallInFlight busy(h.pool(), &h);
            py::gil_scoped_release nogil;
            b.evict(where);
          },
          py::arg("tier") = "disk",
          "Moves the bytes down to `tier` ('host' or 'disk') now, freeing faster tiers; blocks until done.")
      .def(
          "prefetch",
          [](BufferHandle& h, py::handle tier) {
            const char* call = "Buffer.prefetch()";
            const Tier where = tier_argument(tier, call, "tier", {Tier::Device, Tier::Host});
            h.buffer(call).prefetch(where);
          },
          py::arg("tier") = "host",
          "Starts moving the bytes up to `tier` in the background if there is room; a later pin finds them there.")
      .def(
          "hint_next_use",
          [](BufferHandle& h, py::handle step) {
            const char* call = "Buffer.hint_next_use()";
            const auto s = int_argument(step, call, "step", 0, LLONG_MAX);
            h.buffer(call).hint_next_use(static_cast<std::uint64_t>(s));
          },
          py::arg("step"), "For policy='lookahead': the step at which the buffer is next used (smaller = sooner).")
      .def(
          "free", [](BufferHandle& h) { h.free("Buffer.free()"); },
          R"doc(Frees the bytes on every tier now. Idempotent.

Pins of the buffer that have no exported views are released first; raises
BufferError (and frees nothing) while a view of a pin is alive.)doc")
      .def("__enter__",
           [](py::object self) {
             self.cast<BufferHandle&>().buffer("Buffer.__enter__()");
             return self;
           })
      .def("__exit__",
           [](BufferHandle& h, py::handle type, py::handle, py::handle) {
             if (!type.is_none() && (h.exported_views() > 0 || h.calls_in_flight > 0)) return;
             h.free("Buffer.__exit__()");
           })
      .def("__repr__", &buffer_repr);
}

}  // namespace spillway::python
