#include "kiln/tensor.h"

#include <cmath>
#include <sstream>

namespace kiln {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "x" : "") << s[i];
  os << "]";
  return os.str();
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int32_t exp = ((x >> 23) & 0xff) - 127 + 15;
  uint32_t mant = x & 0x7fffff;
  if (((x >> 23) & 0xff) == 0xff) return sign | 0x7c00u | (mant ? 0x200u : 0);
  if (exp >= 0x1f) return sign | 0x7c00u;
  if (exp <= 0) {
    if (exp < -10) return sign;
    mant |= 0x800000u;
    uint32_t shift = 14 - exp;
    uint32_t half = mant >> shift, rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return sign | half;
  }
  uint32_t half = sign | (exp << 10) | (mant >> 13), rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;
  return half;
}

float bf16_to_f32(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (x >> 16) | 0x40;
  x += 0x7fff + ((x >> 16) & 1);
  return x >> 16;
}

double HostTensor::get_f64(int64_t i) const {
  const uint8_t* p = bytes.data();
  switch (dtype) {
    case DType::Bool: return p[i] ? 1 : 0;
    case DType::I8: return reinterpret_cast<const int8_t*>(p)[i];
    case DType::I16: return reinterpret_cast<const int16_t*>(p)[i];
    case DType::I32: return reinterpret_cast<const int32_t*>(p)[i];
    case DType::I64: return double(reinterpret_cast<const int64_t*>(p)[i]);
    case DType::U8: return p[i];
    case DType::U16: return reinterpret_cast<const uint16_t*>(p)[i];
    case DType::U32: return reinterpret_cast<const uint32_t*>(p)[i];
    case DType::U64: return double(reinterpret_cast<const uint64_t*>(p)[i]);
    case DType::F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
    case DType::F32: return reinterpret_cast<const float*>(p)[i];
    case DType::F64: return reinterpret_cast<const double*>(p)[i];
  }
  return 0;
}

int64_t HostTensor::get_i64(int64_t i) const {
  switch (dtype) {
    case DType::I64: return as<int64_t>()[i];
    case DType::U64: return int64_t(as<uint64_t>()[i]);
    default: return int64_t(get_f64(i));
  }
}

void HostTensor::set_f64(int64_t i, double v) {
  uint8_t* p = bytes.data();
  switch (dtype) {
    case DType::Bool: p[i] = v != 0; break;
    case DType::I8: reinterpret_cast<int8_t*>(p)[i] = int8_t(v); break;
    case DType::I16: reinterpret_cast<int16_t*>(p)[i] = int16_t(v); break;
    case DType::I32: reinterpret_cast<int32_t*>(p)[i] = int32_t(v); break;
    case DType::I64: reinterpret_cast<int64_t*>(p)[i] = int64_t(v); break;
    case DType::U8: p[i] = uint8_t(v); break;
    case DType::U16: reinterpret_cast<uint16_t*>(p)[i] = uint16_t(v); break;
    case DType::U32: reinterpret_cast<uint32_t*>(p)[i] = uint32_t(v); break;
    case DType::U64: reinterpret_cast<uint64_t*>(p)[i] = uint64_t(v); break;
    case DType::F16: reinterpret_cast<uint16_t*>(p)[i] = f32_to_f16(float(v)); break;
    case DType::BF16: reinterpret_cast<uint16_t*>(p)[i] = f32_to_bf16(float(v)); break;
    case DType::F32: reinterpret_cast<float*>(p)[i] = float(v); break;
    case DType::F64: reinterpret_cast<double*>(p)[i] = v; break;
  }
}

std::vector<int64_t> HostTensor::to_i64_vector() const {
  std::vector<int64_t> v(numel());
  for (int64_t i = 0; i < numel(); ++i) v[i] = get_i64(i);
  return v;
}

}  // namespace kiln
