// python/src/module.cpp — the extension module spillway._spillway.
//
// The public names are re-exported by spillway/__init__.py, which also
// defines spillway.Pool (a subclass of the Pool here that adds the keyword
// signature). What the classes do and how their lifetimes are tied:
// handles.hpp; docs/python.md for users.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>

#include "arguments.hpp"
#include "errors.hpp"
#include "handles.hpp"
#include "pool_options.hpp"
#include "spillway/options.hpp"
#include "spillway/stats.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_spillway, m) {
  using namespace spillway::python;
  m.doc() = "spillway's C++ core: Pool, Buffer and Pin (use the spillway package).";

  install_fork_handler();
  load_error_types();
  py::register_local_exception_translator(&translate_exception);

  bind_pool(m);
  bind_buffer(m);
  bind_pin(m);
  bind_graph(m);
  // Shown as spillway.Buffer / spillway.Pin (spillway.Pool is the Python subclass).
  for (const char* name : {"Buffer", "Pin", "TraceSpan"}) m.attr(name).attr("__module__") = "spillway";

  m.def(
      "parse_size",
      [](py::handle value) -> py::object {
        const std::uint64_t bytes = size_argument(value, "parse_size()", "size", true);
        if (bytes == spillway::kUnlimited) return py::none();
        return py::int_(bytes);
      },
      py::arg("size"),
      R"doc(Bytes in `size`: an int, or a string such as "4096", "64K", "64KiB", "1.5G", "2 MiB"
(binary multiples). "unlimited" gives None.)doc");
  m.def(
      "format_bytes", [](std::uint64_t bytes) { return spillway::format_bytes(bytes); }, py::arg("nbytes"),
      "Bytes as people read them: '512 B', '12.0 MiB'.");
  m.def("option_names", &option_keywords, "Every keyword that spillway.Pool accepts.");
}
