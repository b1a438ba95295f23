// python/src/arguments.cpp — argument conversion with named errors.
#include "arguments.hpp"

#include <cmath>
#include <limits>
#include <stdexcept>

#include "spillway/options.hpp"

namespace py = pybind11;

namespace spillway::python {

namespace {

std::string type_name(py::handle value) { return Py_TYPE(value.ptr())->tp_name; }

std::string repr_text(py::handle value) {
  try {
    return py::repr(value).cast<std::string>();
  } catch (const py::error_already_set&) {
    return "<" + type_name(value) + ">";
  }
}

[[noreturn]] void wrong_type(py::handle value, const char* call, const char* name, const char* expected) {
  throw py::type_error(argument_error_prefix(call, name) + "must be " + expected + ", not " + type_name(value));
}

bool is_integer(py::handle value) { return !PyBool_Check(value.ptr()) && PyIndex_Check(value.ptr()); }

// value.__index__() as a Python int.
py::int_ as_int(py::handle value) {
  PyObject* i = PyNumber_Index(value.ptr());
  if (i == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::int_>(i);
}

}  // namespace

std::string argument_error_prefix(const char* call, const char* name) {
  return std::string("spillway: ") + call + ": " + name + " ";
}

Tier tier_argument(py::handle value, const char* call, const char* name, std::initializer_list<Tier> allowed) {
  if (!py::isinstance<py::str>(value)) wrong_type(value, call, name, "a str such as 'host'");
  const auto text = value.cast<std::string>();
  for (Tier t : allowed) {
    if (text == tier_name(t)) return t;
  }
  std::string choices;
  for (Tier t : allowed) {
    choices += (choices.empty() ? "'" : ", '") + std::string(tier_name(t)) + "'";
  }
  throw py::value_error(argument_error_prefix(call, name) + "must be one of " + choices + ", got " + repr_text(value));
}

Access access_argument(py::handle value, const char* call) {
  if (!py::isinstance<py::str>(value)) wrong_type(value, call, "access", "'r' or 'rw'");
  const auto text = value.cast<std::string>();
  if (text == "r") return Access::Read;
  if (text == "rw") return Access::ReadWrite;
  throw py::value_error(argument_error_prefix(call, "access") + "must be 'r' or 'rw', got " + repr_text(value));
}

const char* access_name(Access access) { return access == Access::Read ? "r" : "rw"; }

std::uint64_t size_argument(py::handle value, const char* call, const char* name, bool unlimited_ok) {
  if (py::isinstance<py::str>(value)) {
    const auto text = value.cast<std::string>();
    std::uint64_t bytes = 0;
    try {
      bytes = parse_byte_size(text, name);
    } catch (const std::invalid_argument& e) {
      // parse_byte_size's message: "spillway: <name>: cannot parse '...' (expected ...)".
      std::string message = e.what();
      const std::string prefix = "spillway: ";
      if (message.starts_with(prefix)) message.erase(0, prefix.size());
      throw py::value_error(prefix + call + ": " + message);
    }
    if (bytes == kUnlimited && !unlimited_ok) {
      throw py::value_error(argument_error_prefix(call, name) + "cannot be 'unlimited'");
    }
    return bytes;
  }
  if (!is_integer(value)) wrong_type(value, call, name, "an int or a size string such as '64M'");
  const py::int_ i = as_int(value);
  if (i < py::int_(0)) {
    throw py::value_error(argument_error_prefix(call, name) + "must not be negative, got " + repr_text(i));
  }
  const unsigned long long bytes = PyLong_AsUnsignedLongLong(i.ptr());
  if (PyErr_Occurred() != nullptr) {
    PyErr_Clear();
    throw py::value_error(argument_error_prefix(call, name) + "is too large: " + repr_text(i));
  }
  return bytes;
}

long long int_argument(py::handle value, const char* call, const char* name, long long min, long long max) {
  if (!is_integer(value)) wrong_type(value, call, name, "an int");
  const py::int_ i = as_int(value);
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow != 0 || v < min || v > max) {
    throw py::value_error(argument_error_prefix(call, name) + "must be between " + std::to_string(min) +
                          " and " + std::to_string(max) + ", got " + repr_text(i));
  }
  return v;
}

double float_argument(py::handle value, const char* call, const char* name) {
  if (PyBool_Check(value.ptr()) || !(PyFloat_Check(value.ptr()) || PyIndex_Check(value.ptr()))) {
    wrong_type(value, call, name, "a number");
  }
  const double v = PyFloat_AsDouble(value.ptr());
  if (v == -1.0 && PyErr_Occurred() != nullptr) throw py::error_already_set();
  if (!std::isfinite(v)) throw py::value_error(argument_error_prefix(call, name) + "must be finite, got " + repr_text(value));
  return v;
}

bool bool_argument(py::handle value, const char* call, const char* name) {
  if (!PyBool_Check(value.ptr())) wrong_type(value, call, name, "True or False");
  return value.ptr() == Py_True;
}

std::chrono::milliseconds duration_argument(py::handle value, const char* call, const char* name) {
  double seconds = 0;
  const py::module_ datetime = py::module_::import("datetime");
  if (py::isinstance(value, datetime.attr("timedelta"))) {
    seconds = value.attr("total_seconds")().cast<double>();
  } else if (!PyBool_Check(value.ptr()) && (PyFloat_Check(value.ptr()) || PyIndex_Check(value.ptr()))) {
    seconds = PyFloat_AsDouble(value.ptr());
    if (seconds == -1.0 && PyErr_Occurred() != nullptr) throw py::error_already_set();
  } else {
    wrong_type(value, call, name, "seconds (int or float) or a datetime.timedelta");
  }
  // Bounded well below what milliseconds' count can hold (about 292 million years).
  constexpr double kMaxSeconds = 1e12;
  if (!std::isfinite(seconds) || seconds < 0 || seconds > kMaxSeconds) {
    throw py::value_error(argument_error_prefix(call, name) + "must be between 0 and 1e12 seconds, got " +
                          repr_text(value));
  }
  return std::chrono::milliseconds(std::llround(seconds * 1000.0));
}

std::string path_argument(py::handle value, const char* call, const char* name) {
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  const py::module_ os = py::module_::import("os");
  if (py::isinstance(value, os.attr("PathLike"))) {
    py::object path = os.attr("fspath")(value);
    if (py::isinstance<py::str>(path)) return path.cast<std::string>();
  }
  wrong_type(value, call, name, "a str or os.PathLike");
}

std::string str_argument(py::handle value, const char* call, const char* name) {
  if (!py::isinstance<py::str>(value)) wrong_type(value, call, name, "a str");
  return value.cast<std::string>();
}

}  // namespace spillway::python
