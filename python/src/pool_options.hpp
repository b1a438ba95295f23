// python/src/pool_options.hpp — spillway.Pool's keyword arguments <-> PoolOptions.
//
// Every PoolOptions field has one flat keyword (device_bytes, host_pinned,
// disk_dir, pressure_wait, ...; the table in pool_options.cpp and
// docs/python.md list them). DiskOptions::env, a C++ object, is the one field
// Python cannot set. A keyword given as None leaves the field as it was (the
// default, or the environment's value for Pool.from_env). Unknown keywords
// raise TypeError, values of the wrong type TypeError, values out of range
// ValueError, each naming the keyword.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "spillway/options.hpp"

namespace spillway::python {

// Applies `keywords` over `base` and validates the result.
PoolOptions options_from_keywords(PoolOptions base, const pybind11::dict& keywords);
// The options as keywords: Pool(**options_to_keywords(o)) makes the same options.
pybind11::dict options_to_keywords(const PoolOptions& options);
// PoolOptions' messages name C++ fields ("spillway: PoolOptions:
// device.staging_buffers must be ..."); this says the keyword instead.
std::string keyword_message(std::string message);
// Every keyword, in the table's order.
std::vector<std::string> option_keywords();

}  // namespace spillway::python
