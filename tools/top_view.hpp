// tools/top_view.hpp — what `spillway top` prints for a snapshot: per-tier
// bars, moves per tier pair with their rates, stalls, pins, evictions and
// errors. Pure functions of PoolStats, so that tests can check them (the
// test binary compiles top_view.cpp too).
#pragma once

#include <cstdint>
#include <string>

#include "spillway/stats.hpp"

namespace spillway::tools {

inline constexpr int kTopBarWidth = 32;

// "[####=====.......]" of `width` cells: '#' pinned, '=' used and not
// pinned, '.' free, in proportion to the capacity.
std::string tier_bar(const TierStats& tier, int width = kTopBarWidth);

// The body of one screen for `cur`. With seconds > 0 the rates of moves,
// pins and stall time are those between `prev` and `cur`, `seconds` apart;
// otherwise only totals are shown.
std::string render_top(const PoolStats& prev, const PoolStats& cur, double seconds);

}  // namespace spillway::tools
