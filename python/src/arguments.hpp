// python/src/arguments.hpp — converting Python arguments, with errors that
// name the call and the argument.
//
// Tiers and access modes are strings in Python ("device", "host", "disk";
// "r", "rw"); sizes are non-negative ints or size strings ("64M", "1.5G",
// parsed by spillway::parse_byte_size). A value of the wrong type raises
// TypeError, a value of the right type but out of range ValueError, each
// message starting "spillway: <call>: <argument>".
#pragma once

#include <pybind11/pybind11.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "spillway/tier.hpp"

namespace spillway::python {

// `allowed` lists the tiers the call accepts, in the order the message names them.
Tier tier_argument(pybind11::handle value, const char* call, const char* name,
                   std::initializer_list<Tier> allowed);
Access access_argument(pybind11::handle value, const char* call);
const char* access_name(Access access);

// A byte count: an int >= 0 (or anything with __index__, bool excepted), or
// a size string; "unlimited" only where `unlimited_ok`.
std::uint64_t size_argument(pybind11::handle value, const char* call, const char* name,
                            bool unlimited_ok = false);
// An int (or __index__) in [min, max].
long long int_argument(pybind11::handle value, const char* call, const char* name, long long min,
                       long long max);
// A real number (int or float, bool excepted).
double float_argument(pybind11::handle value, const char* call, const char* name);
bool bool_argument(pybind11::handle value, const char* call, const char* name);
// Seconds as an int or float, or a datetime.timedelta; >= 0, rounded to milliseconds.
std::chrono::milliseconds duration_argument(pybind11::handle value, const char* call, const char* name);
// A str or os.PathLike.
std::string path_argument(pybind11::handle value, const char* call, const char* name);
// A str.
std::string str_argument(pybind11::handle value, const char* call, const char* name);

// "spillway: <call>: <name> " — the start of every argument error.
std::string argument_error_prefix(const char* call, const char* name);

}  // namespace spillway::python
