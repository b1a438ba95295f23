// src/graph/kernels.hpp — the graph executor's CPU math on float32 arrays
// (row-major). Pure functions over raw pointers; the session pins the
// tensors and hands the pointers in. MatMul is the host BLAS's sgemm.
#pragma once

#include <cstdint>

namespace spillway::graph::kernels {

// c[m,n] = op(a)[m,k] * op(b)[k,n]; op transposes when asked (a is stored
// [k,m] when transpose_a, b is stored [n,k] when transpose_b).
void matmul(const float* a, const float* b, float* c, std::int64_t m, std::int64_t k,
            std::int64_t n, bool transpose_a, bool transpose_b);
void add(const float* a, const float* b, float* out, std::int64_t n);
// out[r,c] = x[r,c] + bias[c]
void bias_add(const float* x, const float* bias, float* out, std::int64_t rows, std::int64_t cols);
// dbias[c] = sum over r of dy[r,c]
void bias_add_grad(const float* dy, float* dbias, std::int64_t rows, std::int64_t cols);
void relu(const float* x, float* out, std::int64_t n);
// dx = dy where x > 0, else 0
void relu_grad(const float* x, const float* dy, float* dx, std::int64_t n);
void sigmoid(const float* x, float* out, std::int64_t n);
// dx = dy * y * (1 - y), y = sigmoid(x)
void sigmoid_grad(const float* y, const float* dy, float* dx, std::int64_t n);
// out = max(z, 0) - z * t + log(1 + exp(-|z|)), stable for large |z|
void logistic_loss(const float* z, const float* t, float* out, std::int64_t n);
// dz = dy * (sigmoid(z) - t)
void logistic_loss_grad(const float* z, const float* t, const float* dy, float* dz, std::int64_t n);
float reduce_mean(const float* x, std::int64_t n);  // accumulated in double
// dx[i] = dy / n
void reduce_mean_grad(float dy, float* dx, std::int64_t n);
// var -= lr * grad
void gradient_descent(float* var, const float* grad, float lr, std::int64_t n);

}  // namespace spillway::graph::kernels
