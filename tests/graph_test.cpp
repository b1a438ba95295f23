// tests/graph_test.cpp — the graph executor: kernels against naive
// references, gradients against finite differences, planning (a re-plan
// reads every node definition; a cached plan reads none), clear_session
// giving back every byte, spilled node definitions, and the session-growth
// training loop (both modes learn, and agree).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "spillway/graph/graph.hpp"
#include "src/graph/device_blas.hpp"
#include "src/graph/kernels.hpp"
#include "src/graph/session_growth.hpp"
#include "test_util.hpp"

namespace spillway::graph {
namespace {

using spillway::testing::ScratchDir;

std::vector<float> random_values(std::size_t n, std::uint64_t seed, float scale = 1.0f) {
  return spillway::testing::random_floats(n, seed, scale);
}

// ---- kernels -----------------------------------------------------------------------

TEST(GraphKernels, MatMulMatchesNaiveForEveryTranspose) {
  const int m = 5, k = 7, n = 3;
  const auto a = random_values(m * k, 1), b = random_values(k * n, 2);
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      // Stored layouts for the transposed cases.
      std::vector<float> as(a.size()), bs(b.size());
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < k; ++j) as[ta ? j * m + i : i * k + j] = a[i * k + j];
      for (int i = 0; i < k; ++i)
        for (int j = 0; j < n; ++j) bs[tb ? j * k + i : i * n + j] = b[i * n + j];
      std::vector<float> c(m * n);
      kernels::matmul(as.data(), bs.data(), c.data(), m, k, n, ta, tb);
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          double ref = 0;
          for (int p = 0; p < k; ++p) ref += static_cast<double>(a[i * k + p]) * b[p * n + j];
          EXPECT_NEAR(c[i * n + j], ref, 1e-4) << "ta " << ta << " tb " << tb << " at " << i << "," << j;
        }
      }
    }
  }
}

TEST(GraphKernels, ElementwiseOpsMatchTheirDefinitions) {
  const std::vector<float> z = {-80.0f, -3.0f, -0.5f, 0.0f, 0.25f, 2.0f, 90.0f};
  const std::vector<float> t = {0, 1, 0, 1, 1, 0, 1};
  const auto n = static_cast<std::int64_t>(z.size());
  std::vector<float> out(z.size()), grad(z.size());
  kernels::sigmoid(z.data(), out.data(), n);
  for (std::size_t i = 0; i < z.size(); ++i) EXPECT_NEAR(out[i], 1.0 / (1.0 + std::exp(-double(z[i]))), 1e-6);
  kernels::relu(z.data(), out.data(), n);
  for (std::size_t i = 0; i < z.size(); ++i) EXPECT_EQ(out[i], z[i] > 0 ? z[i] : 0.0f);
  kernels::logistic_loss(z.data(), t.data(), out.data(), n);
  for (std::size_t i = 0; i < z.size(); ++i) {
    const double p = 1.0 / (1.0 + std::exp(-double(z[i])));
    // The naive formula, in double, away from the extremes where it overflows.
    if (std::fabs(z[i]) < 20) {
      EXPECT_NEAR(out[i], -(t[i] * std::log(p) + (1 - t[i]) * std::log(1 - p)), 1e-5) << z[i];
    }
    EXPECT_TRUE(std::isfinite(out[i])) << "unstable at z = " << z[i];
  }
  EXPECT_NEAR(out[0], 0.0f, 1e-6);   // z = -80, t = 0: confidently right
  EXPECT_NEAR(out[6], 0.0f, 1e-6);   // z = 90, t = 1
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  const std::vector<float> bias = {10, 20, 30};
  std::vector<float> xb(6), db(3);
  kernels::bias_add(x.data(), bias.data(), xb.data(), 2, 3);
  EXPECT_EQ(xb, (std::vector<float>{11, 22, 33, 14, 25, 36}));
  kernels::bias_add_grad(x.data(), db.data(), 2, 3);
  EXPECT_EQ(db, (std::vector<float>{5, 7, 9}));
  EXPECT_FLOAT_EQ(kernels::reduce_mean(x.data(), 6), 3.5f);
}

// ---- gradients ---------------------------------------------------------------------

