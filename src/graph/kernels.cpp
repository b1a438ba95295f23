// src/graph/kernels.cpp — see kernels.hpp.
#include "kernels.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace spillway::graph::kernels {

void matmul(const float* a, const float* b, float* c, std::int64_t m, std::int64_t k,
            std::int64_t n, bool transpose_a, bool transpose_b) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    std::fill(c, c + m * n, 0.0f);
    return;
  }
  const auto lda = static_cast<blasint>(transpose_a ? m : k);
  const auto ldb = static_cast<blasint>(transpose_b ? k : n);
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans,
              transpose_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m),
              static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, a, lda, b, ldb, 0.0f, c,
              static_cast<blasint>(n));
}

void add(const float* a, const float* b, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

void bias_add(const float* x, const float* bias, float* out, std::int64_t rows, std::int64_t cols) {
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) out[r * cols + c] = x[r * cols + c] + bias[c];
  }
}

void bias_add_grad(const float* dy, float* dbias, std::int64_t rows, std::int64_t cols) {
  std::fill(dbias, dbias + cols, 0.0f);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) dbias[c] += dy[r * cols + c];
  }
}

void relu(const float* x, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_grad(const float* x, const float* dy, float* dx, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

namespace {
float sigmoid1(float z) {
  // Stable on both sides: exp of a non-positive number only.
  if (z >= 0) return 1.0f / (1.0f + std::exp(-z));
  const float e = std::exp(z);
  return e / (1.0f + e);
}
}  // namespace

void sigmoid(const float* x, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = sigmoid1(x[i]);
}

void sigmoid_grad(const float* y, const float* dy, float* dx, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dx[i] = dy[i] * y[i] * (1.0f - y[i]);
}

void logistic_loss(const float* z, const float* t, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = std::max(z[i], 0.0f) - z[i] * t[i] + std::log1p(std::exp(-std::fabs(z[i])));
  }
}

void logistic_loss_grad(const float* z, const float* t, const float* dy, float* dz, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dz[i] = dy[i] * (sigmoid1(z[i]) - t[i]);
}

float reduce_mean(const float* x, std::int64_t n) {
  if (n == 0) return 0.0f;
  double sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += x[i];
  return static_cast<float>(sum / static_cast<double>(n));
}

void reduce_mean_grad(float dy, float* dx, std::int64_t n) {
  const float v = n == 0 ? 0.0f : dy / static_cast<float>(n);
  std::fill(dx, dx + n, v);
}

void gradient_descent(float* var, const float* grad, float lr, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) var[i] -= lr * grad[i];
}

}  // namespace spillway::graph::kernels
