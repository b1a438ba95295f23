// tests/cuda/graph_cuda_test.cpp — the graph executor on the CUDA backend:
// MatMul runs through cuBLAS over device pins and agrees with the host BLAS
// for every transpose; training on the GPU gives the same losses as on the
// simulated device. Skips, with the runtime's reason, when no GPU is present.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "spillway/graph/graph.hpp"
#include "spillway/spillway.hpp"
#include "src/graph/kernels.hpp"
#include "src/graph/session_growth.hpp"
#include "tests/test_util.hpp"
#include "tiers/device/cuda_backend.hpp"

namespace spillway::graph {
namespace {

std::vector<float> random_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

class CudaGraph : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!detail::cuda::device_available(0, &why)) GTEST_SKIP() << "no GPU: " << why;
  }
  PoolOptions options(DeviceBackend backend) {
    PoolOptions o = spillway::testing::small_options(dir_.path(), 8 << 20, 32 << 20);
    o.device.backend = backend;
    return o;
  }
  spillway::testing::ScratchDir dir_;
};

TEST_F(CudaGraph, MatMulRunsOnCublasAndMatchesTheHostForEveryTranspose) {
  Pool pool(options(DeviceBackend::Cuda));
  Session s(pool);
  ASSERT_EQ(s.matmul_backend().rfind("cuBLAS", 0), 0u) << s.matmul_backend();
  const std::int64_t m = 37, k = 53, n = 29;  // odd sizes: leading dimensions matter
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    const auto av = random_values(static_cast<std::size_t>(m * k), 10 + t);
    const auto bv = random_values(static_cast<std::size_t>(k * n), 20 + t);
    Output a = s.constant(ta ? Shape{{k, m}} : Shape{{m, k}}, av);
    Output b = s.constant(tb ? Shape{{n, k}} : Shape{{k, n}}, bv);
    const auto got = s.run({s.matmul(a, b, ta, tb)})[0].values();
    std::vector<float> want(static_cast<std::size_t>(m * n));
    kernels::matmul(av.data(), bv.data(), want.data(), m, k, n, ta, tb);
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-4f) << "transpose_a=" << ta << " transpose_b=" << tb << " at " << i;
    }
  }
  EXPECT_EQ(s.stats().device_matmuls, 4u);
  // The inputs went up to the device and the products came back down.
  const PoolStats st = pool.stats();
  EXPECT_GE(st.move(Tier::Host, Tier::Device).moves, 8u);
  EXPECT_GE(st.move(Tier::Device, Tier::Host).moves, 4u);
}

TEST_F(CudaGraph, TrainingOnTheGpuGivesTheLossesOfTheSimulatedDevice) {
  GrowthOptions g;
  g.samples = 300;
  g.features = 8;
  g.epochs = 6;
  g.steps_per_epoch = 10;
  std::vector<EpochRecord> gpu, sim;
  {
    Pool pool(options(DeviceBackend::Cuda));
    Session s(pool);
    gpu = run_session_growth(s, g, GrowthMode::Clear);
    EXPECT_GT(s.stats().device_matmuls, 0u);
  }
  {
    Pool pool(options(DeviceBackend::Simulated));
    Session s(pool);
    sim = run_session_growth(s, g, GrowthMode::Clear);
  }
  ASSERT_EQ(gpu.size(), sim.size());
  for (std::size_t e = 0; e < gpu.size(); ++e) {
    // cuBLAS may sum in another order than OpenBLAS: close, not bit-equal.
    EXPECT_NEAR(gpu[e].loss, sim[e].loss, 1e-4f) << "epoch " << e;
  }
  EXPECT_GT(gpu.back().accuracy, 0.95f);
}

}  // namespace
}  // namespace spillway::graph
