// src/graph/session_growth.cpp — see session_growth.hpp.
#include "session_growth.hpp"

#include <chrono>
#include <cmath>
#include <random>

namespace spillway::graph {

const char* growth_mode_name(GrowthMode m) { return m == GrowthMode::Leaky ? "leaky" : "clear"; }

namespace {

using Clock = std::chrono::steady_clock;

struct Data {
  std::vector<float> x;  // samples x features
  std::vector<float> y;  // samples x 1, 0 or 1
};

// Linearly separable: the label is the sign of a fixed random hyperplane
// (with a margin: points too close to it are pushed away).
Data make_data(const GrowthOptions& o) {
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> w(static_cast<std::size_t>(o.features));
  for (auto& v : w) v = normal(rng);
  Data d;
  d.x.resize(static_cast<std::size_t>(o.samples) * o.features);
  d.y.resize(static_cast<std::size_t>(o.samples));
  for (int i = 0; i < o.samples; ++i) {
    float dot = 0;
    float* row = &d.x[static_cast<std::size_t>(i) * o.features];
    for (int j = 0; j < o.features; ++j) {
      row[j] = normal(rng);
      dot += row[j] * w[static_cast<std::size_t>(j)];
    }
    if (std::fabs(dot) < 0.5f) {  // margin
      const float push = (dot >= 0 ? 0.5f : -0.5f) - dot;
      float norm2 = 0;
      for (float v : w) norm2 += v * v;
      for (int j = 0; j < o.features; ++j) row[j] += push * w[static_cast<std::size_t>(j)] / norm2;
      dot += push;
    }
    d.y[static_cast<std::size_t>(i)] = dot > 0 ? 1.0f : 0.0f;
  }
  return d;
}

struct Model {
  Output x, y, w, b, logits, loss;
  std::vector<Output> grads;  // d loss / d w, d loss / d b
};

Model build(Session& s, const GrowthOptions& o, const std::string& suffix,
            const std::vector<float>& w0, const std::vector<float>& b0) {
  Model m;
  m.x = s.placeholder("x" + suffix, Shape{{o.samples, o.features}});
  m.y = s.placeholder("y" + suffix, Shape{{o.samples, 1}});
  m.w = s.variable("w" + suffix, Shape{{o.features, 1}}, w0);
  m.b = s.variable("b" + suffix, Shape{{1}}, b0);
  m.logits = s.bias_add(s.matmul(m.x, m.w), m.b);
  m.loss = s.reduce_mean(s.logistic_loss(m.logits, m.y));
  m.grads = s.gradients(m.loss, {m.w, m.b});
  return m;
}

std::uint64_t moved_bytes(const PoolStats& s, int from, int to) {
  return s.move(static_cast<Tier>(from), static_cast<Tier>(to)).bytes;
}

}  // namespace

std::vector<EpochRecord> run_session_growth(Session& session, const GrowthOptions& o,
                                            GrowthMode mode,
                                            const std::function<void(const EpochRecord&)>& on_epoch,
                                            const std::function<void(const StepRecord&)>& on_step) {
  if (o.samples <= 0 || o.features <= 0 || o.epochs <= 0 || o.steps_per_epoch <= 0) {
    throw std::invalid_argument("session-growth: samples, features, epochs and steps must be positive");
  }
  Pool& pool = session.pool();
  const Data data = make_data(o);
  const Tensor x = Tensor::from(pool, Shape{{o.samples, o.features}}, data.x);
  const Tensor y = Tensor::from(pool, Shape{{o.samples, 1}}, data.y);
  std::vector<float> w(static_cast<std::size_t>(o.features), 0.0f), b(1, 0.0f);
  Model m = build(session, o, "", w, b);
  std::vector<EpochRecord> records;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    if (epoch > 0) {
      if (mode == GrowthMode::Clear) {
        const Checkpoint ck = session.save();
        session.clear_session();
        m = build(session, o, "", w, b);  // fresh variables...
        session.restore(ck);              // ...holding the saved weights
      } else {
        // A new model in the same graph, from the last model's weights.
        auto vals = session.run({m.w, m.b});
        std::string suffix = "_";
        suffix += std::to_string(epoch);
        m = build(session, o, suffix, vals[0].values(), vals[1].values());
      }
    }
    const PoolStats before = pool.stats();
    const SessionStats sbefore = session.stats();
    EpochRecord r;
    r.epoch = epoch;
    r.mode = mode;
    double total_ms = 0;
    float loss = 0;
    for (int step = 0; step < o.steps_per_epoch; ++step) {
      const auto t0 = Clock::now();
      // Ops created inside the training loop, as in the reported bugs.
      const Output lr = session.constant(o.learning_rate);
      const Output up_w = session.apply_gradient_descent(m.w, m.grads[0], lr);
      const Output up_b = session.apply_gradient_descent(m.b, m.grads[1], lr);
      auto out = session.run({m.loss}, {{m.x, x}, {m.y, y}}, {up_w, up_b});
      loss = out[0].item();
      const auto t1 = Clock::now();
      const double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
      total_ms += ms;
      r.last_step_ms = ms;
      if (on_step) {
        StepRecord sr;
        sr.epoch = epoch;
        sr.step = step;
        sr.start_ns = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count());
        sr.duration_ns = static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
        sr.graph_nodes = session.node_count();
        on_step(sr);
      }
    }
    // Accuracy of the epoch's weights (not timed).
    auto vals = session.run({m.logits, m.w, m.b}, {{m.x, x}});
    const std::vector<float> logits = vals[0].values();
    w = vals[1].values();
    b = vals[2].values();
    int correct = 0;
    for (int i = 0; i < o.samples; ++i) {
      correct += (logits[static_cast<std::size_t>(i)] > 0) == (data.y[static_cast<std::size_t>(i)] > 0.5f);
    }
    const PoolStats after = pool.stats();
    const SessionStats safter = session.stats();
    r.step_ms = total_ms / o.steps_per_epoch;
    r.plan_ms = (safter.plan_seconds - sbefore.plan_seconds) * 1e3 / o.steps_per_epoch;
    r.graph_nodes = session.node_count();
    r.loss = loss;
    r.accuracy = static_cast<float>(correct) / static_cast<float>(o.samples);
    for (int t = 0; t < 3; ++t) {
      r.tier_used[t] = after.tiers[static_cast<std::size_t>(t)].used_bytes;
      for (int u = 0; u < 3; ++u) r.moved[t][u] = moved_bytes(after, t, u) - moved_bytes(before, t, u);
    }
    r.stall_ms = (after.stall_seconds - before.stall_seconds) * 1e3;
    records.push_back(r);
    if (on_epoch) on_epoch(r);
  }
  return records;
}

}  // namespace spillway::graph