class GraphTest : public ::testing::Test {
 protected:
  PoolOptions options(std::size_t device = 8 << 20, std::size_t host = 32 << 20) {
    return spillway::testing::small_options(dir_.path(), device, host);
  }
  ScratchDir dir_;
};

// Compares d(loss)/d(var) from the graph with central differences.
void check_gradients(Session& s, Output loss, const std::vector<std::pair<Output, std::string>>& vars,
                     const std::vector<std::pair<Output, Tensor>>& feeds) {
  std::vector<Output> xs;
  for (const auto& v : vars) xs.push_back(v.first);
  auto fetched = s.run(s.gradients(loss, xs), feeds);
  const Checkpoint base = s.save();
  for (std::size_t v = 0; v < vars.size(); ++v) {
    const std::string& name = vars[v].second;
    const auto analytic = fetched[v].values();
    ASSERT_EQ(analytic.size(), base.at(name).size());
    for (std::size_t i = 0; i < analytic.size(); ++i) {
      const float h = 1e-2f;
      Checkpoint plus = base, minus = base;
      plus[name][i] += h;
      minus[name][i] -= h;
      s.restore(plus);
      const double lp = s.run({loss}, feeds)[0].item();
      s.restore(minus);
      const double lm = s.run({loss}, feeds)[0].item();
      s.restore(base);
      const double numeric = (lp - lm) / (2 * h);
      EXPECT_NEAR(analytic[i], numeric, 2e-3 + 2e-2 * std::fabs(numeric))
          << "d loss / d " << name << "[" << i << "]";
    }
  }
}

bool cublas_mapped() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.find("libcublas") != std::string::npos) return true;
  }
  return false;
}

// Loading libcublas made every process that links spillway ~215 MB larger,
// GPU or not; it is opened at first use instead.
TEST_F(GraphTest, CublasIsOpenedAtFirstUseNotWhenTheProcessStarts) {
  if (DeviceBlas::opened()) {
    GTEST_SKIP() << "an earlier test in this process opened cuBLAS already (ctest runs each test in a "
                    "process of its own)";
  }
  {
    Pool pool(options());
    Session s(pool);
    const std::vector<float> v = {1, 2, 3, 4};
    auto a = s.constant(Shape{{2, 2}}, v);
    const auto out = s.run({s.matmul(a, a)}, {});
    EXPECT_EQ(out.at(0).values(), (std::vector<float>{7, 10, 15, 22}));
  }
  EXPECT_FALSE(cublas_mapped()) << "libcublas is mapped though nothing asked for it";
  const std::string problem = DeviceBlas::library_problem();
#if defined(SPILLWAY_HAVE_CUDA)
  // The toolkit this build was made with is on the library path.
  EXPECT_EQ(problem, "");
  EXPECT_TRUE(DeviceBlas::opened());
  EXPECT_TRUE(cublas_mapped());
#else
  EXPECT_NE(problem.find("no CUDA backend"), std::string::npos) << problem;
  EXPECT_FALSE(cublas_mapped());
#endif
}

TEST_F(GraphTest, GradientsMatchFiniteDifferences) {
  Pool pool(options());
  Session s(pool);
  const int rows = 6, in = 4, hidden = 3;
  auto x = s.placeholder("x", Shape{{rows, in}});
  auto labels = s.placeholder("labels", Shape{{rows, 1}});
  auto w1 = s.variable("w1", Shape{{in, hidden}}, random_values(in * hidden, 3));
  auto b1 = s.variable("b1", Shape{{hidden}}, random_values(hidden, 4));
  auto w2 = s.variable("w2", Shape{{hidden, 1}}, random_values(hidden, 5));
  auto h = s.relu(s.bias_add(s.matmul(x, w1), b1));
  auto h2 = s.add(h, s.sigmoid(h));  // a node used twice: gradients accumulate
  auto logits = s.matmul(h2, w2);
  auto loss = s.reduce_mean(s.logistic_loss(logits, labels));
  std::vector<float> yv = {1, 0, 1, 1, 0, 0};
  check_gradients(s, loss, {{w1, "w1"}, {b1, "b1"}, {w2, "w2"}},
                  {{x, Tensor::from(pool, Shape{{rows, in}}, random_values(rows * in, 6, 2.0f))},
                   {labels, Tensor::from(pool, Shape{{rows, 1}}, yv)}});
}

