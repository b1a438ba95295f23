// python/src/errors.cpp — raising spillway.errors' classes for C++ exceptions.
#include "errors.hpp"

#include <string>

#include "spillway/errors.hpp"
#include "spillway/tier.hpp"

namespace py = pybind11;

namespace spillway::python {

namespace {

// The classes of spillway.errors. Strong references kept for the life of the
// process: the translator may run while the interpreter shuts down.
struct ErrorTypes {
  PyObject* out_of_memory = nullptr;
  PyObject* io_error = nullptr;
  PyObject* corruption = nullptr;
  PyObject* closed = nullptr;
  PyObject* fork = nullptr;
};
ErrorTypes g_types;

PyObject* keep_class(const py::module_& errors, const char* name) {
  py::object cls = errors.attr(name);
  return cls.release().ptr();
}

void raise_out_of_memory(const OutOfMemory& e) {
  py::object type = py::reinterpret_borrow<py::object>(g_types.out_of_memory);
  py::object exc = type(py::str(e.what()));
  exc.attr("tier") = py::str(std::string(tier_name(e.tier)));
  exc.attr("nbytes") = py::int_(e.bytes_requested);
  py::dict pinned;
  for (const auto& [label, bytes] : e.pinned_by_label) {
    const py::str key(label);
    const std::size_t before = pinned.contains(key) ? pinned[key].cast<std::size_t>() : 0;
    pinned[key] = py::int_(before + bytes);
  }
  exc.attr("pinned_by_label") = pinned;
  PyErr_SetObject(g_types.out_of_memory, exc.ptr());
}

void raise_io_error(const IoError& e) {
  py::object type = py::reinterpret_borrow<py::object>(g_types.io_error);
  // OSError(errno, strerror, filename): sets .errno, .strerror and .filename.
  py::object exc = type(py::int_(e.code().value()), py::str(e.what()), py::str(e.file));
  exc.attr("offset") = py::int_(e.offset);
  exc.attr("operation") = py::str(e.operation);
  PyErr_SetObject(g_types.io_error, exc.ptr());
}

void raise_corruption(const CorruptionError& e) {
  py::object type = py::reinterpret_borrow<py::object>(g_types.corruption);
  py::object exc = type(py::str(e.what()));
  exc.attr("buffer_id") = py::int_(e.buffer_id);
  exc.attr("record_offset") = py::int_(e.record_offset);
  exc.attr("expected_checksum") = py::int_(e.expected_checksum);
  exc.attr("actual_checksum") = py::int_(e.actual_checksum);
  PyErr_SetObject(g_types.corruption, exc.ptr());
}

// Builds the exception with pybind11 calls that may themselves fail; if they
// do, the Python error they raised stays set (better than none).
template <class Raise, class E>
void raise_guarded(Raise raise, const E& e) {
  try {
    raise(e);
  } catch (py::error_already_set& failed) {
    failed.restore();
  }
}

}  // namespace

void load_error_types() {
  const py::module_ errors = py::module_::import("spillway.errors");
  g_types.out_of_memory = keep_class(errors, "OutOfMemory");
  g_types.io_error = keep_class(errors, "IoError");
  g_types.corruption = keep_class(errors, "CorruptionError");
  g_types.closed = keep_class(errors, "ClosedError");
  g_types.fork = keep_class(errors, "ForkError");
}

void translate_exception(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const OutOfMemory& e) {
    raise_guarded(raise_out_of_memory, e);
  } catch (const IoError& e) {
    raise_guarded(raise_io_error, e);
  } catch (const CorruptionError& e) {
    raise_guarded(raise_corruption, e);
  } catch (const ClosedError& e) {
    PyErr_SetString(g_types.closed, e.what());
  } catch (const ForkError& e) {
    PyErr_SetString(g_types.fork, e.what());
  } catch (const ExportedError& e) {
    PyErr_SetString(PyExc_BufferError, e.what());
  } catch (const BusyError& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  }
}

void set_python_error_from_current_exception() noexcept {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const py::builtin_exception& e) {
    e.set_error();
  } catch (...) {
    const std::exception_ptr error = std::current_exception();
    try {
      translate_exception(error);  // rethrows what it does not know
    } catch (const std::invalid_argument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_NoMemory();
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (...) {
      PyErr_SetString(PyExc_RuntimeError, "spillway: unknown C++ exception");
    }
  }
}

}  // namespace spillway::python
