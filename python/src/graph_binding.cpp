// python/src/graph_binding.cpp — spillway.graph: the TensorFlow-1-style graph
// executor (include/spillway/graph/graph.hpp) from Python, with numpy feeds
// and fetches.
//
// A SessionHandle owns the C++ Session and holds a reference to its pool's
// Python object, so the pool outlives it; Pool.close() ends every session of
// the pool first (PoolHandle::attach), after which the session raises
// ClosedError. Tensors never leave C++: feeds are copied from numpy arrays
// into pool buffers, fetches are copied out of a Read pin into new arrays.
// Every call that may allocate, move bytes or run ops releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "errors.hpp"
#include "handles.hpp"
#include "spillway/graph/graph.hpp"

namespace py = pybind11;

namespace spillway::python {

using graph::Output;
using graph::Shape;
using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;

SessionHandle::SessionHandle(py::object pool_object, PoolHandle& pool, unsigned inter_op_threads)
    : pool_object_(std::move(pool_object)), pool_(pool) {
  Pool& p = pool_.pool("graph.Session()");
  graph::SessionOptions options;
  options.inter_op_threads = inter_op_threads;
  {
    py::gil_scoped_release nogil;
    session_ = std::make_unique<graph::Session>(p, options);
  }
  pool_.attach(this);
}

SessionHandle::~SessionHandle() {
  if (session_ && pool_.owner_pid() != current_pid()) {
    (void)session_.release();  // a forked child: leave the parent's buffers alone
    return;
  }
  end();
  pool_.detach(this);
}

void SessionHandle::end() noexcept {
  if (!session_) return;
  std::unique_ptr<graph::Session> s = std::move(session_);
  py::gil_scoped_release nogil;
  s.reset();  // frees every buffer the graph held
}

graph::Session& SessionHandle::session(const char* call) {
  pool_.pool(call);  // ForkError in a child, ClosedError after close()
  if (!session_) throw ClosedError(std::string("spillway: ") + call + ": the session's pool is closed");
  return *session_;
}

namespace {

Shape shape_of(const py::handle& dims, const char* call, const char* arg) {
  Shape s;
  for (const py::handle d : py::iter(dims)) {
    if (!py::isinstance<py::int_>(d)) {
      throw py::type_error(std::string("spillway: ") + call + ": " + arg + " must be a sequence of ints");
    }
    const auto v = d.cast<std::int64_t>();
    if (v < 0) throw py::value_error(std::string("spillway: ") + call + ": " + arg + " has a negative dimension");
    s.dims.push_back(v);
  }
  return s;
}

Shape shape_of(const FloatArray& a) {
  Shape s;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s.dims.push_back(a.shape(i));
  return s;
}

FloatArray float_array(const py::handle& values, const char* call, const char* arg) {
  if (!py::isinstance<py::array>(values) && !py::isinstance<py::float_>(values) && !py::isinstance<py::int_>(values) &&
      !py::isinstance<py::sequence>(values)) {
    throw py::type_error(std::string("spillway: ") + call + ": " + arg +
                         " must be a number or an array-like of numbers, not " +
                         std::string(py::str(py::type::of(values).attr("__name__"))));
  }
  return FloatArray::ensure(values);
}

std::span<const float> span_of(const FloatArray& a) { return {a.data(), static_cast<std::size_t>(a.size())}; }

// A tensor's values in a new numpy array of its shape (one copy, out of a
// Read pin on the host).
py::array to_numpy(const graph::Tensor& t) {
  std::vector<py::ssize_t> dims(t.shape().dims.begin(), t.shape().dims.end());
  FloatArray out(dims);
  float* dst = out.mutable_data();
  const std::size_t bytes = static_cast<std::size_t>(t.shape().elements()) * sizeof(float);
  {
    py::gil_scoped_release nogil;
    Pin p = t.buffer().pin(Tier::Host, Access::Read);
    if (bytes > 0) std::memcpy(dst, p.data(), bytes);
  }
  return out;
}

std::vector<Output> outputs_of(const py::handle& list, const char* call, const char* arg) {
  std::vector<Output> out;
  for (const py::handle o : py::iter(list)) {
    if (!py::isinstance<Output>(o)) {
      throw py::type_error(std::string("spillway: ") + call + ": " + arg + " must hold graph Outputs");
    }
    out.push_back(o.cast<Output>());
  }
  return out;
}

py::dict stats_dict(const graph::SessionStats& s) {
  py::dict d;
  d["runs"] = s.runs;
  d["plans_built"] = s.plans_built;
  d["plan_cache_hits"] = s.plan_cache_hits;
  d["node_defs_read"] = s.node_defs_read;
  d["nodes_executed"] = s.nodes_executed;
  d["plan_seconds"] = s.plan_seconds;
  d["execute_seconds"] = s.execute_seconds;
  d["device_matmuls"] = s.device_matmuls;
  return d;
}

// Runs f on the session with the GIL released.
template <class F>
auto unlocked(SessionHandle& h, const char* call, F&& f) {
  graph::Session& s = h.session(call);
  CallInFlight busy(h.pool());  // Pool.close() from another thread waits for it
  py::gil_scoped_release nogil;
  return f(s);
}

}  // namespace

void bind_graph(py::module_& m) {
  py::module_ g = m.def_submodule("graph", "The graph executor (use spillway.graph).");

  py::class_<Output>(g, "Output", "One node's output in a Session's graph (valid until clear_session()).")
      .def_readonly("node", &Output::node)
      .def_readonly("generation", &Output::generation)
      .def("__eq__", [](const Output& a, const py::handle& b) { return py::isinstance<Output>(b) && a == b.cast<Output>(); })
      .def("__hash__", [](const Output& o) { return py::hash(py::make_tuple(o.node, o.generation)); })
      .def("__repr__", [](const Output& o) {
        return "<spillway.graph.Output node=" + std::to_string(o.node) + " generation=" + std::to_string(o.generation) + ">";
      });

  py::class_<SessionHandle>(g, "Session", "A graph and the executor that runs it, in a spillway Pool.")
      .def(py::init([](py::object pool, unsigned inter_op_threads) {
             PoolHandle& p = pool.cast<PoolHandle&>();
             return std::make_unique<SessionHandle>(pool, p, inter_op_threads);
           }),
           py::arg("pool"), py::arg("inter_op_threads") = 0)
      .def(
          "placeholder",
          [](SessionHandle& h, const std::string& name, const py::handle& shape) {
            const Shape s = shape_of(shape, "Session.placeholder()", "shape");
            return unlocked(h, "Session.placeholder()", [&](graph::Session& g) { return g.placeholder(name, s); });
          },
          py::arg("name"), py::arg("shape"))
      .def(
          "variable",
          [](SessionHandle& h, const std::string& name, const py::handle& initial) {
            const FloatArray a = float_array(initial, "Session.variable()", "initial");
            const Shape s = shape_of(a);
            return unlocked(h, "Session.variable()", [&](graph::Session& g) { return g.variable(name, s, span_of(a)); });
          },
          py::arg("name"), py::arg("initial"))
      .def(
          "constant",
          [](SessionHandle& h, const py::handle& values) {
            const FloatArray a = float_array(values, "Session.constant()", "values");
            const Shape s = shape_of(a);
            return unlocked(h, "Session.constant()", [&](graph::Session& g) { return g.constant(s, span_of(a)); });
          },
          py::arg("values"))
      .def(
          "matmul",
          [](SessionHandle& h, Output a, Output b, bool ta, bool tb) {
            return unlocked(h, "Session.matmul()", [&](graph::Session& g) { return g.matmul(a, b, ta, tb); });
          },
          py::arg("a"), py::arg("b"), py::arg("transpose_a") = false, py::arg("transpose_b") = false)
      .def(
          "add",
          [](SessionHandle& h, Output a, Output b) {
            return unlocked(h, "Session.add()", [&](graph::Session& g) { return g.add(a, b); });
          },
          py::arg("a"), py::arg("b"))
      .def(
          "bias_add",
          [](SessionHandle& h, Output x, Output b) {
            return unlocked(h, "Session.bias_add()", [&](graph::Session& g) { return g.bias_add(x, b); });
          },
          py::arg("x"), py::arg("bias"))
      .def(
          "relu",
          [](SessionHandle& h, Output x) { return unlocked(h, "Session.relu()", [&](graph::Session& g) { return g.relu(x); }); },
          py::arg("x"))
      .def(
          "sigmoid",
          [](SessionHandle& h, Output x) {
            return unlocked(h, "Session.sigmoid()", [&](graph::Session& g) { return g.sigmoid(x); });
          },
          py::arg("x"))
      .def(
          "logistic_loss",
          [](SessionHandle& h, Output logits, Output labels) {
            return unlocked(h, "Session.logistic_loss()", [&](graph::Session& g) { return g.logistic_loss(logits, labels); });
          },
          py::arg("logits"), py::arg("labels"))
      .def(
          "reduce_mean",
          [](SessionHandle& h, Output x) {
            return unlocked(h, "Session.reduce_mean()", [&](graph::Session& g) { return g.reduce_mean(x); });
          },
          py::arg("x"))
      .def(
          "gradients",
          [](SessionHandle& h, Output loss, const py::handle& xs) {
            const std::vector<Output> v = outputs_of(xs, "Session.gradients()", "xs");
            return unlocked(h, "Session.gradients()", [&](graph::Session& g) { return g.gradients(loss, v); });
          },
          py::arg("loss"), py::arg("xs"))
      .def(
          "apply_gradient_descent",
          [](SessionHandle& h, Output var, Output grad, Output lr) {
            return unlocked(h, "Session.apply_gradient_descent()",
                            [&](graph::Session& g) { return g.apply_gradient_descent(var, grad, lr); });
          },
          py::arg("var"), py::arg("grad"), py::arg("learning_rate"))
      .def(
          "_run",
          [](SessionHandle& h, const py::handle& fetches, const py::handle& feeds, const py::handle& targets) {
            const char* call = "Session.run()";
            graph::Session& s = h.session(call);
            const std::vector<Output> f = outputs_of(fetches, call, "fetches");
            const std::vector<Output> t = outputs_of(targets, call, "targets");
            CallInFlight busy(h.pool());
            std::vector<std::pair<Output, graph::Tensor>> fed;
            for (const auto item : py::cast<py::dict>(feeds)) {
              if (!py::isinstance<Output>(item.first)) throw py::type_error("spillway: Session.run(): feed keys must be Outputs");
              const FloatArray a = float_array(item.second, call, "a feed");
              const Shape shape = shape_of(a);
              py::gil_scoped_release nogil;
              fed.emplace_back(item.first.cast<Output>(), graph::Tensor::from(s.pool(), shape, span_of(a)));
            }
            std::vector<graph::Tensor> out;
            {
              py::gil_scoped_release nogil;
              out = s.run(f, fed, t);
            }
            py::list result;
            for (const auto& tensor : out) result.append(to_numpy(tensor));
            return result;
          },
          py::arg("fetches"), py::arg("feeds"), py::arg("targets"))
      .def(
          "clear_session",
          [](SessionHandle& h) { unlocked(h, "Session.clear_session()", [](graph::Session& g) { g.clear_session(); }); },
          "Drops the graph, its variables and every byte they held on every tier; earlier Outputs become invalid.")
      .def(
          "save",
          [](SessionHandle& h) {
            const graph::Checkpoint c = unlocked(h, "Session.save()", [](graph::Session& g) { return g.save(); });
            py::dict d;
            for (const auto& [name, values] : c) {
              FloatArray a(static_cast<py::ssize_t>(values.size()));
              if (!values.empty()) std::memcpy(a.mutable_data(), values.data(), values.size() * sizeof(float));
              d[py::str(name)] = std::move(a);
            }
            return d;
          },
          "Every variable's values by name (flat float32 arrays), outside the pool.")
      .def(
          "restore",
          [](SessionHandle& h, const py::dict& checkpoint) {
            graph::Checkpoint c;
            for (const auto item : checkpoint) {
              const FloatArray a = float_array(item.second, "Session.restore()", "a checkpoint value");
              c[item.first.cast<std::string>()] = std::vector<float>(a.data(), a.data() + a.size());
            }
            unlocked(h, "Session.restore()", [&](graph::Session& g) { g.restore(c); });
          },
          py::arg("checkpoint"))
      .def_property_readonly("node_count", [](SessionHandle& h) { return h.session("Session.node_count").node_count(); })
      .def(
          "shape",
          [](SessionHandle& h, Output o) {
            const Shape& s = h.session("Session.shape()").shape(o);
            return py::tuple(py::cast(s.dims));
          },
          py::arg("output"))
      .def("stats", [](SessionHandle& h) { return stats_dict(h.session("Session.stats()").stats()); },
           "What the session did: runs, plans built, node definitions read back, seconds planning and executing.")
      .def_property_readonly("matmul_backend",
                             [](SessionHandle& h) { return h.session("Session.matmul_backend").matmul_backend(); })
      .def_property_readonly("inter_op_threads",
                             [](SessionHandle& h) { return h.session("Session.inter_op_threads").inter_op_threads(); })
      .def_property_readonly("pool", [](SessionHandle& h) { return h.pool_object(); }, "The spillway.Pool the graph lives in.")
      .def_property_readonly("closed", [](SessionHandle& h) { return !h.alive(); });
}

}  // namespace spillway::python