TEST_F(GraphTest, MatMulGradientsForEveryTranspose) {
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      Pool pool(options());
      Session s(pool);
      const int m = 3, k = 4, n = 2;
      auto a = s.variable("a", ta ? Shape{{k, m}} : Shape{{m, k}}, random_values(m * k, 7));
      auto b = s.variable("b", tb ? Shape{{n, k}} : Shape{{k, n}}, random_values(k * n, 8));
      auto loss = s.reduce_mean(s.sigmoid(s.matmul(a, b, ta, tb)));
      SCOPED_TRACE(::testing::Message() << "transpose_a " << ta << " transpose_b " << tb);
      check_gradients(s, loss, {{a, "a"}, {b, "b"}}, {});
    }
  }
}

TEST_F(GraphTest, UnrelatedVariableGetsAZeroGradient) {
  Pool pool(options());
  Session s(pool);
  auto a = s.variable("a", Shape{{2}}, std::vector<float>{1, 2});
  auto other = s.variable("other", Shape{{3}}, std::vector<float>{1, 2, 3});
  auto loss = s.reduce_mean(s.sigmoid(a));
  auto g = s.run(s.gradients(loss, {other}))[0].values();
  EXPECT_EQ(g, (std::vector<float>{0, 0, 0}));
}

// ---- planning ----------------------------------------------------------------------

TEST_F(GraphTest, ReplanReadsEveryNodeDefinitionAndACachedPlanReadsNone) {
  Pool pool(options());
  Session s(pool);
  auto a = s.constant(Shape{{2}}, std::vector<float>{1, 2});
  auto b = s.constant(Shape{{2}}, std::vector<float>{3, 4});
  auto c = s.add(a, b);
  s.constant(5.0f);  // not needed by the fetch: still read, as TF1 validates the whole graph
  EXPECT_EQ(s.run({c})[0].values(), (std::vector<float>{4, 6}));
  EXPECT_EQ(s.stats().node_defs_read, 4u);
  EXPECT_EQ(s.stats().plans_built, 1u);
  s.run({c});
  EXPECT_EQ(s.stats().node_defs_read, 4u) << "an unchanged graph and signature re-read definitions";
  EXPECT_EQ(s.stats().plan_cache_hits, 1u);
  auto d = s.add(c, a);  // the graph changed: every plan is stale
  s.run({c});
  EXPECT_EQ(s.stats().node_defs_read, 9u);
  EXPECT_EQ(s.run({d})[0].values(), (std::vector<float>{5, 8}));
  EXPECT_EQ(s.stats().node_defs_read, 14u) << "a new signature plans (reading the graph) once";
  EXPECT_EQ(s.stats().nodes_executed, 3u + 3u + 3u + 4u) << "runs execute only what the fetch needs";
}

TEST_F(GraphTest, BadFeedsAndStaleOutputsAreClearErrors) {
  Pool pool(options());
  Session s(pool);
  auto x = s.placeholder("the_input", Shape{{2, 2}});
  auto y = s.relu(x);
  try {
    s.run({y});
    FAIL() << "an unfed placeholder ran";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("the_input"), std::string::npos) << e.what();
  }
  EXPECT_THROW(s.run({y}, {{x, Tensor::from(pool, Shape{{4}}, std::vector<float>(4, 1.0f))}}),
               std::invalid_argument);
  EXPECT_THROW(s.matmul(x, s.constant(Shape{{3, 1}}, std::vector<float>(3, 1.0f))), std::invalid_argument);
  s.clear_session();
  EXPECT_THROW(s.relu(y), std::invalid_argument) << "an Output from before clear_session was accepted";
}

TEST_F(GraphTest, MatMulUsesTheHostBlasOffTheCudaBackend) {
  Pool pool(options());
  Session s(pool);
  EXPECT_EQ(s.matmul_backend(), "host BLAS");
  Output a = s.constant(Shape{{2, 2}}, std::vector<float>{1, 2, 3, 4});
  EXPECT_EQ(s.run({s.matmul(a, a)})[0].values(), (std::vector<float>{7, 10, 15, 22}));
  EXPECT_EQ(s.stats().device_matmuls, 0u);
}

