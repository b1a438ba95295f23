// python/src/dlpack_export.hpp — a pin's bytes as a DLPack capsule.
//
// DLPack is the exchange format behind numpy.from_dlpack and
// torch.from_dlpack: the producer hands over a PyCapsule named "dltensor"
// holding a DLManagedTensor (pointer, device, shape, dtype, and a deleter);
// the consumer renames the capsule "used_dltensor" and calls the deleter when
// its array or tensor is freed. A capsule nobody consumed is deleted with
// the capsule. The structures below are the stable (unversioned, 0.x) ABI of
// the DLPack specification, which numpy 1.22+ and torch 1.10+ consume.
//
// A pin is exported as a 1-D array of uint8 of the pin's size. The export
// holds a reference to the pin's Python object and counts in its exports
// until the deleter runs, so the pin cannot be released (and its bytes cannot
// move) while a consumer still points at them. DLPack cannot say "read-only",
// so pins with access="r" are not exported: a write through such a view would
// silently differ from the clean copies that the pool keeps on slower tiers.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

namespace spillway::python {

namespace dlpack {

// DLDeviceType values used here.
enum DeviceType : std::int32_t { kCpu = 1, kCuda = 2 };
// DLDataTypeCode: unsigned integer.
inline constexpr std::uint8_t kUInt = 1;

struct Device {
  std::int32_t device_type;
  std::int32_t device_id;
};

struct DataType {
  std::uint8_t code;
  std::uint8_t bits;
  std::uint16_t lanes;
};

struct Tensor {
  void* data;
  Device device;
  std::int32_t ndim;
  DataType dtype;
  std::int64_t* shape;
  std::int64_t* strides;  // in elements; may be null for a compact array
  std::uint64_t byte_offset;
};

struct ManagedTensor {
  Tensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(ManagedTensor* self);
};

}  // namespace dlpack

class PinHandle;

// The device a pin's memory is on, as __dlpack_device__ returns it: (kCuda,
// cuda_device) for a Device pin with the CUDA backend, else (kCpu, 0).
dlpack::Device dlpack_device(const PinHandle& pin);

// pin.__dlpack__(stream): a new "dltensor" capsule. `self` is the pin's
// Python object. For CPU memory `stream` must be None (or -1); for CUDA
// memory any stream is accepted, as the bytes are in place when pin() returns.
pybind11::capsule dlpack_capsule(pybind11::handle self, PinHandle& pin, pybind11::handle stream);

}  // namespace spillway::python
