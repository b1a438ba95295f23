// src/core/pool_access.hpp — the way from a public Pool to its PoolCore, for
// tests and the stress harness (which link the library's internals). Not
// part of the public API: nothing in include/ uses it.
#pragma once

#include "pool_core.hpp"
#include "spillway/pool.hpp"

namespace spillway::detail {

struct PoolAccess {
  static PoolCore& core(Pool& pool) { return *pool.core_; }
};

}  // namespace spillway::detail
