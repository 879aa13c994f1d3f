#include "graph/precision.h"

namespace kiln::graph {

namespace {

// Data operands of the matrix products (the rest: bias, shapes, zero points).
std::vector<size_t> product_operands(const std::string& op) {
  if (op == "MatMul" || op == "Gemm" || op == "Conv" || op == "ConvTranspose") return {0, 1};
  return {};
}

Node cast_node(const std::string& in, const std::string& out, DType to, int opset) {
  Node c;
  c.name = out;
  c.op_type = "Cast";
  c.opset = opset;
  c.inputs = {in};
  c.outputs = {out};
  c.attrs["to"] = int_attribute(dtype_to_onnx(to));
  return c;
}

// The f32 tensor `w` rounded to bf16 (nearest even), stored as `storage` (bf16 or f32).
std::shared_ptr<const HostTensor> rounded_to_bf16(const HostTensor& w, DType storage) {
  auto r = std::make_shared<HostTensor>(storage, w.shape);
  const float* src = w.as<float>();
  for (int64_t i = 0; i < w.numel(); ++i) {
    uint16_t h = f32_to_bf16(src[i]);
    if (storage == DType::BF16) r->as<uint16_t>()[i] = h;
    else r->as<float>()[i] = bf16_to_f32(h);
  }
  return r;
}

}  // namespace

std::optional<std::vector<Node>> narrow_operands(const Node& n, Graph& g, Precision p, DType storage) {
  if (p != Precision::BF16 || !n.domain.empty() || n.attrs.count(kF32ResultAttr)) return std::nullopt;
  std::vector<size_t> operands = product_operands(n.op_type);
  if (operands.empty()) return std::nullopt;
  for (size_t i : operands) {
    if (i >= n.inputs.size() || n.inputs[i].empty() || !g.has_value(n.inputs[i])) return std::nullopt;
    const Value& v = g.value(n.inputs[i]);
    if (!v.typed || v.type.dtype != DType::F32) return std::nullopt;
  }
  std::vector<Node> out;
  Node product = n;
  for (size_t i : operands) {
    std::string rounded = n.inputs[i] + "_bf16";
    std::string read = storage == DType::BF16 ? rounded : rounded + "_f32";
    product.inputs[i] = read;
    if (g.has_value(read)) continue;  // cast already made (for another product or operand)
    if (const auto& w = g.value(n.inputs[i]).constant) {  // weights: rounded here, once
      g.values[read] = Value{{storage, w->shape}, true, rounded_to_bf16(*w, storage)};
      continue;
    }
    out.push_back(cast_node(n.inputs[i], rounded, DType::BF16, n.opset));
    g.values[rounded] = Value{};
    if (read != rounded) {
      out.push_back(cast_node(rounded, read, DType::F32, n.opset));
      g.values[read] = Value{};
    }
  }
  product.attrs[kF32ResultAttr] = int_attribute(1);
  out.push_back(std::move(product));
  return out;
}

}  // namespace kiln::graph
