#include "tir/dtype.h"

namespace kiln {

int dtype_bytes(DType t) {
  switch (t) {
    case DType::Bool: case DType::I8: case DType::U8: return 1;
    case DType::I16: case DType::U16: case DType::F16: case DType::BF16: return 2;
    case DType::I32: case DType::U32: case DType::F32: return 4;
    case DType::I64: case DType::U64: case DType::F64: return 8;
  }
  return 0;
}

bool dtype_is_float(DType t) {
  return t == DType::F16 || t == DType::BF16 || t == DType::F32 || t == DType::F64;
}

bool dtype_is_signed_int(DType t) {
  return t == DType::I8 || t == DType::I16 || t == DType::I32 || t == DType::I64;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Bool: return "bool";
    case DType::I8: return "i8";
    case DType::I16: return "i16";
    case DType::I32: return "i32";
    case DType::I64: return "i64";
    case DType::U8: return "u8";
    case DType::U16: return "u16";
    case DType::U32: return "u32";
    case DType::U64: return "u64";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F32: return "f32";
    case DType::F64: return "f64";
  }
  return "?";
}

// Values of onnx::TensorProto_DataType, spelled out so this file needs no protobuf header.
bool dtype_from_onnx(int t, DType* out) {
  switch (t) {
    case 1: *out = DType::F32; return true;
    case 2: *out = DType::U8; return true;
    case 3: *out = DType::I8; return true;
    case 4: *out = DType::U16; return true;
    case 5: *out = DType::I16; return true;
    case 6: *out = DType::I32; return true;
    case 7: *out = DType::I64; return true;
    case 9: *out = DType::Bool; return true;
    case 10: *out = DType::F16; return true;
    case 11: *out = DType::F64; return true;
    case 12: *out = DType::U32; return true;
    case 13: *out = DType::U64; return true;
    case 16: *out = DType::BF16; return true;
    default: return false;
  }
}

int dtype_to_onnx(DType t) {
  switch (t) {
    case DType::F32: return 1;
    case DType::U8: return 2;
    case DType::I8: return 3;
    case DType::U16: return 4;
    case DType::I16: return 5;
    case DType::I32: return 6;
    case DType::I64: return 7;
    case DType::Bool: return 9;
    case DType::F16: return 10;
    case DType::F64: return 11;
    case DType::U32: return 12;
    case DType::U64: return 13;
    case DType::BF16: return 16;
  }
  return 0;
}

}  // namespace kiln
