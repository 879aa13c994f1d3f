// A dense host tensor: the unit of data crossing kiln's public API (inputs, outputs,
// constants). Row-major, contiguous, owning its bytes.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kiln/tensor_memory.h"
#include "tir/dtype.h"

namespace kiln {

using Shape = std::vector<int64_t>;
using TensorBytes = std::vector<uint8_t, TensorAllocator<uint8_t>>;

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

struct HostTensor {
  DType dtype = DType::F32;
  Shape shape;
  TensorBytes bytes;

  // Bytes left as the allocator hands them out: for a tensor that is written in full next (a
  // model output its generated kernel computes).
  struct Uninitialized {};

  HostTensor() = default;
  // Zero-filled.
  HostTensor(DType t, Shape s) : HostTensor(t, std::move(s), Uninitialized{}) {
    if (!bytes.empty()) std::memset(bytes.data(), 0, bytes.size());
  }
  HostTensor(DType t, Shape s, Uninitialized) : dtype(t), shape(std::move(s)), bytes(numel() * dtype_bytes(t)) {}
  // A copy of `data`, numel * element size bytes (no zero-filling first: weights are large).
  HostTensor(DType t, Shape s, const void* data)
      : dtype(t), shape(std::move(s)),
        bytes(static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + numel() * dtype_bytes(t)) {}

  int64_t numel() const { return shape_numel(shape); }
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }
  template <typename T> T* as() { return reinterpret_cast<T*>(bytes.data()); }
  template <typename T> const T* as() const { return reinterpret_cast<const T*>(bytes.data()); }

  // Element i converted to double / int64 (any dtype). Used by constant folding of shapes,
  // comparisons in tests and summaries; never on a hot path.
  double get_f64(int64_t i) const;
  int64_t get_i64(int64_t i) const;
  void set_f64(int64_t i, double v);
  std::vector<int64_t> to_i64_vector() const;
  bool same_as(const HostTensor& o) const {
    return dtype == o.dtype && shape == o.shape && bytes == o.bytes;
  }
};

// float16 / bfloat16 bit conversions (round to nearest even).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

}  // namespace kiln
