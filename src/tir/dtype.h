// Element types shared by every layer (graph tensors, loop IR, codegen).
#pragma once
#include <cstdint>
#include <string>

namespace kiln {

enum class DType : uint8_t { Bool, I8, I16, I32, I64, U8, U16, U32, U64, F16, BF16, F32, F64 };

int dtype_bytes(DType t);
bool dtype_is_float(DType t);
bool dtype_is_signed_int(DType t);
inline bool dtype_is_int(DType t) { return !dtype_is_float(t) && t != DType::Bool; }
const char* dtype_name(DType t);
// ONNX TensorProto::DataType <-> DType. Returns false for types kiln does not handle (string, complex).
bool dtype_from_onnx(int onnx_type, DType* out);
int dtype_to_onnx(DType t);

}  // namespace kiln
