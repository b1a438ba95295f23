// python/src/errors.hpp — how C++ failures become Python exceptions.
//
// The exception classes themselves are defined in Python (spillway/errors.py,
// where they have docstrings and a place in the hierarchy: OutOfMemory is a
// MemoryError, IoError an OSError, ...). load_error_types() fetches them once
// when the extension is imported; translate_exception() then raises the one
// that matches a C++ exception, keeping its message and copying its fields
// (tier, errno, file, offset, checksums) onto the Python object.
//
// The binding layer throws the small exception types below for misuse that
// the C++ core cannot see: a closed pool, a freed buffer, a released pin, a
// pool used in a forked child, a release while views are exported, a close
// while another thread is inside a call. Argument errors use pybind11's
// type_error and value_error (TypeError, ValueError).
#pragma once

#include <pybind11/pybind11.h>

#include <exception>
#include <stdexcept>
#include <string>

namespace spillway::python {

// Use of a closed Pool, a freed Buffer or a released Pin: spillway.ClosedError.
struct ClosedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A Pool (or its buffers or pins) used in a process forked from the one that
// created it: spillway.ForkError.
struct ForkError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Releasing or freeing memory that Python views still point at: BufferError.
struct ExportedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Freeing or closing while another thread is inside a call on the same
// buffer or pool (its GIL released): RuntimeError.
struct BusyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Imports spillway.errors and keeps its classes. Call once, from the module's init.
void load_error_types();

// A pybind11 exception translator: raises the Python exception for spillway's
// C++ exceptions and the binding layer's own; rethrows anything else (pybind11
// then applies its default mapping).
void translate_exception(std::exception_ptr error);

// For C callbacks (the buffer protocol, DLPack deleters) that must not let a
// C++ exception escape: sets the Python error for the exception being
// handled. Call only inside a catch block.
void set_python_error_from_current_exception() noexcept;

}  // namespace spillway::python
