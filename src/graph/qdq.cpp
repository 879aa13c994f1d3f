#include "graph/qdq.h"

#include <cmath>
#include <optional>
#include <set>

#include "graph/uses.h"

namespace kiln::graph {

namespace {

// The single reader of `value`, when it is a QuantizeLinear and `value` is not an output.
const Node* only_quantizer(const Uses& u, const std::string& value) {
  const Node* q = u.only_reader(value);
  return q && q->op_type == "QuantizeLinear" && q->domain.empty() && q->inputs.size() == 3 ? q : nullptr;
}

bool is_8bit(const HostTensor* t) { return t && (t->dtype == DType::U8 || t->dtype == DType::I8); }
bool per_tensor(const HostTensor* t) { return t && t->numel() == 1; }

int64_t axis_of(const Node& n, int64_t rank) {
  auto it = n.attrs.find("axis");
  int64_t a = it == n.attrs.end() ? 1 : it->second.i;
  return a < 0 ? a + rank : a;
}

// A DequantizeLinear with a constant scale and a constant 8-bit zero point, per tensor unless
// `channel_axis` (of a rank-`rank` operand) is given, in which case per tensor or per that axis.
bool quantized_operand(const Graph& g, const Node* dq, int64_t rank = 0, int64_t channel_axis = -1) {
  if (!dq || dq->inputs.size() != 3) return false;
  const HostTensor* scale = constant(g, dq->inputs[1]);
  const HostTensor* zp = constant(g, dq->inputs[2]);
  if (!scale || scale->dtype != DType::F32 || !is_8bit(zp) || scale->numel() != zp->numel()) return false;
  if (per_tensor(scale)) return true;
  return channel_axis >= 0 && scale->shape.size() == 1 && axis_of(*dq, rank) == channel_axis;
}

// The int32 bias of a quantized conv: DQ(b) with zero point 0 and scale x_scale * w_scale.
bool integer_bias(const Graph& g, const Node* dq, const HostTensor* x_scale, const HostTensor* w_scale) {
  if (!dq || dq->inputs.size() < 2) return false;
  const HostTensor* b = constant(g, dq->inputs[0]);
  const HostTensor* scale = constant(g, dq->inputs[1]);
  if (!b || b->dtype != DType::I32 || !scale || scale->dtype != DType::F32 || b->shape.size() != 1) return false;
  if (dq->inputs.size() > 2 && !dq->inputs[2].empty()) {
    const HostTensor* zp = constant(g, dq->inputs[2]);
    if (!zp) return false;
    for (int64_t i = 0; i < zp->numel(); ++i)
      if (zp->get_f64(i) != 0) return false;
  }
  int64_t n = b->numel();
  if (!(scale->numel() == n || scale->numel() == 1) || !(w_scale->numel() == n || w_scale->numel() == 1)) return false;
  float xs = x_scale->as<float>()[0];
  for (int64_t i = 0; i < n; ++i) {
    float want = xs * w_scale->as<float>()[w_scale->numel() == 1 ? 0 : i];
    float have = scale->as<float>()[scale->numel() == 1 ? 0 : i];
    if (std::fabs(want - have) > 1e-6f * std::fabs(want)) return false;
  }
  return true;
}

const HostTensor* value_of(const Graph& g, const Node* dq, int input) { return constant(g, dq->inputs[input]); }

// The dequantized operands and the quantizer of a product Q(op(DQ(a), DQ(b), ...)), with a
// and the result quantized per tensor to 8 bits (b's scales are checked by each operator).
struct QuantizedProduct {
  const Node* a;
  const Node* b;
  const Node* q;
};

std::optional<QuantizedProduct> quantized_product(const Graph& g, const Uses& u, const Node& n) {
  if (n.inputs.size() < 2) return std::nullopt;
  QuantizedProduct p{u.made_by(n.inputs[0], "DequantizeLinear"), u.made_by(n.inputs[1], "DequantizeLinear"),
                     only_quantizer(u, n.outputs[0])};
  if (!p.a || !p.b || !p.q || !quantized_operand(g, p.a)) return std::nullopt;
  if (!per_tensor(constant(g, p.q->inputs[1])) || !is_8bit(constant(g, p.q->inputs[2]))) return std::nullopt;
  return p;
}

// `n` as the integer operator `op` (QLinearConv / QLinearMatMul input order), reading b from
// `b_value` and, when given, an int32 `bias`; it writes the quantizer's output.
Node integer_node(const Node& n, const char* op, const QuantizedProduct& p, const std::string& b_value,
                  const std::string& bias) {
  Node f = n;
  f.op_type = op;
  f.inputs = {p.a->inputs[0], p.a->inputs[1], p.a->inputs[2], b_value, p.b->inputs[1], p.b->inputs[2],
              p.q->inputs[1], p.q->inputs[2]};
  if (!bias.empty()) f.inputs.push_back(bias);
  f.outputs = {p.q->outputs[0]};
  return f;
}

// The int32 bias input `i` of n, when it is DQ(b_int32) with scale a_scale * b_scale: its
// quantized value's name; "" when n has none; nullopt when it does not match.
std::optional<std::string> bias_of(const Graph& g, const Uses& u, const Node& n, size_t i, const QuantizedProduct& p) {
  if (n.inputs.size() <= i || n.inputs[i].empty()) return std::string();
  const Node* db = u.made_by(n.inputs[i], "DequantizeLinear");
  if (!integer_bias(g, db, value_of(g, p.a, 1), value_of(g, p.b, 1))) return std::nullopt;
  return db->inputs[0];
}

// QLinearConv for Q(Conv(DQ(x), DQ(w) [, DQ(b)])) with constant weights per output channel.
std::optional<Node> fused_conv(const Graph& g, const Uses& u, const Node& n) {
  auto p = quantized_product(g, u, n);
  if (!p) return std::nullopt;
  const HostTensor* w = constant(g, p->b->inputs[0]);
  if (!is_8bit(w) || !quantized_operand(g, p->b, int64_t(w->shape.size()), 0)) return std::nullopt;
  auto bias = bias_of(g, u, n, 2, *p);
  if (!bias) return std::nullopt;
  return integer_node(n, "QLinearConv", *p, p->b->inputs[0], *bias);
}

// QLinearMatMul for Q(MatMul(DQ(a), DQ(b))): b per tensor or, when constant, per column.
std::optional<Node> fused_matmul(const Graph& g, const Uses& u, const Node& n) {
  auto p = quantized_product(g, u, n);
  if (!p) return std::nullopt;
  const HostTensor* b = constant(g, p->b->inputs[0]);
  int64_t rank = b ? int64_t(b->shape.size()) : 0;
  // Per-column scales need b's rank, known here only for a constant b, and QLinearMatMul
  // takes them only for a 2-D b.
  if (!quantized_operand(g, p->b, rank, rank == 2 ? 1 : -1)) return std::nullopt;
  return integer_node(n, "QLinearMatMul", *p, p->b->inputs[0], "");
}

float attr_float(const Node& n, const char* name, float def) {
  auto it = n.attrs.find(name);
  return it == n.attrs.end() ? def : float(it->second.kind == Attribute::Kind::Float ? it->second.f : it->second.i);
}

// QLinearMatMul with kiln's optional 9th input, an int32 bias per column, for
// Q(Gemm(DQ(a), DQ(b), DQ(c_int32))) with alpha = beta = 1 and a constant b (transposed here
// when transB is set, so that its columns are the outputs).
std::optional<Node> fused_gemm(Graph& g, const Uses& u, const Node& n) {
  if (attr_float(n, "alpha", 1) != 1 || attr_float(n, "beta", 1) != 1 || attr_float(n, "transA", 0) != 0)
    return std::nullopt;
  bool trans_b = attr_float(n, "transB", 0) != 0;
  auto p = quantized_product(g, u, n);
  if (!p) return std::nullopt;
  const HostTensor* b = constant(g, p->b->inputs[0]);
  if (!is_8bit(b) || b->shape.size() != 2 || !quantized_operand(g, p->b, 2, trans_b ? 0 : 1)) return std::nullopt;
  auto bias = bias_of(g, u, n, 2, *p);
  if (!bias || (!bias->empty() && constant(g, *bias)->numel() != b->shape[trans_b ? 0 : 1])) return std::nullopt;
  std::string b_name = p->b->inputs[0];
  if (trans_b) {
    int64_t rows = b->shape[0], cols = b->shape[1];
    auto t = std::make_shared<HostTensor>(b->dtype, Shape{cols, rows});
    const uint8_t* src = static_cast<const uint8_t*>(b->data());
    uint8_t* dst = static_cast<uint8_t*>(t->data());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) dst[c * rows + r] = src[r * cols + c];
    b_name += "_transposed";
    g.values[b_name] = Value{{b->dtype, t->shape}, true, t};
  }
  Node f = integer_node(n, "QLinearMatMul", *p, b_name, *bias);
  f.attrs.clear();
  return f;
}

// Operators that only move or select values, and the max pools, whose max commutes with a
// dequantization of positive scale. Between a DequantizeLinear and a QuantizeLinear of the
// same scale and zero point, op(x) on the 8-bit values is exactly Q(op(DQ(x))): Q(DQ(v)) = v
// for every 8-bit v, since v - zp is an integer of magnitude at most 255 and the f32 product
// and quotient stay within 255 * 2^-23 of it. ONNX Runtime runs these on the 8-bit values too
// (its quantizer gives them one scale for input and output); dequantizing, moving and
// requantizing costs a division per element.
const std::set<std::string> kValuePreserving = {"MaxPool", "GlobalMaxPool", "Reshape",  "Transpose",
                                                "Flatten", "Squeeze",       "Unsqueeze"};

// Whether `dq` and `q` use one constant per-tensor scale (positive, finite) and 8-bit zero point.
bool same_quantization(const Graph& g, const Node& dq, const Node& q) {
  if (dq.inputs.size() != 3 || q.inputs.size() != 3) return false;
  const HostTensor* s1 = constant(g, dq.inputs[1]);
  const HostTensor* s2 = constant(g, q.inputs[1]);
  const HostTensor* z1 = constant(g, dq.inputs[2]);
  const HostTensor* z2 = constant(g, q.inputs[2]);
  if (!per_tensor(s1) || !per_tensor(s2) || s1->dtype != DType::F32 || s2->dtype != DType::F32) return false;
  if (!is_8bit(z1) || !z2 || z1->dtype != z2->dtype || !per_tensor(z1) || !per_tensor(z2)) return false;
  float scale = s1->as<float>()[0];
  return std::isfinite(scale) && scale > 0 && scale == s2->as<float>()[0] && z1->get_f64(0) == z2->get_f64(0);
}

// Q(op(DQ(x))) -> op(x) for the operators above (the QuantizeLinear's output now made by op;
// the DequantizeLinear stays for its other readers, if any).
Graph keep_8bit_through_value_preserving_ops(Graph g) {
  Uses u(g);
  if (u.opaque) return g;
  std::set<const Node*> absorbed;
  std::vector<Node> out;
  for (auto& n : g.nodes) {
    if (absorbed.count(&n)) continue;
    const Node* dq = n.domain.empty() && kValuePreserving.count(n.op_type) && n.outputs.size() == 1 && !n.inputs.empty()
                         ? u.made_by(n.inputs[0], "DequantizeLinear")
                         : nullptr;
    const Node* q = dq ? only_quantizer(u, n.outputs[0]) : nullptr;
    if (!q || !same_quantization(g, *dq, *q)) {
      out.push_back(n);
      continue;
    }
    Node m = n;
    m.inputs[0] = dq->inputs[0];
    m.outputs[0] = q->outputs[0];
    absorbed.insert(q);
    out.push_back(std::move(m));
  }
  g.nodes = std::move(out);
  return g;
}

}  // namespace

Graph fuse_quantized_products(Graph g) {
  g = keep_8bit_through_value_preserving_ops(std::move(g));
  Uses u(g);
  if (u.opaque) return g;
  std::set<const Node*> absorbed;  // quantizers that now belong to a fused node
  std::vector<Node> out;
  for (auto& n : g.nodes) {
    if (absorbed.count(&n)) continue;
    std::optional<Node> f;
    if (n.domain.empty() && n.op_type == "Conv") f = fused_conv(g, u, n);
    if (n.domain.empty() && n.op_type == "MatMul") f = fused_matmul(g, u, n);
    if (n.domain.empty() && n.op_type == "Gemm") f = fused_gemm(g, u, n);
    if (!f) {
      out.push_back(n);
      continue;
    }
    absorbed.insert(only_quantizer(u, n.outputs[0]));
    out.push_back(std::move(*f));
  }
  g.nodes = std::move(out);
  return g;
}

}  // namespace kiln::graph
