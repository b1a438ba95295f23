// src/graph/session_growth.hpp — the session-growth experiment's training
// loop (the `spillway session-growth` command runs it; the tests check it).
//
// A single-layer perceptron (logistic regression) on a seeded, linearly
// separable synthetic data set, trained by full-batch gradient descent for
// `epochs` epochs of `steps_per_epoch` steps, in one of two modes:
//   - Leaky: the loop keeps adding to the one graph, as the reported Keras /
//     TF1 bugs did: a new model (variables and ops) per epoch, initialised
//     from the last one's weights, and a learning-rate constant plus update
//     ops created inside every step. Every step re-plans a graph that only
//     grows.
//   - Clear: the same loop, but at each epoch boundary it saves the
//     weights, clears the session, rebuilds the model and restores them.
// Both modes do the same arithmetic in the same order: their losses agree.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "spillway/graph/graph.hpp"
#include "spillway/stats.hpp"

namespace spillway::graph {

enum class GrowthMode { Leaky, Clear };
const char* growth_mode_name(GrowthMode m);

struct GrowthOptions {
  int samples = 1000;
  int features = 32;
  int epochs = 40;
  int steps_per_epoch = 10;
  float learning_rate = 0.5f;
  std::uint64_t seed = 42;
};

struct EpochRecord {
  int epoch = 0;
  GrowthMode mode = GrowthMode::Leaky;
  double step_ms = 0;        // mean wall time of the epoch's steps
  double last_step_ms = 0;
  double plan_ms = 0;        // of which re-planning (reading node definitions)
  std::size_t graph_nodes = 0;
  float loss = 0;            // after the epoch's last step
  float accuracy = 0;        // on the training set, after the epoch
  std::uint64_t tier_used[3] = {};          // bytes per tier at the epoch's end
  std::uint64_t moved[3][3] = {};           // bytes moved per tier pair during the epoch
  double stall_ms = 0;                      // pin stall during the epoch
};

// One training step, as on_step reports it (steady-clock nanoseconds).
struct StepRecord {
  int epoch = 0;
  int step = 0;
  std::uint64_t start_ns = 0;
  std::uint64_t duration_ns = 0;
  std::size_t graph_nodes = 0;
};

// Runs the experiment in `session` (which should be fresh); calls `on_step`
// after each step and `on_epoch` after each epoch. Returns every epoch's
// record.
std::vector<EpochRecord> run_session_growth(Session& session, const GrowthOptions& options,
                                            GrowthMode mode,
                                            const std::function<void(const EpochRecord&)>& on_epoch = {},
                                            const std::function<void(const StepRecord&)>& on_step = {});

}  // namespace spillway::graph
