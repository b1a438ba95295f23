// src/graph/session.cpp — the graph executor (see spillway/graph/graph.hpp).
//
// Layout: the in-memory graph keeps, per node, what building needs (op,
// inputs, output shape) and a pool Buffer holding the node's serialized
// definition (JSON, as a GraphDef holds NodeDefs). Planning reads those
// definitions back from the pool; execution follows the plan, keeping every
// tensor in the pool too.
#include "spillway/graph/graph.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "device_blas.hpp"
#include "kernels.hpp"

namespace spillway::graph {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---- Shape / Tensor --------------------------------------------------------------

std::int64_t Shape::elements() const {
  std::int64_t n = 1;
  for (auto d : dims) n *= d;
  return n;
}

std::string Shape::str() const {
  std::string s = "[";
  for (std::size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

namespace {

void check_shape(const Shape& s, const char* what) {
  for (auto d : s.dims) {
    if (d < 0) throw std::invalid_argument(std::string("spillway graph: ") + what + ": negative dimension in " + s.str());
  }
}

std::shared_ptr<Buffer> new_buffer(Pool& pool, const Shape& shape, Tier tier, const std::string& label) {
  return std::make_shared<Buffer>(
      pool.allocate(static_cast<std::size_t>(shape.elements()) * sizeof(float), tier, label));
}

}  // namespace

Tensor Tensor::from(Pool& pool, Shape shape, std::span<const float> values) {
  check_shape(shape, "Tensor::from");
  if (static_cast<std::int64_t>(values.size()) != shape.elements()) {
    throw std::invalid_argument("spillway graph: Tensor::from: " + std::to_string(values.size()) +
                                " values for shape " + shape.str());
  }
  auto buf = new_buffer(pool, shape, Tier::Host, "tensor");
  if (!values.empty()) {
    Pin p = buf->pin(Tier::Host, Access::ReadWrite);
    std::memcpy(p.data(), values.data(), values.size_bytes());
  }
  return Tensor(std::move(shape), std::move(buf));
}

Tensor Tensor::scalar(Pool& pool, float value) {
  return from(pool, Shape{}, std::span<const float>(&value, 1));
}

std::vector<float> Tensor::values() const {
  if (!buffer_) throw std::logic_error("spillway graph: values() of an empty Tensor");
  std::vector<float> v(static_cast<std::size_t>(shape_.elements()));
  if (!v.empty()) {
    Pin p = buffer_->pin(Tier::Host, Access::Read);
    std::memcpy(v.data(), p.data(), v.size() * sizeof(float));
  }
  return v;
}

float Tensor::item() const {
  if (shape_.elements() != 1) {
    throw std::logic_error("spillway graph: item() of a tensor of shape " + shape_.str());
  }
  return values()[0];
}

// ---- Session internals --------------------------------------------------------------

namespace {

enum class Op {
  Placeholder, Variable, Const, MatMul, Add, BiasAdd, Relu, Sigmoid, LogisticLoss, ReduceMean,
  ReluGrad, SigmoidGrad, LogisticLossGrad, ReduceMeanGrad, BiasAddGrad, ApplyGradientDescent
};

const char* op_name(Op op) {
  switch (op) {
    case Op::Placeholder: return "Placeholder";
    case Op::Variable: return "VariableV2";
    case Op::Const: return "Const";
    case Op::MatMul: return "MatMul";
    case Op::Add: return "Add";
    case Op::BiasAdd: return "BiasAdd";
    case Op::Relu: return "Relu";
    case Op::Sigmoid: return "Sigmoid";
    case Op::LogisticLoss: return "LogisticLoss";
    case Op::ReduceMean: return "ReduceMean";
    case Op::ReluGrad: return "ReluGrad";
    case Op::SigmoidGrad: return "SigmoidGrad";
    case Op::LogisticLossGrad: return "LogisticLossGrad";
    case Op::ReduceMeanGrad: return "ReduceMeanGrad";
    case Op::BiasAddGrad: return "BiasAddGrad";
    case Op::ApplyGradientDescent: return "ApplyGradientDescent";
  }
  return "?";
}

Op op_from_name(const std::string& s, std::int64_t id) {
  for (int i = 0; i <= static_cast<int>(Op::ApplyGradientDescent); ++i) {
    if (s == op_name(static_cast<Op>(i))) return static_cast<Op>(i);
  }
  throw std::runtime_error("spillway graph: node " + std::to_string(id) + " has unknown op '" + s + "'");
}

// What building keeps in memory per node.
struct NodeInfo {
  Op op;
  std::vector<std::int64_t> inputs;
  Shape shape;
  bool transpose_a = false, transpose_b = false;
  std::shared_ptr<Buffer> def;  // the serialized definition, in the pool
};

// A node as the plan holds it, parsed from its stored definition.
struct PlanNode {
  std::int64_t id = 0;
  Op op = Op::Const;
  std::string name;
  std::vector<std::int64_t> inputs;
  Shape shape;
  bool transpose_a = false, transpose_b = false;
  Tensor value;  // Const: its values, materialised once per plan
};

struct Plan {
  std::vector<PlanNode> steps;
  // For each step, the step at which each of its inputs is next needed.
  std::vector<std::vector<std::pair<std::int64_t, std::size_t>>> next_uses;
  // For each step, the values that outlive the run (variables, constants,
  // feeds) used there for the last time, with the step of their first use:
  // the next run of this plan needs them again then.
  std::vector<std::vector<std::pair<std::int64_t, std::size_t>>> next_run_uses;
  // For each step, the step that first uses its output (none: npos).
  std::vector<std::size_t> first_use_of_output;
  // Scheduling (parallel runs): the steps that must finish before each step
  // may start — its inputs' producers, and the order among the steps that
  // read or update one variable (an update waits for the reads before it in
  // plan order, and the reads after it wait for the update) — and, for
  // each step, the steps waiting on it.
  std::vector<std::size_t> predecessors;  // count per step
  std::vector<std::vector<std::size_t>> successors;
  // For each value, how many input slots of executed steps read it: the
  // value is dropped when the last of them has run (unless fetched).
  std::unordered_map<std::int64_t, std::size_t> readers;
  std::unordered_set<std::int64_t> fed, fetched;
};

// The session's inter-op threads: started at the first parallel run, kept
// for the next ones, joined with the session.
class InterOpWorkers {
 public:
  InterOpWorkers() = default;
  InterOpWorkers(const InterOpWorkers&) = delete;
  InterOpWorkers& operator=(const InterOpWorkers&) = delete;
  ~InterOpWorkers() {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    start_.notify_all();
    for (auto& t : threads_) t.join();
  }
  // Runs `task` once on each of `count` workers; returns at once.
  void run(unsigned count, std::function<void()> task) {
    std::lock_guard lk(mu_);
    while (threads_.size() < count) {
      threads_.emplace_back([this, id = threads_.size()] { loop(id); });
    }
    task_ = std::move(task);
    wanted_ = count;
    active_ = count;
    ++generation_;
    start_.notify_all();
  }
  // Until every worker has returned from the task.
  void wait() {
    std::unique_lock lk(mu_);
    done_.wait(lk, [this] { return active_ == 0; });
    task_ = nullptr;
  }

 private:
  void loop(std::size_t id) {
    std::uint64_t seen = 0;
    std::unique_lock lk(mu_);
    for (;;) {
      start_.wait(lk, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
      if (id >= wanted_) continue;
      auto task = task_;
      lk.unlock();
      task();
      lk.lock();
      if (--active_ == 0) done_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable start_, done_;
  std::vector<std::thread> threads_;
  std::function<void()> task_;
  std::uint64_t generation_ = 0;
  std::size_t wanted_ = 0, active_ = 0;
  bool stopping_ = false;
};

}  // namespace

struct Session::Impl {
  Impl(Pool& p, SessionOptions o) : pool(p), options(o) {
    inter_op_threads = options.inter_op_threads != 0 ? options.inter_op_threads
                                                     : std::max(1u, std::thread::hardware_concurrency());
    compute_tier = pool.tier_enabled(Tier::Device) && pool.device_backend_name() == "simulated"
                       ? Tier::Device
                       : Tier::Host;
    prefetch_inputs = compute_tier == Tier::Host;
    {
      const PoolStats ps = pool.stats();
      for (Tier t : {Tier::Device, Tier::Host}) {
        tier_room[static_cast<std::size_t>(t)] = ps.tier(t).enabled ? ps.tier(t).capacity_bytes : 0;
      }
    }
    // On the CUDA backend MatMul runs on the GPU (cuBLAS) over device pins;
    // the element-wise ops stay on the host.
    if (pool.tier_enabled(Tier::Device) && pool.device_backend_name() == "cuda") {
      device_blas = DeviceBlas::create(pool.options().device.cuda_device, &device_blas_missing);
    }
  }

  Pool& pool;
  SessionOptions options;
  unsigned inter_op_threads = 1;
  // Capacity of each memory tier, for admitting ops to run at once.
  std::array<std::uint64_t, 3> tier_room{};
  InterOpWorkers workers;
  std::mutex device_blas_mu;
  std::atomic<std::uint64_t> device_matmuls{0};
  Tier compute_tier;
  bool prefetch_inputs = false;
  std::unique_ptr<DeviceBlas> device_blas;  // set: MatMul runs on the device
  std::string device_blas_missing;           // why not, on the CUDA backend
  std::uint64_t generation = 1;
  std::vector<NodeInfo> nodes;
  std::unordered_map<std::int64_t, std::pair<std::string, Tensor>> variables;  // node -> (name, value)
  std::unordered_map<std::string, std::int64_t> variable_names;
  std::uint64_t graph_version = 0;       // bumps with every node added
  std::uint64_t planned_version = ~0ull;  // the version the cached plans are for
  std::unordered_map<std::string, std::shared_ptr<Plan>> plans;
  SessionStats stats;
  std::uint64_t step_clock = 0;  // steps executed so far, for next-use hints
  std::size_t name_counter = 0;

  const NodeInfo& node(Output o) const {
    if (o.generation != generation) {
      throw std::invalid_argument("spillway graph: an Output from a cleared session was used");
    }
    if (o.node < 0 || o.node >= static_cast<std::int64_t>(nodes.size())) {
      throw std::invalid_argument("spillway graph: no node " + std::to_string(o.node));
    }
    return nodes[static_cast<std::size_t>(o.node)];
  }

  Output add_node(Op op, std::vector<Output> inputs, Shape shape, json attrs = json::object(),
                  const std::string& name_in = {}) {
    std::vector<std::int64_t> ids;
    for (const auto& i : inputs) {
      node(i);  // validates
      ids.push_back(i.node);
    }
    const auto id = static_cast<std::int64_t>(nodes.size());
    const std::string name = name_in.empty() ? std::string(op_name(op)) + "_" + std::to_string(++name_counter) : name_in;
    json def = {{"id", id}, {"op", op_name(op)}, {"name", name}, {"inputs", ids},
                {"shape", shape.dims}, {"attrs", std::move(attrs)}, {"device", "/device:spillway:0"}};
    const std::string text = def.dump();
    auto buf = std::make_shared<Buffer>(pool.allocate(text.size(), compute_tier, "node:" + name));
    {
      Pin p = buf->pin(compute_tier, Access::ReadWrite);
      std::memcpy(p.data(), text.data(), text.size());
    }
    NodeInfo info;
    info.op = op;
    info.inputs = std::move(ids);
    info.shape = std::move(shape);
    info.transpose_a = def["attrs"].value("transpose_a", false);
    info.transpose_b = def["attrs"].value("transpose_b", false);
    info.def = std::move(buf);
    nodes.push_back(std::move(info));
    ++graph_version;
    return Output{id, generation};
  }

  // ---- planning -------------------------------------------------------------------

  PlanNode read_def(std::int64_t id) {
    const NodeInfo& n = nodes[static_cast<std::size_t>(id)];
    std::string text;
    {
      Pin p = n.def->pin(compute_tier, Access::Read);
      text.assign(static_cast<const char*>(p.data()), p.size());
    }
    ++stats.node_defs_read;
    json def;
    try {
      def = json::parse(text);
    } catch (const json::exception& e) {
      throw std::runtime_error("spillway graph: node " + std::to_string(id) +
                               ": stored definition does not parse: " + e.what());
    }
    PlanNode pn;
    pn.id = def.at("id").get<std::int64_t>();
    if (pn.id != id) {
      throw std::runtime_error("spillway graph: node " + std::to_string(id) + ": stored definition says id " + std::to_string(pn.id));
    }
    pn.op = op_from_name(def.at("op").get<std::string>(), id);
    pn.name = def.at("name").get<std::string>();
    pn.inputs = def.at("inputs").get<std::vector<std::int64_t>>();
    pn.shape.dims = def.at("shape").get<std::vector<std::int64_t>>();
    const json& attrs = def.at("attrs");
    pn.transpose_a = attrs.value("transpose_a", false);
    pn.transpose_b = attrs.value("transpose_b", false);
    for (auto in : pn.inputs) {
      if (in < 0 || in >= id) {
        throw std::runtime_error("spillway graph: node " + std::to_string(id) + " ('" + pn.name +
                                 "') has input " + std::to_string(in) + ", which does not precede it");
      }
    }
    if (pn.op == Op::Const) {
      const auto v = attrs.at("value").get<std::vector<float>>();
      pn.value = Tensor::from(pool, pn.shape, v);
    }
    return pn;
  }

  std::shared_ptr<Plan> plan_for(const std::vector<Output>& fetches,
                                 const std::vector<std::pair<Output, Tensor>>& feeds,
                                 const std::vector<Output>& targets) {
    std::string key;
    for (const auto& f : fetches) {
      node(f);
      key += std::to_string(f.node) + ",";
    }
    key += "|";
    std::vector<std::int64_t> fed;
    for (const auto& [o, t] : feeds) {
      node(o);
      fed.push_back(o.node);
    }
    std::sort(fed.begin(), fed.end());
    for (auto f : fed) key += std::to_string(f) + ",";
    key += "|";
    for (const auto& t : targets) {
      node(t);
      key += std::to_string(t.node) + ",";
    }
    if (planned_version != graph_version) {
      plans.clear();  // the graph changed: every cached plan is stale
      planned_version = graph_version;
    }
    if (auto it = plans.find(key); it != plans.end()) {
      ++stats.plan_cache_hits;
      return it->second;
    }
    const auto t0 = Clock::now();
    // As TF1 does when the graph changed, read and validate the whole graph
    // definition, then prune it to what the fetches need.
    std::vector<PlanNode> all;
    all.reserve(nodes.size());
    for (std::int64_t id = 0; id < static_cast<std::int64_t>(nodes.size()); ++id) {
      all.push_back(read_def(id));
    }
    const std::unordered_set<std::int64_t> fed_set(fed.begin(), fed.end());
    std::vector<char> needed(all.size(), 0);
    std::vector<std::int64_t> stack;
    for (const auto& f : fetches) stack.push_back(f.node);
    for (const auto& t : targets) stack.push_back(t.node);
    while (!stack.empty()) {
      const auto id = stack.back();
      stack.pop_back();
      if (needed[static_cast<std::size_t>(id)]) continue;
      needed[static_cast<std::size_t>(id)] = 1;
      if (fed_set.count(id)) continue;  // a fed value needs none of its inputs
      for (auto in : all[static_cast<std::size_t>(id)].inputs) stack.push_back(in);
    }
    auto plan = std::make_shared<Plan>();
    for (auto& pn : all) {
      if (!needed[static_cast<std::size_t>(pn.id)]) continue;
      if (pn.op == Op::Placeholder && !fed_set.count(pn.id)) {
        throw std::invalid_argument("spillway graph: placeholder '" + pn.name + "' (node " +
                                    std::to_string(pn.id) + ") must be fed");
      }
      plan->steps.push_back(std::move(pn));
    }
    // Last use and next uses of every value, by step.
    std::unordered_map<std::int64_t, std::size_t> step_of;
    for (std::size_t s = 0; s < plan->steps.size(); ++s) step_of[plan->steps[s].id] = s;
    std::unordered_map<std::int64_t, std::size_t> last_use;
    std::unordered_map<std::int64_t, std::vector<std::size_t>> uses;
    for (std::size_t s = 0; s < plan->steps.size(); ++s) {
      if (fed_set.count(plan->steps[s].id)) continue;
      for (auto in : plan->steps[s].inputs) {
        last_use[in] = s;
        uses[in].push_back(s);
      }
    }
    std::unordered_set<std::int64_t> fetched;
    for (const auto& f : fetches) fetched.insert(f.node);
    plan->next_uses.resize(plan->steps.size());
    plan->next_run_uses.resize(plan->steps.size());
    plan->first_use_of_output.assign(plan->steps.size(), std::string::npos);
    for (std::size_t s = 0; s < plan->steps.size(); ++s) {
      if (auto it = uses.find(plan->steps[s].id); it != uses.end()) plan->first_use_of_output[s] = it->second.front();
    }
    for (const auto& [id, s] : last_use) {
      const Op op = plan->steps[step_of.at(id)].op;
      const bool persistent = op == Op::Variable || op == Op::Const || fed_set.count(id);
      if (persistent) plan->next_run_uses[s].push_back({id, uses.at(id).front()});
    }
    for (std::size_t s = 0; s < plan->steps.size(); ++s) {
      if (fed_set.count(plan->steps[s].id)) continue;
      for (auto in : plan->steps[s].inputs) {
        const auto& u = uses[in];
        auto it = std::upper_bound(u.begin(), u.end(), s);
        if (it != u.end()) plan->next_uses[s].push_back({in, *it});
      }
    }
    plan->fed = fed_set;
    plan->fetched = fetched;
    schedule(*plan);
    ++stats.plans_built;
    stats.plan_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    plans[key] = plan;
    return plan;
  }

  // The dependency graph of a plan's steps (see Plan::predecessors).
  void schedule(Plan& plan) const {
    const std::size_t n = plan.steps.size();
    std::unordered_map<std::int64_t, std::size_t> step_of;
    for (std::size_t s = 0; s < n; ++s) step_of[plan.steps[s].id] = s;
    std::vector<std::vector<std::size_t>> preds(n);
    auto edge = [&](std::size_t from, std::size_t to) {
      if (from != to) preds[to].push_back(from);
    };
    // The variable whose buffer a value is (a Variable node, or an update
    // of one), or -1.
    auto variable_of = [&](std::int64_t id) -> std::int64_t {
      const std::size_t s = step_of.at(id);
      if (plan.steps[s].op == Op::Variable) return id;
      if (plan.steps[s].op == Op::ApplyGradientDescent) return plan.steps[s].inputs[0];
      return -1;
    };
    std::unordered_map<std::int64_t, std::vector<std::size_t>> touches, updates;
    for (std::size_t s = 0; s < n; ++s) {
      const PlanNode& pn = plan.steps[s];
      if (plan.fed.count(pn.id)) continue;
      for (auto in : pn.inputs) {
        edge(step_of.at(in), s);
        if (const auto v = variable_of(in); v >= 0) touches[v].push_back(s);
        ++plan.readers[in];
      }
      if (pn.op == Op::ApplyGradientDescent) updates[pn.inputs[0]].push_back(s);
    }
    for (const auto& [v, ups] : updates) {
      for (std::size_t u : ups) {
        for (std::size_t t : touches[v]) {
          if (t < u) edge(t, u);
          if (t > u) edge(u, t);
        }
      }
    }
    plan.predecessors.assign(n, 0);
    plan.successors.assign(n, {});
    for (std::size_t s = 0; s < n; ++s) {
      std::sort(preds[s].begin(), preds[s].end());
      preds[s].erase(std::unique(preds[s].begin(), preds[s].end()), preds[s].end());
      for (std::size_t p : preds[s]) {
        if (plan.fed.count(plan.steps[p].id)) continue;  // there from the start
        ++plan.predecessors[s];
        plan.successors[p].push_back(s);
      }
    }
  }

  // ---- execution -----------------------------------------------------------------

  // Where a node computes: MatMul on the device when cuBLAS is there.
  Tier tier_for(Op op) const { return op == Op::MatMul && device_blas ? Tier::Device : compute_tier; }

  Tensor output_tensor(const PlanNode& pn) {
    return Tensor(pn.shape, new_buffer(pool, pn.shape, tier_for(pn.op), pn.name));
  }

  // Runs one node on its input values and returns its output. `first_use`
  // is the next-use hint for the output (0: none): set before the output is
  // first unpinned, so that no eviction sees it unhinted. Called from the
  // executor's threads at once for different nodes: it reads the plan and
  // the variables, and changes nothing of the session's but one variable's
  // bytes (ApplyGradientDescent, ordered by the plan's schedule).
  Tensor execute(const PlanNode& pn, const std::vector<Tensor>& inputs, std::uint64_t first_use) {
    auto in = [&](std::size_t i) -> const Tensor& { return inputs.at(i); };
    const Tier where = tier_for(pn.op);
    auto rd = [&](const Tensor& t) { return t.buffer().pin(where, Access::Read); };
    auto f = [](Pin& p) { return static_cast<float*>(p.data()); };
    auto cf = [](Pin& p) { return static_cast<const float*>(p.data()); };
    switch (pn.op) {
      case Op::Placeholder:
        throw std::logic_error("spillway graph: placeholder '" + pn.name + "' was not fed");
      case Op::Variable: {
        auto it = variables.find(pn.id);
        if (it == variables.end()) throw std::logic_error("spillway graph: variable node without a value");
        if (first_use != 0) it->second.second.buffer().hint_next_use(first_use);
        return it->second.second;
      }
      case Op::Const:
        if (first_use != 0) pn.value.buffer().hint_next_use(first_use);
        return pn.value;
      case Op::ApplyGradientDescent: {
        const Tensor& var = variables.at(pn.inputs[0]).second;
        Pin g = rd(in(1)), lr = rd(in(2));
        Pin v = var.buffer().pin(compute_tier, Access::ReadWrite);
        kernels::gradient_descent(f(v), cf(g), cf(lr)[0], var.shape().elements());
        return var;
      }
      default:
        break;
    }
    Tensor out = output_tensor(pn);
    if (first_use != 0) out.buffer().hint_next_use(first_use);
    {
      Pin o = out.buffer().pin(where, Access::ReadWrite);
      const std::int64_t n = pn.shape.elements();
      switch (pn.op) {
        case Op::MatMul: {
          Pin a = rd(in(0)), b = rd(in(1));
          const auto& as = in(0).shape().dims;
          const std::int64_t m = pn.shape.dims[0], cols = pn.shape.dims[1];
          const std::int64_t k = pn.transpose_a ? as[0] : as[1];
          if (device_blas) {
            std::lock_guard lk(device_blas_mu);  // one cuBLAS handle, one stream
            device_blas->matmul(cf(a), cf(b), f(o), m, k, cols, pn.transpose_a, pn.transpose_b);
            ++device_matmuls;
          } else {
            kernels::matmul(cf(a), cf(b), f(o), m, k, cols, pn.transpose_a, pn.transpose_b);
          }
          break;
        }
        case Op::Add: {
          Pin a = rd(in(0)), b = rd(in(1));
          kernels::add(cf(a), cf(b), f(o), n);
          break;
        }
        case Op::BiasAdd: {
          Pin x = rd(in(0)), b = rd(in(1));
          kernels::bias_add(cf(x), cf(b), f(o), pn.shape.dims[0], pn.shape.dims[1]);
          break;
        }
        case Op::Relu: {
          Pin x = rd(in(0));
          kernels::relu(cf(x), f(o), n);
          break;
        }
        case Op::Sigmoid: {
          Pin x = rd(in(0));
          kernels::sigmoid(cf(x), f(o), n);
          break;
        }
        case Op::LogisticLoss: {
          Pin z = rd(in(0)), t = rd(in(1));
          kernels::logistic_loss(cf(z), cf(t), f(o), n);
          break;
        }
        case Op::ReduceMean: {
          Pin x = rd(in(0));
          f(o)[0] = kernels::reduce_mean(cf(x), in(0).shape().elements());
          break;
        }
        case Op::ReluGrad: {
          Pin x = rd(in(0)), dy = rd(in(1));
          kernels::relu_grad(cf(x), cf(dy), f(o), n);
          break;
        }
        case Op::SigmoidGrad: {
          Pin y = rd(in(0)), dy = rd(in(1));
          kernels::sigmoid_grad(cf(y), cf(dy), f(o), n);
          break;
        }
        case Op::LogisticLossGrad: {
          Pin z = rd(in(0)), t = rd(in(1)), dy = rd(in(2));
          kernels::logistic_loss_grad(cf(z), cf(t), cf(dy), f(o), n);
          break;
        }
        case Op::ReduceMeanGrad: {
          Pin dy = rd(in(0));
          kernels::reduce_mean_grad(cf(dy)[0], f(o), n);
          break;
        }
        case Op::BiasAddGrad: {
          Pin dy = rd(in(0));
          const auto& ds = in(0).shape().dims;
          kernels::bias_add_grad(cf(dy), f(o), ds[0], ds[1]);
          break;
        }
        default:
          throw std::logic_error(std::string("spillway graph: cannot execute ") + op_name(pn.op));
      }
    }
    return out;
  }

  std::vector<Tensor> run(const std::vector<Output>& fetches,
                          const std::vector<std::pair<Output, Tensor>>& feeds,
                          const std::vector<Output>& targets) {
    for (const auto& [o, t] : feeds) {
      const NodeInfo& n = node(o);
      if (!t) throw std::invalid_argument("spillway graph: feed for node " + std::to_string(o.node) + " is empty");
      if (!(t.shape() == n.shape)) {
        throw std::invalid_argument("spillway graph: feed for node " + std::to_string(o.node) +
                                    " has shape " + t.shape().str() + ", the node expects " + n.shape.str());
      }
    }
    auto plan = plan_for(fetches, feeds, targets);
    const auto t0 = Clock::now();
    RunState st(*plan, step_clock);
    for (const auto& [o, t] : feeds) st.values[o.node] = t;
    const std::uint64_t base = step_clock;
    if (inter_op_threads <= 1 || plan->steps.size() < 2) {
      // One op at a time, in the plan's order.
      try {
        for (std::size_t s = 0; s < plan->steps.size(); ++s) run_step(st, s);
      } catch (const StepOutOfRoom& e) {
        std::rethrow_exception(e.error);
      }
    } else {
      run_parallel(st);
    }
    const auto& values = st.values;
    step_clock = base + plan->steps.size();
    std::vector<Tensor> out;
    for (const auto& f : fetches) {
      auto it = values.find(f.node);
      if (it == values.end()) throw std::logic_error("spillway graph: fetch was not computed");
      const Tensor& t = it->second;
      if (nodes[static_cast<std::size_t>(f.node)].op == Op::Variable ||
          nodes[static_cast<std::size_t>(f.node)].op == Op::ApplyGradientDescent) {
        out.push_back(Tensor::from(pool, t.shape(), t.values()));  // a snapshot, as TF returns
      } else {
        out.push_back(t);
      }
    }
    ++stats.runs;
    stats.nodes_executed += st.executed;
    stats.device_matmuls = device_matmuls.load(std::memory_order_relaxed);
    stats.execute_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    return out;
  }

  // ---- the executor's scheduling ------------------------------------------------

  // One run of a plan: the values computed so far and, for parallel runs,
  // the steps ready to start.
  struct RunState {
    RunState(const Plan& p, std::uint64_t clock) : plan(p), base(clock), waiting(p.predecessors), readers(p.readers) {}
    const Plan& plan;
    const std::uint64_t base;  // the step clock at the start of the run, for next-use hints
    std::mutex mu;             // guards everything below
    std::condition_variable cv;
    std::unordered_map<std::int64_t, Tensor> values;
    std::vector<std::size_t> waiting;  // unfinished predecessors per step
    std::unordered_map<std::int64_t, std::size_t> readers;  // input slots still to read each value
    std::vector<std::size_t> ready;    // a min-heap of step indices: the plan's order first
    std::size_t running = 0, finished = 0;
    std::uint64_t executed = 0;
    std::exception_ptr error;
    // Admission (parallel runs): the bytes each step pins on its tier, and
    // the sum for the steps running now, per tier.
    std::vector<std::uint64_t> need;
    std::vector<Tier> where;
    std::array<std::uint64_t, 3> pinned{};
  };

  // Thrown by run_step when the node itself ran out of room: nothing of the
  // run's state has changed yet, so the step may run again.
  struct StepOutOfRoom {
    std::exception_ptr error;
  };

  // Runs step s: its node, the hints and prefetches around it, and drops
  // the values nobody reads any more. Safe on several threads at once.
  void run_step(RunState& st, std::size_t s) {
    const Plan& plan = st.plan;
    const PlanNode& pn = plan.steps[s];
    const std::uint64_t first_use =
        plan.first_use_of_output[s] != std::string::npos ? st.base + plan.first_use_of_output[s] : 0;
    if (plan.fed.count(pn.id)) {
      // A fed value needs no predecessor, so in a parallel run its readers
      // may all have run (and dropped it) before this step comes up.
      std::lock_guard lk(st.mu);
      if (auto it = st.values.find(pn.id); it != st.values.end() && first_use != 0) {
        it->second.buffer().hint_next_use(first_use);
      }
      ++st.executed;
      return;
    }
    std::vector<Tensor> inputs;
    {
      std::lock_guard lk(st.mu);
      inputs.reserve(pn.inputs.size());
      for (auto id : pn.inputs) {
        auto it = st.values.find(id);
        if (it == st.values.end()) {
          throw std::logic_error("spillway graph: node '" + pn.name + "': input " + std::to_string(id) +
                                 " was not computed");
        }
        inputs.push_back(it->second);
      }
    }
    // Each node a span in the pool's trace, when one is being recorded.
    const bool traced = pool.tracing() && pn.op != Op::Const && pn.op != Op::Variable;
    const auto n0 = traced ? Clock::now() : Clock::time_point{};
    Tensor out;
    try {
      out = execute(pn, inputs, first_use);  // hints what it produces
    } catch (const OutOfMemory&) {
      throw StepOutOfRoom{std::current_exception()};
    }
    if (traced) {
      const auto n1 = Clock::now();
      using ns = std::chrono::nanoseconds;
      pool.record_span(pn.name,
                       static_cast<std::uint64_t>(std::chrono::duration_cast<ns>(n0.time_since_epoch()).count()),
                       static_cast<std::uint64_t>(std::chrono::duration_cast<ns>(n1 - n0).count()));
    }
    // Schedule-aware memory: tell the pool when each input is next needed
    // (Lookahead evicts the farthest first) and start bringing the next
    // step's inputs up while this one's output is consumed.
    auto input = [&](std::int64_t id) -> const Tensor* {
      for (std::size_t i = 0; i < pn.inputs.size(); ++i) {
        if (pn.inputs[i] == id) return &inputs[i];
      }
      return nullptr;
    };
    for (const auto& [id, when] : plan.next_uses[s]) {
      if (const Tensor* t = input(id)) t->buffer().hint_next_use(st.base + when);
    }
    for (const auto& [id, first] : plan.next_run_uses[s]) {
      if (const Tensor* t = input(id)) t->buffer().hint_next_use(st.base + plan.steps.size() + first);
    }
    std::vector<Tensor> prefetch;
    {
      std::lock_guard lk(st.mu);
      st.values[pn.id] = std::move(out);
      ++st.executed;
      for (auto id : pn.inputs) {
        if (--st.readers.at(id) == 0 && !plan.fetched.count(id)) st.values.erase(id);
      }
      // Only where the copy can overlap compute (a disk read for a host
      // compute tier): between the simulated device and the host a move is
      // a memcpy that a worker hand-off makes slower, not faster (measured:
      // bench/graph_bench, graph/mlp/lru 5.4 ms with, 3.3 ms without).
      if (prefetch_inputs && s + 1 < plan.steps.size()) {
        for (auto id : plan.steps[s + 1].inputs) {
          if (auto it = st.values.find(id); it != st.values.end()) prefetch.push_back(it->second);
        }
      }
    }
    for (const Tensor& t : prefetch) t.buffer().prefetch(tier_for(plan.steps[s + 1].op));
  }

  // The bytes step s pins on its tier while it runs: its inputs (each
  // once) and the output it makes (Variable, Const and
  // ApplyGradientDescent make none).
  std::uint64_t step_bytes(const PlanNode& pn) const {
    auto bytes = [](const Shape& sh) { return static_cast<std::uint64_t>(sh.elements()) * sizeof(float); };
    if (pn.op == Op::Variable || pn.op == Op::Const || pn.op == Op::Placeholder) return 0;
    std::uint64_t total = pn.op == Op::ApplyGradientDescent ? 0 : bytes(pn.shape);
    for (std::size_t i = 0; i < pn.inputs.size(); ++i) {
      if (std::find(pn.inputs.begin(), pn.inputs.begin() + static_cast<std::ptrdiff_t>(i), pn.inputs[i]) !=
          pn.inputs.begin() + static_cast<std::ptrdiff_t>(i)) {
        continue;
      }
      total += bytes(nodes[static_cast<std::size_t>(pn.inputs[i])].shape);
    }
    return total;
  }

  // Runs the plan's steps as their predecessors finish, on the calling
  // thread and the session's workers. A thread that finishes a step keeps
  // one of the steps it made ready and offers the others; so a chain runs
  // on one thread without a hand-off, and independent branches spread.
  //
  // Admission: steps run at once only while the bytes they pin fit their
  // tier together, so that two ops never each hold half the room the
  // other needs (each would wait PoolOptions::pressure_wait for the other
  // and fail). A step that runs out of room anyway (values pinned outside
  // the executor, fragmentation) runs again alone once the others have
  // finished; only an op that does not fit alone fails the run.
  void run_parallel(RunState& st) {
    const std::size_t n = st.plan.steps.size();
    constexpr std::uint64_t kAlone = ~std::uint64_t{0} / 4;  // admitted only with nothing else running
    st.need.resize(n);
    st.where.resize(n);
    for (std::size_t s = 0; s < n; ++s) {
      const PlanNode& pn = st.plan.steps[s];
      st.where[s] = tier_for(pn.op);
      st.need[s] = st.plan.fed.count(pn.id) ? 0 : step_bytes(pn);
    }
    auto later = std::greater<std::size_t>();  // min-heap: the earliest step in plan order first
    {
      std::lock_guard lk(st.mu);
      for (std::size_t s = 0; s < n; ++s) {
        if (st.waiting[s] == 0) st.ready.push_back(s);
      }
      std::make_heap(st.ready.begin(), st.ready.end(), later);
    }
    // Whether step s may start now (st.mu held).
    auto admits = [this, &st](std::size_t s) {
      if (st.running == 0) return true;
      const auto t = static_cast<std::size_t>(st.where[s]);
      return st.pinned[t] + st.need[s] <= tier_room[t];
    };
    auto offer = [&st, later](std::size_t s) {
      st.ready.push_back(s);
      std::push_heap(st.ready.begin(), st.ready.end(), later);
    };
    // One thread's loop; the caller's returns when every step is done (or
    // one failed and the others in flight have finished).
    auto work = [this, &st, n, later, admits, offer](bool caller) {
      constexpr std::size_t kNone = ~std::size_t{0};
      std::unique_lock lk(st.mu);
      std::size_t next = kNone;
      for (;;) {
        if (next != kNone && !admits(next)) {
          offer(next);  // it waits for room with the others
          next = kNone;
        }
        if (next == kNone) {
          st.cv.wait(lk, [&] {
            return (!st.ready.empty() && !st.error && admits(st.ready.front())) || st.finished == n ||
                   (st.error && st.running == 0) || (!caller && st.finished + st.running == n);
          });
          if (st.ready.empty() || st.error || !admits(st.ready.front())) return;
          std::pop_heap(st.ready.begin(), st.ready.end(), later);
          next = st.ready.back();
          st.ready.pop_back();
        }
        const std::size_t s = next;
        const auto t = static_cast<std::size_t>(st.where[s]);
        next = kNone;
        ++st.running;
        st.pinned[t] += st.need[s];
        lk.unlock();
        std::exception_ptr error;
        bool out_of_room = false;
        try {
          run_step(st, s);
        } catch (const StepOutOfRoom& e) {
          out_of_room = true;
          error = e.error;
        } catch (...) {
          error = std::current_exception();
        }
        lk.lock();
        --st.running;
        st.pinned[t] -= st.need[s];
        if (out_of_room && st.need[s] < kAlone) {  // not yet tried alone
          st.need[s] = kAlone;
          offer(s);
          st.cv.notify_all();
          continue;
        }
        ++st.finished;
        if (error && !st.error) st.error = error;
        if (!st.error) {
          for (std::size_t succ : st.plan.successors[s]) {
            if (--st.waiting[succ] != 0) continue;
            if (next == kNone) {
              next = succ;  // this thread goes on with it
            } else {
              offer(succ);
            }
          }
          // Keep the earliest in plan order for this thread.
          if (next != kNone && !st.ready.empty() && st.ready.front() < next) {
            offer(next);
            std::pop_heap(st.ready.begin(), st.ready.end(), later);
            next = st.ready.back();
            st.ready.pop_back();
          }
        }
        // Wake the others for steps offered, for room given back, and at the end.
        if (!st.ready.empty() || st.finished == n || st.error) st.cv.notify_all();
        if (st.error && st.running == 0 && caller) return;
      }
    };
    workers.run(inter_op_threads - 1, [&] { work(false); });
    work(true);
    workers.wait();
    if (st.error) std::rethrow_exception(st.error);
  }
};

// ---- Session -----------------------------------------------------------------------

Session::Session(Pool& pool, SessionOptions options) : impl_(std::make_unique<Impl>(pool, options)) {}
Session::~Session() = default;

Output Session::placeholder(const std::string& name, Shape shape) {
  check_shape(shape, "placeholder");
  return impl_->add_node(Op::Placeholder, {}, std::move(shape), json::object(), name);
}

Output Session::variable(const std::string& name, Shape shape, std::span<const float> initial) {
  check_shape(shape, "variable");
  if (name.empty()) throw std::invalid_argument("spillway graph: a variable needs a name");
  if (impl_->variable_names.count(name)) {
    throw std::invalid_argument("spillway graph: a variable named '" + name + "' already exists");
  }
  if (static_cast<std::int64_t>(initial.size()) != shape.elements()) {
    throw std::invalid_argument("spillway graph: variable '" + name + "': " +
                                std::to_string(initial.size()) + " initial values for shape " + shape.str());
  }
  Output o = impl_->add_node(Op::Variable, {}, shape, json::object(), name);
  Tensor value = Tensor::from(impl_->pool, shape, initial);
  impl_->variables[o.node] = {name, std::move(value)};
  impl_->variable_names[name] = o.node;
  return o;
}

Output Session::constant(Shape shape, std::span<const float> values) {
  check_shape(shape, "constant");
  if (static_cast<std::int64_t>(values.size()) != shape.elements()) {
    throw std::invalid_argument("spillway graph: constant: " + std::to_string(values.size()) +
                                " values for shape " + shape.str());
  }
  json attrs = {{"value", std::vector<float>(values.begin(), values.end())}};
  return impl_->add_node(Op::Const, {}, std::move(shape), std::move(attrs));
}

namespace {
[[noreturn]] void bad_shapes(const char* op, const Shape& a, const Shape& b) {
  throw std::invalid_argument(std::string("spillway graph: ") + op + ": incompatible shapes " +
                              a.str() + " and " + b.str());
}
}  // namespace

Output Session::matmul(Output a, Output b, bool transpose_a, bool transpose_b) {
  const Shape& sa = impl_->node(a).shape;
  const Shape& sb = impl_->node(b).shape;
  if (sa.dims.size() != 2 || sb.dims.size() != 2) bad_shapes("MatMul", sa, sb);
  const auto m = transpose_a ? sa.dims[1] : sa.dims[0];
  const auto ka = transpose_a ? sa.dims[0] : sa.dims[1];
  const auto kb = transpose_b ? sb.dims[1] : sb.dims[0];
  const auto n = transpose_b ? sb.dims[0] : sb.dims[1];
  if (ka != kb) bad_shapes("MatMul", sa, sb);
  json attrs = {{"transpose_a", transpose_a}, {"transpose_b", transpose_b}, {"T", "DT_FLOAT"}};
  return impl_->add_node(Op::MatMul, {a, b}, Shape{{m, n}}, std::move(attrs));
}

Output Session::add(Output a, Output b) {
  const Shape& sa = impl_->node(a).shape;
  if (!(sa == impl_->node(b).shape)) bad_shapes("Add", sa, impl_->node(b).shape);
  return impl_->add_node(Op::Add, {a, b}, sa, {{"T", "DT_FLOAT"}});
}

Output Session::bias_add(Output x, Output b) {
  const Shape& sx = impl_->node(x).shape;
  const Shape& sb = impl_->node(b).shape;
  if (sx.dims.size() != 2 || sb.dims.size() != 1 || sb.dims[0] != sx.dims[1]) bad_shapes("BiasAdd", sx, sb);
  return impl_->add_node(Op::BiasAdd, {x, b}, sx, {{"T", "DT_FLOAT"}, {"data_format", "NHWC"}});
}

Output Session::relu(Output x) {
  return impl_->add_node(Op::Relu, {x}, impl_->node(x).shape, {{"T", "DT_FLOAT"}});
}

Output Session::sigmoid(Output x) {
  return impl_->add_node(Op::Sigmoid, {x}, impl_->node(x).shape, {{"T", "DT_FLOAT"}});
}

Output Session::logistic_loss(Output logits, Output labels) {
  const Shape& sz = impl_->node(logits).shape;
  if (!(sz == impl_->node(labels).shape)) bad_shapes("LogisticLoss", sz, impl_->node(labels).shape);
  return impl_->add_node(Op::LogisticLoss, {logits, labels}, sz, {{"T", "DT_FLOAT"}});
}

Output Session::reduce_mean(Output x) {
  return impl_->add_node(Op::ReduceMean, {x}, Shape{},
                         {{"T", "DT_FLOAT"}, {"keep_dims", false}, {"input_shape", impl_->node(x).shape.dims}});
}

std::vector<Output> Session::gradients(Output loss, const std::vector<Output>& xs) {
  Impl& s = *impl_;
  if (s.node(loss).shape.elements() != 1) {
    throw std::invalid_argument("spillway graph: gradients: the loss must be a scalar, not " + s.node(loss).shape.str());
  }
  for (const auto& x : xs) s.node(x);
  const std::uint64_t gen = s.generation;
  auto out = [gen](std::int64_t id) { return Output{id, gen}; };
  // Which nodes the loss depends on.
  std::vector<char> reaches(static_cast<std::size_t>(loss.node) + 1, 0);
  reaches[static_cast<std::size_t>(loss.node)] = 1;
  for (std::int64_t id = loss.node; id >= 0; --id) {
    if (!reaches[static_cast<std::size_t>(id)]) continue;
    for (auto in : s.nodes[static_cast<std::size_t>(id)].inputs) reaches[static_cast<std::size_t>(in)] = 1;
  }
  std::unordered_map<std::int64_t, Output> grads;
  auto accumulate = [&](std::int64_t id, Output g) {
    auto it = grads.find(id);
    if (it == grads.end()) grads.emplace(id, g);
    else it->second = add(it->second, g);
  };
  grads.emplace(loss.node, constant(1.0f));
  for (std::int64_t id = loss.node; id >= 0; --id) {
    if (!reaches[static_cast<std::size_t>(id)]) continue;
    auto git = grads.find(id);
    if (git == grads.end()) continue;
    const Output g = git->second;
    const NodeInfo n = s.nodes[static_cast<std::size_t>(id)];  // copy: building appends to nodes
    switch (n.op) {
      case Op::MatMul: {
        const Output a = out(n.inputs[0]), b = out(n.inputs[1]);
        const bool ta = n.transpose_a, tb = n.transpose_b;
        if (!ta && !tb) {
          accumulate(a.node, matmul(g, b, false, true));
          accumulate(b.node, matmul(a, g, true, false));
        } else if (ta && !tb) {
          accumulate(a.node, matmul(b, g, false, true));
          accumulate(b.node, matmul(a, g, false, false));
        } else if (!ta && tb) {
          accumulate(a.node, matmul(g, b, false, false));
          accumulate(b.node, matmul(g, a, true, false));
        } else {
          accumulate(a.node, matmul(b, g, true, true));
          accumulate(b.node, matmul(g, a, true, true));
        }
        break;
      }
      case Op::Add:
        accumulate(n.inputs[0], g);
        accumulate(n.inputs[1], g);
        break;
      case Op::BiasAdd: {
        accumulate(n.inputs[0], g);
        const Shape bs = s.nodes[static_cast<std::size_t>(n.inputs[1])].shape;
        accumulate(n.inputs[1], s.add_node(Op::BiasAddGrad, {g}, bs, {{"T", "DT_FLOAT"}}));
        break;
      }
      case Op::Relu:
        accumulate(n.inputs[0], s.add_node(Op::ReluGrad, {out(n.inputs[0]), g}, n.shape, {{"T", "DT_FLOAT"}}));
        break;
      case Op::Sigmoid:
        accumulate(n.inputs[0], s.add_node(Op::SigmoidGrad, {out(id), g}, n.shape, {{"T", "DT_FLOAT"}}));
        break;
      case Op::LogisticLoss:
        accumulate(n.inputs[0], s.add_node(Op::LogisticLossGrad,
                                           {out(n.inputs[0]), out(n.inputs[1]), g}, n.shape,
                                           {{"T", "DT_FLOAT"}}));
        break;
      case Op::ReduceMean: {
        const Shape xs_shape = s.nodes[static_cast<std::size_t>(n.inputs[0])].shape;
        accumulate(n.inputs[0], s.add_node(Op::ReduceMeanGrad, {g}, xs_shape, {{"T", "DT_FLOAT"}}));
        break;
      }
      default:
        break;  // leaves, and ops with no gradient here
    }
  }
  std::vector<Output> result;
  for (const auto& x : xs) {
    auto it = grads.find(x.node);
    if (it != grads.end()) {
      result.push_back(it->second);
    } else {
      const Shape sh = s.node(x).shape;
      std::vector<float> zeros(static_cast<std::size_t>(sh.elements()), 0.0f);
      result.push_back(constant(sh, zeros));
    }
  }
  return result;
}

Output Session::apply_gradient_descent(Output var, Output grad, Output learning_rate) {
  const NodeInfo& v = impl_->node(var);
  if (v.op != Op::Variable) throw std::invalid_argument("spillway graph: apply_gradient_descent needs a variable");
  if (!(v.shape == impl_->node(grad).shape)) bad_shapes("ApplyGradientDescent", v.shape, impl_->node(grad).shape);
  if (impl_->node(learning_rate).shape.elements() != 1) {
    throw std::invalid_argument("spillway graph: the learning rate must be a scalar");
  }
  return impl_->add_node(Op::ApplyGradientDescent, {var, grad, learning_rate}, v.shape,
                         {{"T", "DT_FLOAT"}, {"use_locking", false}});
}

std::vector<Tensor> Session::run(const std::vector<Output>& fetches,
                                 const std::vector<std::pair<Output, Tensor>>& feeds,
                                 const std::vector<Output>& targets) {
  return impl_->run(fetches, feeds, targets);
}

void Session::clear_session() {
  Impl& s = *impl_;
  // In the access log (when the pool records), before the frees it causes.
  s.pool.record_marker("clear_session");
  s.plans.clear();
  s.variables.clear();
  s.variable_names.clear();
  s.nodes.clear();
  s.nodes.shrink_to_fit();
  ++s.generation;
  ++s.graph_version;
  s.name_counter = 0;
  // A buffer dropped while a worker was spilling it is freed when that move
  // ends: wait for it, so that every byte is back when this returns.
  s.pool.quiesce();
}

Checkpoint Session::save() {
  Checkpoint c;
  for (const auto& [id, nv] : impl_->variables) c[nv.first] = nv.second.values();
  return c;
}

void Session::restore(const Checkpoint& checkpoint) {
  for (auto& [id, nv] : impl_->variables) {
    auto it = checkpoint.find(nv.first);
    if (it == checkpoint.end()) continue;
    if (static_cast<std::int64_t>(it->second.size()) != nv.second.shape().elements()) {
      throw std::invalid_argument("spillway graph: restore: variable '" + nv.first + "' has shape " +
                                  nv.second.shape().str() + ", the checkpoint holds " +
                                  std::to_string(it->second.size()) + " values");
    }
    if (it->second.empty()) continue;
    Pin p = nv.second.buffer().pin(impl_->compute_tier, Access::ReadWrite);
    std::memcpy(p.data(), it->second.data(), it->second.size() * sizeof(float));
  }
}

std::size_t Session::node_count() const { return impl_->nodes.size(); }
unsigned Session::inter_op_threads() const { return impl_->inter_op_threads; }
const Shape& Session::shape(Output o) const { return impl_->node(o).shape; }
const SessionStats& Session::stats() const { return impl_->stats; }
Pool& Session::pool() const { return impl_->pool; }
std::string Session::matmul_backend() const {
  if (impl_->device_blas) return "cuBLAS (device " + std::to_string(impl_->pool.options().device.cuda_device) + ")";
  if (!impl_->device_blas_missing.empty()) return "host BLAS (no cuBLAS: " + impl_->device_blas_missing + ")";
  return "host BLAS";
}

}  // namespace spillway::graph
