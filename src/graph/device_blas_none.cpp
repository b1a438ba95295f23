// src/graph/device_blas_none.cpp — DeviceBlas in a build without CUDA: there
// is none, and the reason says so.
#if !defined(SPILLWAY_HAVE_CUDA)

#include "device_blas.hpp"

namespace spillway::graph {

std::unique_ptr<DeviceBlas> DeviceBlas::create(int, std::string* why) {
  if (why != nullptr) *why = library_problem();
  return nullptr;
}

std::string DeviceBlas::library_problem() { return "this build of spillway has no CUDA backend, so no cuBLAS"; }

bool DeviceBlas::opened() { return false; }

}  // namespace spillway::graph

#endif
