// spillway/graph/graph.hpp — a small TensorFlow-1-style graph executor whose
// node definitions and tensors live in a spillway Pool.
//
// Build a graph of nodes (placeholders, variables, constants and ops) through
// a Session, then run(fetches, feeds). As in TensorFlow 1:
//   - every node's definition is serialized into a pool Buffer when it is
//     added; the graph keeps only handles (and each output's shape);
//   - when the graph has changed since the last run, the session re-plans:
//     it reads every node definition back (a Read pin each) to validate the
//     graph, prune it to what the fetches need and order it — an O(graph)
//     cost that turns into spills and fetches once the definitions outgrow
//     the faster tiers. Plans are cached per (fetches, feeds, targets)
//     signature until the graph changes again;
//   - clear_session() drops the graph, its variables and every byte they
//     held on every tier; save()/restore() carry variable values across it.
//
// Tensors are float32, row-major, backed by pool Buffers. Ops run on the
// device tier when it is host accessible (the Simulated backend) and on the
// host tier otherwise; MatMul uses the host's BLAS (cblas_sgemm).
//
// Thread safety: one Session is used from one thread at a time; a run may
// execute independent ops on several threads (SessionOptions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "spillway/pool.hpp"

namespace spillway::graph {

struct Shape {
  std::vector<std::int64_t> dims;  // empty: a scalar
  std::int64_t elements() const;
  std::string str() const;  // "[1000, 2]", "[]"
  bool operator==(const Shape&) const = default;
};

// A float32 value backed by a pool Buffer (shared by copies of the Tensor).
class Tensor {
 public:
  Tensor() = default;
  // Allocates a buffer for `shape` in `pool` and copies `values` into it
  // (values.size() must equal shape.elements(): std::invalid_argument).
  static Tensor from(Pool& pool, Shape shape, std::span<const float> values);
  static Tensor scalar(Pool& pool, float value);

  const Shape& shape() const { return shape_; }
  explicit operator bool() const { return buffer_ != nullptr; }
  Buffer& buffer() const { return *buffer_; }
  // A copy of the values (pins the buffer on the host for Read).
  std::vector<float> values() const;
  float item() const;  // the only value of a one-element tensor

 private:
  friend class Session;
  Tensor(Shape shape, std::shared_ptr<Buffer> buffer) : shape_(std::move(shape)), buffer_(std::move(buffer)) {}
  Shape shape_;
  std::shared_ptr<Buffer> buffer_;
};

// One node's output, as returned by the builders below. Valid until the
// session is cleared.
struct Output {
  std::int64_t node = -1;
  std::uint64_t generation = 0;  // the session generation it was built in
  bool operator==(const Output&) const = default;
};

// What the session did, for tests, benchmarks and the experiment.
struct SessionStats {
  std::uint64_t runs = 0;
  std::uint64_t plans_built = 0;       // re-plans (graph changed or new signature)
  std::uint64_t plan_cache_hits = 0;
  std::uint64_t node_defs_read = 0;    // node definitions read back while planning
  std::uint64_t nodes_executed = 0;
  double plan_seconds = 0;             // spent re-planning
  double execute_seconds = 0;          // spent running planned nodes
  std::uint64_t device_matmuls = 0;    // MatMuls run on the GPU (cuBLAS; CUDA backend only)
};

// Variable values by name, outside the pool (what survives clear_session).
using Checkpoint = std::map<std::string, std::vector<float>>;

struct SessionOptions {
  // How many ops may run at once (TensorFlow's inter_op_parallelism_threads):
  // a run executes every op whose inputs are ready, on the calling thread
  // and inter_op_threads - 1 workers of the session's. 0: the hardware's
  // threads (std::thread::hardware_concurrency()); 1: one op at a time, in
  // the plan's order. Results do not depend on it: an op that updates a
  // variable runs after the ops before it in the graph that read the
  // variable, and before those after it. Ops run at once only while the
  // bytes they pin (inputs and output) fit their tier together; an op that
  // runs out of room beside others runs again alone (docs/concurrency.md).
  unsigned inter_op_threads = 0;
};

class Session {
 public:
  explicit Session(Pool& pool, SessionOptions options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // ---- building (each call adds one node, unless noted) -----------------
  Output placeholder(const std::string& name, Shape shape);
  // A variable with its initial value (values.size() == shape.elements()).
  // Names are unique among the graph's variables.
  Output variable(const std::string& name, Shape shape, std::span<const float> initial);
  // A constant; its values are part of its node definition, as in TF1.
  Output constant(Shape shape, std::span<const float> values);
  Output constant(float value) { return constant(Shape{}, std::span<const float>(&value, 1)); }
  // [m,k] x [k,n] -> [m,n]; transpose flags apply to the inputs.
  Output matmul(Output a, Output b, bool transpose_a = false, bool transpose_b = false);
  Output add(Output a, Output b);       // same shapes
  Output bias_add(Output x, Output b);  // x [m,n] + b [n] on every row
  Output relu(Output x);
  Output sigmoid(Output x);
  // Elementwise logistic loss of logits against 0/1 labels (same shapes):
  // max(z, 0) - z * t + log(1 + exp(-|z|)).
  Output logistic_loss(Output logits, Output labels);
  Output reduce_mean(Output x);  // -> scalar
  // d(loss)/d(x) for each x, as new graph nodes (reverse-mode over the ops
  // above). `loss` must be a scalar. An x that loss does not depend on gets
  // a zero-filled constant.
  std::vector<Output> gradients(Output loss, const std::vector<Output>& xs);
  // var -= learning_rate * grad when run (as a target). Returns the node.
  Output apply_gradient_descent(Output var, Output grad, Output learning_rate);

  // ---- running -------------------------------------------------------------
  // Evaluates `fetches` (and runs `targets` for their effects), feeding the
  // placeholders in `feeds`. Throws std::invalid_argument naming the node
  // when a needed placeholder is not fed, a feed has the wrong shape, or an
  // Output belongs to a cleared graph.
  std::vector<Tensor> run(const std::vector<Output>& fetches,
                          const std::vector<std::pair<Output, Tensor>>& feeds = {},
                          const std::vector<Output>& targets = {});

  // Drops the graph: every node definition, variable and cached plan, and
  // every byte they held on every tier — all given back when it returns (it
  // waits, within the pool's io_timeout, for moves of those bytes still in
  // flight). Outputs built before become invalid.
  void clear_session();
  // Values of every variable, by name / written back into the variables of
  // the current graph with those names (others are left alone; a shape
  // mismatch throws std::invalid_argument naming the variable).
  Checkpoint save();
  void restore(const Checkpoint& checkpoint);

  std::size_t node_count() const;
  const Shape& shape(Output o) const;
  const SessionStats& stats() const;
  Pool& pool() const;
  // Where MatMul runs: "cuBLAS (device 0)" on the CUDA backend with a usable
  // GPU, otherwise "host BLAS", followed on the CUDA backend by why not.
  std::string matmul_backend() const;
  // The threads a run may use (SessionOptions::inter_op_threads resolved).
  unsigned inter_op_threads() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace spillway::graph