// ---- memory ------------------------------------------------------------------------

TEST_F(GraphTest, ClearSessionGivesBackEveryByteOnEveryTier) {
  Pool pool(options(32 << 10, 64 << 10));  // small: the graph reaches disk
  const PoolStats empty = pool.stats();
  Session s(pool);
  GrowthOptions o;
  o.samples = 64;
  o.features = 8;
  o.epochs = 6;
  o.steps_per_epoch = 10;
  run_session_growth(s, o, GrowthMode::Leaky);
  const PoolStats grown = pool.stats();
  EXPECT_GT(grown.tier(Tier::Disk).used_bytes, 0u) << "the leaky graph did not reach the disk tier";
  s.clear_session();
  const PoolStats cleared = pool.stats();
  for (Tier t : {Tier::Device, Tier::Host, Tier::Disk}) {
    EXPECT_EQ(cleared.tier(t).used_bytes, empty.tier(t).used_bytes) << tier_name(t);
    EXPECT_EQ(cleared.tier(t).buffers, empty.tier(t).buffers) << tier_name(t);
  }
}

TEST_F(GraphTest, SpilledNodeDefinitionsGiveTheSameResults) {
  GrowthOptions o;
  o.samples = 64;
  o.features = 8;
  o.epochs = 5;
  o.steps_per_epoch = 8;
  std::vector<EpochRecord> roomy, tight;
  {
    Pool pool(options(64 << 20, 64 << 20));
    Session s(pool);
    roomy = run_session_growth(s, o, GrowthMode::Leaky);
    EXPECT_EQ(pool.stats().move(Tier::Device, Tier::Disk).moves + pool.stats().move(Tier::Host, Tier::Disk).moves, 0u);
  }
  {
    Pool pool(options(32 << 10, 64 << 10));
    Session s(pool);
    tight = run_session_growth(s, o, GrowthMode::Leaky);
    const PoolStats st = pool.stats();
    EXPECT_GT(st.move(Tier::Device, Tier::Host).moves + st.move(Tier::Device, Tier::Disk).moves, 0u);
    EXPECT_GT(st.move(Tier::Disk, Tier::Device).moves, 0u) << "definitions were not fetched back from disk";
  }
  ASSERT_EQ(roomy.size(), tight.size());
  for (std::size_t e = 0; e < roomy.size(); ++e) {
    EXPECT_EQ(roomy[e].loss, tight[e].loss) << "epoch " << e;
    EXPECT_EQ(roomy[e].graph_nodes, tight[e].graph_nodes);
  }
}

// ---- the experiment's training loop ----------------------------------------------

TEST_F(GraphTest, BothModesLearnAndAgree) {
  GrowthOptions o;
  o.samples = 300;
  o.features = 8;
  o.epochs = 8;
  o.steps_per_epoch = 10;
  std::vector<EpochRecord> leaky, clear;
  {
    Pool pool(options());
    Session s(pool);
    leaky = run_session_growth(s, o, GrowthMode::Leaky);
  }
  {
    Pool pool(options());
    Session s(pool);
    clear = run_session_growth(s, o, GrowthMode::Clear);
  }
  ASSERT_EQ(leaky.size(), clear.size());
  EXPECT_LT(leaky.back().loss, leaky.front().loss * 0.5f) << "the loss did not fall";
  EXPECT_GT(leaky.back().accuracy, 0.95f);
  EXPECT_GT(clear.back().accuracy, 0.95f);
  for (std::size_t e = 0; e < leaky.size(); ++e) {
    EXPECT_NEAR(leaky[e].loss, clear[e].loss, 1e-6f) << "epoch " << e << ": clearing lost something";
  }
  EXPECT_GT(leaky.back().graph_nodes, 3 * clear.back().graph_nodes) << "the leaky graph did not grow";
  EXPECT_EQ(clear.back().graph_nodes, clear[1].graph_nodes) << "the cleared graph grew across epochs";
}

}  // namespace
}  // namespace spillway::graph
