// src/offline/flow_bound.cpp — the flow bound (flow_bound.hpp).
//
// The network (one node per point, plus one after the last):
//   * a *central* arc p -> p+1 for every point p, with capacity the room the
//     pins leave there, (capacity - pinned(p)), cost 0;
//   * a *bypass* arc first_i -> last_i + 1 for every interval i that covers
//     a point, with capacity u_i = room_i and cost benefit_i / u_i per unit;
//   * node first_i supplies u_i and node last_i + 1 takes u_i back.
// Conservation makes the central flow on p equal to the sum, over the
// intervals covering p, of u_i minus i's bypass flow: the part of i that is
// "kept". So a feasible flow is a fractional choice of kept intervals that
// fits at every point, and the minimum cost is the least benefit any such
// choice loses. Every real schedule is such a choice with 0/1 parts, so no
// schedule loses less: a lower bound on the bytes moved.
//
// Units and rounding, both in the bound's favour of validity: capacities
// are counted in the greatest common divisor of the intervals' rooms (the
// granularity, usually 256 bytes), the room left at a point rounded down
// (kept rooms are multiples of the unit, so a fitting set still fits);
// costs are fixed point, rounded down, so the solved minimum is at most the
// exact one; the result is rounded down again to whole bytes.
#include "src/offline/flow_bound.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include <lemon/network_simplex.h>
#include <lemon/smart_graph.h>

namespace spillway::offline {

std::optional<FlowLowerBound> flow_lower_bound(const IntervalTrace& t, std::span<const std::uint64_t> benefit,
                                               std::uint64_t capacity, std::size_t max_intervals) {
  const std::size_t n = t.points();
  std::vector<std::uint32_t> covering;
  for (std::size_t i = 0; i < t.intervals(); ++i) {
    if (t.length(i) > 0 && benefit[i] > 0) covering.push_back(static_cast<std::uint32_t>(i));
  }
  FlowLowerBound out;
  if (covering.size() > max_intervals) return std::nullopt;
  if (covering.empty()) return out;

  std::uint64_t unit = 0;
  long double total_benefit = 0;
  for (std::uint32_t i : covering) {
    unit = std::gcd(unit, t.room[i]);
    total_benefit += static_cast<long double>(benefit[i]);
  }
  unit = std::max<std::uint64_t>(unit, 1);
  // Fixed-point scale for the costs: as fine as keeps the total cost (at
  // most total_benefit x scale) within 50 bits. The solver's artificial
  // arcs cost 2^62 (LEMON: max / 2 + 1) and node potentials are that plus
  // sums of arc costs, so those sums must stay far below 2^62.
  const long double limit = std::ldexp(1.0L, 50);
  long double scale = std::ldexp(1.0L, 24);
  while (scale > 1 && total_benefit * scale > limit) scale /= 2;

  using Graph = lemon::SmartDigraph;
  Graph g;
  g.reserveNode(static_cast<int>(n + 1));
  g.reserveArc(static_cast<int>(n + covering.size()));
  std::vector<Graph::Node> node(n + 1);
  for (auto& v : node) v = g.addNode();
  Graph::ArcMap<std::int64_t> upper(g), cost(g);
  Graph::NodeMap<std::int64_t> supply(g, 0);
  std::int64_t pinned = 0;
  for (std::size_t p = 0; p < n; ++p) {
    pinned += t.mandatory_delta[p];
    const Graph::Arc a = g.addArc(node[p], node[p + 1]);
    const std::uint64_t left = capacity - static_cast<std::uint64_t>(pinned);  // pins fit: REQUIRES
    upper[a] = static_cast<std::int64_t>(std::min<std::uint64_t>(left / unit, std::numeric_limits<std::int64_t>::max() / 4));
    cost[a] = 0;
  }
  std::vector<Graph::Arc> bypass(covering.size());
  for (std::size_t k = 0; k < covering.size(); ++k) {
    const std::uint32_t i = covering[k];
    const auto u = static_cast<std::int64_t>(t.room[i] / unit);
    const Graph::Arc a = g.addArc(node[t.first[i]], node[t.last[i] + std::size_t{1}]);
    upper[a] = u;
    cost[a] = static_cast<std::int64_t>(std::floor(static_cast<long double>(benefit[i]) * scale / static_cast<long double>(u)));
    supply[node[t.first[i]]] += u;
    supply[node[t.last[i] + std::size_t{1}]] -= u;
    bypass[k] = a;
  }
  lemon::NetworkSimplex<Graph, std::int64_t, std::int64_t> solver(g);
  const auto status = solver.upperMap(upper).costMap(cost).supplyMap(supply).run();
  if (status != decltype(solver)::OPTIMAL) {
    // Cannot happen: every supply can take its own bypass arc.
    return std::nullopt;
  }
  out.arcs = n + covering.size();
  const long double unsaved = static_cast<long double>(solver.totalCost<long double>()) / scale;
  out.unsaved_bytes = static_cast<std::uint64_t>(std::floor(unsaved));
  long double wb = 0;
  for (std::size_t k = 0; k < covering.size(); ++k) {
    const std::uint32_t i = covering[k];
    const std::int64_t f = solver.flow(bypass[k]);
    if (f == 0 || benefit[i] == t.bytes[i]) continue;
    wb += static_cast<long double>(benefit[i] - t.bytes[i]) * static_cast<long double>(f) /
          static_cast<long double>(t.room[i] / unit);
  }
  out.unsaved_writeback_bytes = std::min(out.unsaved_bytes, static_cast<std::uint64_t>(std::floor(wb)));
  return out;
}

}  // namespace spillway::offline
