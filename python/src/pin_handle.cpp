// python/src/pin_handle.cpp — spillway.Pin: the lease, its buffer protocol, and its bindings.
//
// The buffer protocol is implemented by hand rather than with pybind11's
// def_buffer: pybind11's release callback cannot tell the pin that a view
// went away, and the export count is what makes Pin.release() safe. The
// class is created with py::buffer_protocol() (which gives the type its
// buffer slots) and the two slots are then pointed at the functions below.
#include <string>
#include <utility>

#include "arguments.hpp"
#include "dlpack_export.hpp"
#include "errors.hpp"
#include "handles.hpp"

namespace py = pybind11;

namespace spillway::python {

namespace {

// The address handed out for zero-byte pins (whose Pin::data() is null):
// consumers may reject a null pointer even for an empty array.
unsigned char g_empty_bytes[1];

}  // namespace

// ---- PinHandle -----------------------------------------------------------------------

PinHandle::PinHandle(py::object buffer_object, BufferHandle& buffer, Pin pin)
    : buffer_object_(std::move(buffer_object)),
      buffer_(buffer),
      nbytes_(pin.size()),
      tier_(pin.tier()),
      access_(pin.access()),
      device_memory_(pin.tier() == Tier::Device && buffer.pool().cuda_device_tier()) {
  pin_.emplace(std::move(pin));
  buffer_.attach(this);
}

PinHandle::~PinHandle() {
  // exports is 0: every view holds a reference to this pin's Python object.
  if (pin_.has_value() && current_pid() != buffer_.pool().owner_pid()) {
    (void)new Pin(std::move(*pin_));  // a forked child: the record is the parent's
  }
  pin_.reset();
  buffer_.detach(this);
}

void* PinHandle::address(const char* call) {
  buffer_.pool().check_process(call);
  if (!pin_.has_value()) throw ClosedError(std::string("spillway: ") + call + ": this pin has been " + ended_);
  void* data = pin_->data();
  return data != nullptr ? data : static_cast<void*>(g_empty_bytes);
}

void* PinHandle::host_address(const char* call) {
  void* data = address(call);
  if (device_memory_) {
    throw ExportedError(std::string("spillway: ") + call +
                        ": this pin holds CUDA device memory, which the CPU cannot read; use DLPack "
                        "(torch.from_dlpack(pin)) or pin on 'host'");
  }
  return data;
}

void PinHandle::release(const char* call) {
  if (!pin_.has_value()) return;
  buffer_.pool().check_process(call);
  if (exports > 0) {
    throw ExportedError(std::string("spillway: ") + call + ": " + std::to_string(exports) + " view(s) of the pin of " +
                        buffer_.describe() +
                        " are still exported (memoryview, numpy array or DLPack tensor); drop them, then release");
  }
  end("released");
  buffer_.detach(this);
}

void PinHandle::end(const char* why) noexcept {
  if (pin_.has_value()) pin_->release();
  pin_.reset();
  ended_ = why;
}

// ---- the buffer protocol -------------------------------------------------------------

namespace {

int get_buffer(PyObject* self, Py_buffer* view, int flags) noexcept {
  view->obj = nullptr;
  try {
    auto& pin = py::handle(self).cast<PinHandle&>();
    void* data = pin.host_address("memoryview(Pin)");
    const bool read_only = pin.access() == Access::Read;
    if (read_only && (flags & PyBUF_WRITABLE) == PyBUF_WRITABLE) {
      throw ExportedError("spillway: memoryview(Pin): this pin is read-only (access='r'); pin with access='rw' to write");
    }
    if (PyBuffer_FillInfo(view, self, data, static_cast<Py_ssize_t>(pin.nbytes()), read_only ? 1 : 0, flags) != 0) {
      return -1;
    }
    pin.exports += 1;
    return 0;
  } catch (...) {
    set_python_error_from_current_exception();
    return -1;
  }
}

void release_buffer(PyObject* self, Py_buffer* /*view*/) noexcept {
  try {
    py::handle(self).cast<PinHandle&>().exports -= 1;
  } catch (...) {
    set_python_error_from_current_exception();
    PyErr_WriteUnraisable(self);
  }
}

std::string pin_repr(PinHandle& p) {
  const BufferHandle& b = p.buffer();
  std::string text = "<spillway.Pin of buffer id=" + std::to_string(b.id()) + " label='" + b.label() + "' " +
                     std::to_string(p.nbytes()) + " bytes";
  if (p.released()) return text + ", released>";
  return text + " on " + std::string(tier_name(p.tier())) + ", access='" + access_name(p.access()) +
         "', exports=" + std::to_string(p.exports) + ">";
}

}  // namespace

// ---- bindings ------------------------------------------------------------------------

void bind_pin(py::module_& m) {
  py::class_<PinHandle> cls(m, "Pin", py::buffer_protocol(), R"doc(A lease on a buffer's bytes on one memory tier.

While it lives the bytes stay where they are. Views of them, all zero-copy:
memoryview(pin), numpy.asarray(pin), pin.numpy(dtype, shape),
numpy.from_dlpack(pin), torch.from_dlpack(pin). Each view keeps the pin
alive; release() (or leaving the `with` block) while a view is alive raises
BufferError. A pin with access="r" gives read-only views and no DLPack.)doc");
  auto* type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  type->tp_as_buffer->bf_getbuffer = &get_buffer;
  type->tp_as_buffer->bf_releasebuffer = &release_buffer;

  cls.def_property_readonly("nbytes", &PinHandle::nbytes, "The pinned size in bytes (the buffer's size).")
      .def_property_readonly(
          "tier", [](PinHandle& p) { return std::string(tier_name(p.tier())); }, "The tier the pin holds: 'device' or 'host'.")
      .def_property_readonly(
          "access", [](PinHandle& p) { return std::string(access_name(p.access())); }, "'r' or 'rw'.")
      .def_property_readonly(
          "readonly", [](PinHandle& p) { return p.access() == Access::Read; }, "Whether views are read-only.")
      .def_property_readonly(
          "address", [](PinHandle& p) { return reinterpret_cast<std::uintptr_t>(p.address("Pin.address")); },
          "The address of the first byte (a CUDA device pointer for a device pin with the CUDA backend).")
      .def_property_readonly("released", &PinHandle::released)
      .def_property_readonly("exports", [](PinHandle& p) { return p.exports; },
                             "How many views (buffer protocol and DLPack) of the bytes are alive.")
      .def_property_readonly("buffer", &PinHandle::buffer_object, "The Buffer this pin holds.")
      .def(
          "release", [](PinHandle& p) { p.release("Pin.release()"); },
          "Ends the lease (idempotent). Raises BufferError while views of the bytes are alive.")
      .def("__enter__",
           [](py::object self) {
             self.cast<PinHandle&>().address("Pin.__enter__()");
             return self;
           })
      .def("__exit__",
           [](PinHandle& p, py::handle type, py::handle, py::handle) {
             // Leaving because of an exception while a view (perhaps kept by
             // the traceback) is alive: keep that exception; the pin ends
             // when its last view is dropped.
             if (!type.is_none() && p.exports > 0) return;
             p.release("Pin.__exit__()");
           })
      .def(
          "numpy",
          [](py::object self, py::handle dtype, py::handle shape) {
            self.cast<PinHandle&>().host_address("Pin.numpy()");
            const py::module_ numpy = py::module_::import("numpy");
            py::object array = numpy.attr("frombuffer")(self, py::arg("dtype") = dtype);
            if (!shape.is_none()) array = array.attr("reshape")(shape);
            return array;
          },
          py::arg("dtype") = "uint8", py::arg("shape") = py::none(),
          R"doc(The bytes as a numpy array of `dtype` (and `shape`), zero-copy; read-only for access="r".)doc")
      .def(
          "__dlpack__",
          [](py::object self, py::handle stream) { return dlpack_capsule(self, self.cast<PinHandle&>(), stream); },
          py::arg("stream") = py::none(), "DLPack export: a 1-D uint8 tensor of the pinned bytes (access='rw' only).")
      .def(
          "__dlpack_device__",
          [](PinHandle& p) {
            p.address("Pin.__dlpack_device__()");
            const dlpack::Device d = dlpack_device(p);
            return py::make_tuple(d.device_type, d.device_id);
          },
          "(device_type, device_id) as DLPack numbers them: (1, 0) for host memory, (2, n) for CUDA device n.")
      .def("__repr__", &pin_repr);
}

}  // namespace spillway::python
