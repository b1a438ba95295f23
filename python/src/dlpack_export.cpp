// python/src/dlpack_export.cpp — making and deleting a pin's DLPack capsule.
#include "dlpack_export.hpp"

#include <string>

#include "errors.hpp"
#include "handles.hpp"

namespace py = pybind11;

namespace spillway::python {

namespace {

constexpr const char* kCapsuleName = "dltensor";
constexpr const char* kUsedCapsuleName = "used_dltensor";

// The managed tensor and what it points at, in one allocation.
struct PinExport {
  dlpack::ManagedTensor managed{};
  std::int64_t shape[1] = {0};
  std::int64_t strides[1] = {1};
  PyObject* pin = nullptr;  // a strong reference to the pin's Python object
};

// The deleter a consumer calls when it is done with the memory (numpy and
// torch call it when their array or tensor is freed, on whatever thread frees
// it, GIL held or not).
void delete_export(dlpack::ManagedTensor* managed) noexcept {
  auto* e = static_cast<PinExport*>(managed->manager_ctx);
  if (Py_IsInitialized() == 0) return;  // the interpreter is gone: nothing left to release
  const PyGILState_STATE gil = PyGILState_Ensure();
  try {
    py::handle(e->pin).cast<PinHandle&>().exports -= 1;
  } catch (...) {
    set_python_error_from_current_exception();
    PyErr_WriteUnraisable(e->pin);
  }
  Py_DECREF(e->pin);
  delete e;
  PyGILState_Release(gil);
}

// Called when the capsule is freed: a capsule that no consumer took still
// owns its tensor.
void delete_capsule(PyObject* capsule) noexcept {
  if (PyCapsule_IsValid(capsule, kUsedCapsuleName) != 0) return;
  PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);  // keep any exception being raised
  auto* managed = static_cast<dlpack::ManagedTensor*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (managed == nullptr) {
    PyErr_WriteUnraisable(capsule);
  } else if (managed->deleter != nullptr) {
    managed->deleter(managed);
  }
  PyErr_Restore(type, value, traceback);
}

}  // namespace

dlpack::Device dlpack_device(const PinHandle& pin) {
  if (pin.device_memory()) {
    return {dlpack::kCuda, static_cast<std::int32_t>(pin.buffer().pool().cuda_device())};
  }
  return {dlpack::kCpu, 0};
}

py::capsule dlpack_capsule(py::handle self, PinHandle& pin, py::handle stream) {
  const char* call = "Pin.__dlpack__()";
  void* data = pin.address(call);
  if (pin.access() == Access::Read) {
    throw ExportedError(std::string("spillway: ") + call +
                        ": this pin is read-only (access='r') and DLPack cannot mark memory read-only; "
                        "pin with access='rw' to share it through DLPack, or use memoryview/numpy.asarray");
  }
  const dlpack::Device device = dlpack_device(pin);
  if (device.device_type == dlpack::kCpu && !stream.is_none()) {
    const bool minus_one = py::isinstance<py::int_>(stream) && stream.cast<long long>() == -1;
    if (!minus_one) {
      throw py::value_error(std::string("spillway: ") + call + ": stream must be None for host memory");
    }
  }
  auto* e = new PinExport;
  e->shape[0] = static_cast<std::int64_t>(pin.nbytes());
  dlpack::Tensor& t = e->managed.dl_tensor;
  t.data = data;
  t.device = device;
  t.ndim = 1;
  t.dtype = {dlpack::kUInt, 8, 1};
  t.shape = e->shape;
  t.strides = e->strides;
  t.byte_offset = 0;
  e->managed.manager_ctx = e;
  e->managed.deleter = &delete_export;
  PyObject* capsule = PyCapsule_New(&e->managed, kCapsuleName, &delete_capsule);
  if (capsule == nullptr) {
    delete e;
    throw py::error_already_set();
  }
  e->pin = self.inc_ref().ptr();
  pin.exports += 1;
  return py::reinterpret_steal<py::capsule>(capsule);
}

}  // namespace spillway::python
