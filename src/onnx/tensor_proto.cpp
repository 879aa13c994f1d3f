#include "onnx/tensor_proto.h"

#include <filesystem>
#include <fstream>

#include "kiln/error.h"

namespace kiln::onnx_import {

namespace fs = std::filesystem;

namespace {

std::string read_external(const onnx::TensorProto& p, const std::string& dir, const std::string& what,
                          int64_t nbytes) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (auto& kv : p.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = std::stoll(kv.value());
    else if (kv.key() == "length") length = std::stoll(kv.value());
  }
  if (dir.empty()) fail(what, ": external data is not allowed here");
  if (location.empty()) fail(what, ": external data without a location");
  fs::path base = fs::weakly_canonical(fs::path(dir));
  fs::path file = fs::weakly_canonical(base / location);
  auto rel = file.lexically_relative(base);
  if (fs::path(location).is_absolute() || rel.empty() || *rel.begin() == "..")
    fail(what, ": external data location '", location, "' is outside the model's folder");
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(what, ": cannot open external data file '", file.string(), "'");
  if (length < 0) length = nbytes;
  if (length != nbytes) fail(what, ": external data length ", length, " does not match ", nbytes, " bytes");
  std::string buf(size_t(length), '\0');
  in.seekg(offset);
  in.read(buf.data(), length);
  if (in.gcount() != length) fail(what, ": external data file '", location, "' is too short");
  return buf;
}

template <typename Src, typename Dst>
void copy_field(const Src& field, HostTensor& t, const std::string& what) {
  if (int64_t(field.size()) != t.numel())
    fail(what, ": has ", field.size(), " values for shape ", shape_str(t.shape));
  Dst* d = t.as<Dst>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = Dst(field[int(i)]);
}

}  // namespace

HostTensor from_proto(const onnx::TensorProto& p, const std::string& dir, const std::string& what,
                      int64_t max_bytes) {
  DType dt;
  if (!dtype_from_onnx(p.data_type(), &dt))
    fail(what, ": tensor element type ", p.data_type(), " is not supported (strings and complex numbers are not)");
  Shape shape(p.dims().begin(), p.dims().end());
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) fail(what, ": negative dimension ", d);
    if (d > 0 && n > max_bytes / d) fail(what, ": shape ", shape_str(shape), " is too large");
    n *= d;
  }
  if (n * dtype_bytes(dt) > max_bytes) fail(what, ": shape ", shape_str(shape), " is too large");
  size_t nbytes = size_t(n * dtype_bytes(dt));
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string raw = read_external(p, dir, what, int64_t(nbytes));
    return HostTensor(dt, shape, raw.data());
  }
  if (p.has_raw_data()) {
    if (p.raw_data().size() != nbytes)
      fail(what, ": raw data has ", p.raw_data().size(), " bytes, shape ", shape_str(shape), " needs ", nbytes);
    return HostTensor(dt, shape, p.raw_data().data());
  }
  HostTensor t(dt, shape);
  switch (dt) {
    case DType::F32: copy_field<decltype(p.float_data()), float>(p.float_data(), t, what); break;
    case DType::F64: copy_field<decltype(p.double_data()), double>(p.double_data(), t, what); break;
    case DType::I64: copy_field<decltype(p.int64_data()), int64_t>(p.int64_data(), t, what); break;
    case DType::U32: copy_field<decltype(p.uint64_data()), uint32_t>(p.uint64_data(), t, what); break;
    case DType::U64: copy_field<decltype(p.uint64_data()), uint64_t>(p.uint64_data(), t, what); break;
    case DType::I32: copy_field<decltype(p.int32_data()), int32_t>(p.int32_data(), t, what); break;
    case DType::I16: copy_field<decltype(p.int32_data()), int16_t>(p.int32_data(), t, what); break;
    case DType::I8: copy_field<decltype(p.int32_data()), int8_t>(p.int32_data(), t, what); break;
    case DType::U16: case DType::F16: case DType::BF16:
      copy_field<decltype(p.int32_data()), uint16_t>(p.int32_data(), t, what); break;
    case DType::U8: case DType::Bool: copy_field<decltype(p.int32_data()), uint8_t>(p.int32_data(), t, what); break;
  }
  return t;
}

onnx::TensorProto to_proto(const HostTensor& t, const std::string& name) {
  onnx::TensorProto p;
  p.set_name(name);
  p.set_data_type(dtype_to_onnx(t.dtype));
  for (int64_t d : t.shape) p.add_dims(d);
  p.set_raw_data(t.bytes.data(), t.bytes.size());
  return p;
}

}  // namespace kiln::onnx_import
