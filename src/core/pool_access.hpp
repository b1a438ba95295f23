// src/core/pool_access.hpp — the way from a public Pool to its PoolCore, for
// tests and the stress harness (which link the library's internals). Not
// part of the public API: nothing in include/ uses it.
#pragma once

#include "pool_core.hpp"
#include "spillway/pool.hpp"

namespace spillway::detail {

struct PoolAccess {
  static PoolCore& core(Pool& pool) { return *pool.core_; }
  // Whether the buffer's state word holds a pin for reader slots
  // (Note [Read-shared buffers]).
  static bool read_shared(const Buffer& b) {
    return (b.record_->state.load(std::memory_order_seq_cst) & state::kBiasPin) != 0;
  }
};

}  // namespace spillway::detail
