#include "ops/blocked_layout.h"

#include <cmath>

#include "ops/nn_common.h"
#include "ops/registry.h"

namespace kiln::ops {

using graph::TensorType;
using graph::Value;

namespace {

constexpr int64_t kBlock = 16;

// Elementwise operators whose first input alone is a tensor (the others, if any, scalars).
const std::set<std::string> kUnary = {"Relu",     "LeakyRelu", "Clip",  "Sigmoid", "HardSigmoid", "HardSwish",
                                      "Tanh",     "Elu",       "Selu",  "Celu",    "Softplus",    "Softsign",
                                      "Exp",      "Abs",       "Neg",   "Sqrt",    "Reciprocal",  "Erf",
                                      "Mish",     "Gelu",      "ThresholdedRelu"};
// Elementwise operators over broadcast tensors.
const std::set<std::string> kBinary = {"Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"};

const HostTensor* constant(const Graph& g, const std::string& name) {
  if (name.empty() || !g.has_value(name)) return nullptr;
  return g.value(name).constant.get();
}

bool all_ones(const std::vector<int64_t>& v) {
  return std::all_of(v.begin(), v.end(), [](int64_t x) { return x == 1; });
}

// Per-channel values laid out to broadcast against a blocked tensor: [1, C/16, 1, 16].
HostTensor blocked_channels(const std::vector<double>& v, int64_t channels) {
  HostTensor t(DType::F32, {1, channels / kBlock, 1, kBlock});
  for (int64_t c = 0; c < channels; ++c) t.set_f64(c, v[c]);
  return t;
}

// Whether constant `t` broadcasts against an N, C, H, W tensor as one value per channel.
bool per_channel(const HostTensor& t, int64_t channels) {
  const Shape& s = t.shape;
  if (t.numel() != channels || s.size() < 3 || s.size() > 4) return false;
  return s[s.size() - 3] == channels && s[s.size() - 2] == 1 && s[s.size() - 1] == 1;
}

// Whether Winograd's F(2x2, 3x3) (ops/winograd.cpp) computes this convolution faster than
// the direct blocked one: a 3x3 window at stride 1 with padding 1, and enough pixels and
// channels for its 16 matrix products to keep a register tile busy. Even at 7x7 (16 tiles for
// 49 outputs, transformed weights 16/9 the size) ResNet-50's 512-channel 3x3 convs went from
// 4.2-4.6 to 3.0-3.9 ms.
bool winograd_fits(const Window& win, int64_t channels, int64_t out_channels) {
  for (int d = 0; d < 2; ++d)
    if (win.kernel[d] != 3 || win.strides[d] != 1 || win.dilations[d] != 1 || win.pad_begin[d] != 1 ||
        win.pad_end[d] != 1)
      return false;
  return win.in[0] * win.in[1] >= 49 && channels >= 32 && out_channels >= 16;
}

}  // namespace

BlockedLayout::BlockedLayout(const Graph& g, bool winograd) : winograd_(winograd) {
  plain_only_.insert(g.outputs.begin(), g.outputs.end());
  std::function<void(const Graph&)> reads = [&](const Graph& sub) {
    for (auto& n : sub.nodes) {
      plain_only_.insert(n.inputs.begin(), n.inputs.end());
      for (auto& kv : n.attrs)
        if (kv.second.graph) reads(*kv.second.graph);
    }
    plain_only_.insert(sub.outputs.begin(), sub.outputs.end());
  };
  for (auto& n : g.nodes)
    for (auto& kv : n.attrs)
      if (kv.second.graph) reads(*kv.second.graph);
}

const BlockedLayout::Blocked* BlockedLayout::blocked(const std::string& plain) const {
  auto it = of_.find(plain);
  return it == of_.end() ? nullptr : &it->second;
}

std::string BlockedLayout::add_output(Rewrite& r, Graph& g, const std::string& plain, int64_t batch, int64_t channels,
                                      int64_t h, int64_t w) {
  std::string name = plain + "/blocked";
  g.values[name] = Value{};
  of_[plain] = Blocked{name, batch, channels, h, w};
  blocked_names_.insert(name);
  r.blocked_outputs.push_back({name, plain});
  return name;
}

std::optional<BlockedLayout::Rewrite> BlockedLayout::rewrite(const Node& n, Graph& g) {
  if (n.domain == kInternalDomain) return std::nullopt;
  std::optional<Rewrite> r;
  if (n.domain.empty()) {
    if (n.op_type == "Conv") r = conv(n, g);
    else if (kUnary.count(n.op_type) || kBinary.count(n.op_type)) r = elementwise(n, g);
    else if (n.op_type == "BatchNormalization") r = batch_norm(n, g);
    else if (n.op_type.ends_with("Pool")) r = pool(n, g);
  }
  return r ? r : materialize(n, g);
}

std::optional<BlockedLayout::Rewrite> BlockedLayout::conv(const Node& n, Graph& g) {
  if (n.inputs.size() < 2 || n.outputs.size() != 1) return std::nullopt;
  const std::string& x = n.inputs[0];
  const Blocked* bx = blocked(x);
  const HostTensor* w = constant(g, n.inputs[1]);
  if (!w || w->dtype != DType::F32 || w->shape.size() != 4) return std::nullopt;
  int64_t batch, channels, height, width;
  if (bx) {
    batch = bx->batch, channels = bx->channels, height = bx->height, width = bx->width;
  } else {
    if (!g.has_value(x) || !g.value(x).typed) return std::nullopt;
    const TensorType& t = g.value(x).type;
    if (t.dtype != DType::F32 || t.shape.size() != 4) return std::nullopt;
    batch = t.shape[0], channels = t.shape[1], height = t.shape[2], width = t.shape[3];
  }
  if (n.inputs.size() > 2 && !n.inputs[2].empty()) {
    if (!g.has_value(n.inputs[2]) || !g.value(n.inputs[2]).typed || g.value(n.inputs[2]).type.dtype != DType::F32)
      return std::nullopt;
  }
  int64_t out_channels = w->shape[0], group = graph::int_attr(n, "group", 1);
  std::vector<int64_t> kernel{w->shape[2], w->shape[3]};
  if (!all_ones(graph::ints_attr(n, "dilations", {1, 1})) || graph::ints_attr(n, "kernel_shape", kernel) != kernel) return std::nullopt;
  bool out_blocked = out_channels % kBlock == 0 && may_block(n.outputs[0]);
  if (group > 1) {
    if (group != channels || out_channels != channels || w->shape[1] != 1 || !bx || !out_blocked) return std::nullopt;
  } else if (group != 1 || w->shape[1] != channels) {
    return std::nullopt;
  }
  OpContext ctx(n, {}, {});
  Window win = sliding_window(ctx, {height, width}, kernel);
  // Winograd's products run on blocks whatever layout the input and output have.
  bool winograd = winograd_ && group == 1 && winograd_fits(win, channels, out_channels);
  // A plain convolution whose output must stay plain (a model output) still computes on blocks
  // when its channels fill them, converting once at the end: a channel-vector tile over the
  // plain output stores its pixels' channels lane by lane, H * W apart (ResNet-50's 7x7 stem
  // alone: 2.96 -> 1.6-1.8 ms at 1 thread on AVX-512).
  bool through_blocks = !bx && !out_blocked && group == 1 && out_channels % kBlock == 0;
  if (!bx && !out_blocked && !winograd && !through_blocks) return std::nullopt;
  Rewrite r;
  Node m = n;
  m.domain = kInternalDomain;
  m.op_type = winograd ? "ConvWinograd" : "ConvBlocked";
  m.name = n.name + "/blocked";
  if (bx) {
    m.inputs[0] = bx->name;
    m.attrs["blocked_in"] = graph::int_attribute(1);
    m.attrs["channels"] = graph::int_attribute(channels);
    m.attrs["spatial"] = graph::ints_attribute({height, width});
  }
  if (out_blocked) {
    m.attrs["blocked_out"] = graph::int_attribute(1);
    m.outputs[0] = add_output(r, g, n.outputs[0], batch, out_channels, win.out[0], win.out[1]);
  }
  r.nodes.push_back(std::move(m));
  return r;
}

std::optional<BlockedLayout::Rewrite> BlockedLayout::elementwise(const Node& n, Graph& g) {
  if (n.outputs.size() != 1 || !may_block(n.outputs[0]) || n.inputs.empty()) return std::nullopt;
  bool unary = kUnary.count(n.op_type) > 0;
  const Blocked* first = nullptr;
  int64_t height = 1, width = 1;
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    if (const Blocked* b = blocked(n.inputs[i]); b && (i == 0 || !unary)) {
      if (first && (b->batch != first->batch || b->channels != first->channels)) return std::nullopt;
      if (!first) first = b;
      height = std::max(height, b->height);
      width = std::max(width, b->width);
    }
  }
  if (!first) return std::nullopt;
  Rewrite r;
  Node m = n;
  m.name = n.name + "/blocked";
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const std::string& in = n.inputs[i];
    if (in.empty()) continue;
    if (const Blocked* b = blocked(in); b && (i == 0 || !unary)) {
      bool full = b->height == height && b->width == width, single = b->height == 1 && b->width == 1;
      if (!full && !single) return std::nullopt;
      m.inputs[i] = b->name;
      continue;
    }
    const HostTensor* c = constant(g, in);
    if (!c || c->shape.size() > 4) return std::nullopt;
    if (c->numel() == 1) continue;  // a scalar broadcasts against any layout
    if (unary || c->dtype != DType::F32 || !per_channel(*c, first->channels)) return std::nullopt;
    std::vector<double> v(size_t(c->numel()));
    for (int64_t k = 0; k < c->numel(); ++k) v[size_t(k)] = c->get_f64(k);
    std::string name = in + "/blocked" + std::to_string(constants_++);
    auto t = std::make_shared<HostTensor>(blocked_channels(v, first->channels));
    g.values[name] = Value{{t->dtype, t->shape}, true, t};
    m.inputs[i] = name;
  }
  m.outputs[0] = add_output(r, g, n.outputs[0], first->batch, first->channels, height, width);
  r.nodes.push_back(std::move(m));
  return r;
}

std::optional<BlockedLayout::Rewrite> BlockedLayout::batch_norm(const Node& n, Graph& g) {
  if (n.inputs.size() != 5 || n.outputs.empty() || !may_block(n.outputs[0]) || graph::int_attr(n, "training_mode", 0))
    return std::nullopt;
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty()) return std::nullopt;
  const Blocked* b = blocked(n.inputs[0]);
  if (!b) return std::nullopt;
  const HostTensor *scale = constant(g, n.inputs[1]), *bias = constant(g, n.inputs[2]), *mean = constant(g, n.inputs[3]),
                   *var = constant(g, n.inputs[4]);
  for (const HostTensor* t : {scale, bias, mean, var})
    if (!t || t->numel() != b->channels) return std::nullopt;
  double eps = n.attrs.count("epsilon") ? n.attrs.at("epsilon").f : 1e-5;
  // y = x * a + c with a = scale / sqrt(var + eps), c = bias - mean * a (in f32, as the
  // BatchNormalization operator computes them).
  std::vector<double> a(size_t(b->channels)), c(size_t(b->channels));
  for (int64_t k = 0; k < b->channels; ++k) {
    float s = float(scale->get_f64(k)) / std::sqrt(float(var->get_f64(k)) + float(eps));
    a[size_t(k)] = s;
    c[size_t(k)] = float(bias->get_f64(k)) - float(mean->get_f64(k)) * s;
  }
  std::string base = n.outputs[0] + "/bn";
  auto add_const = [&](const std::string& name, const std::vector<double>& v) {
    auto t = std::make_shared<HostTensor>(blocked_channels(v, b->channels));
    g.values[name] = Value{{t->dtype, t->shape}, true, t};
  };
  add_const(base + "_scale", a);
  add_const(base + "_shift", c);
  Rewrite r;
  std::string scaled = base + "_scaled";
  g.values[scaled] = Value{};
  blocked_names_.insert(scaled);
  r.blocked_outputs.push_back({scaled, ""});
  Node mul{n.name + "/scale", "Mul", "", 14, {b->name, base + "_scale"}, {scaled}, {}};
  Node add{n.name + "/shift", "Add", "", 14, {scaled, base + "_shift"}, {}, {}};
  add.outputs.push_back(add_output(r, g, n.outputs[0], b->batch, b->channels, b->height, b->width));
  r.nodes.push_back(std::move(mul));
  r.nodes.push_back(std::move(add));
  return r;
}

std::optional<BlockedLayout::Rewrite> BlockedLayout::pool(const Node& n, Graph& g) {
  const Blocked* b = n.inputs.empty() ? nullptr : blocked(n.inputs[0]);
  if (!b || n.outputs.empty() || !may_block(n.outputs[0])) return std::nullopt;
  for (size_t i = 1; i < n.outputs.size(); ++i)
    if (!n.outputs[i].empty()) return std::nullopt;
  bool global = n.op_type == "GlobalAveragePool" || n.op_type == "GlobalMaxPool";
  if (!global && n.op_type != "MaxPool" && n.op_type != "AveragePool") return std::nullopt;
  int64_t height = 1, width = 1;
  if (!global) {
    std::vector<int64_t> kernel = graph::ints_attr(n, "kernel_shape");
    if (kernel.size() != 2 || !all_ones(graph::ints_attr(n, "dilations", {1, 1}))) return std::nullopt;
    std::vector<int64_t> pads = graph::ints_attr(n, "pads", {0, 0, 0, 0});
    bool padded = std::any_of(pads.begin(), pads.end(), [](int64_t p) { return p != 0; }) ||
                  (n.attrs.count("auto_pad") && n.attrs.at("auto_pad").s != "NOTSET" && n.attrs.at("auto_pad").s != "VALID");
    // An average whose divisor is the whole window everywhere.
    if (n.op_type == "AveragePool" && ((padded && !graph::int_attr(n, "count_include_pad", 0)) || graph::int_attr(n, "ceil_mode", 0)))
      return std::nullopt;
    OpContext ctx(n, {}, {});
    Window win = sliding_window(ctx, {b->height, b->width}, kernel, graph::int_attr(n, "ceil_mode", 0) != 0);
    height = win.out[0];
    width = win.out[1];
  }
  Rewrite r;
  Node m = n;
  m.domain = kInternalDomain;
  m.op_type = "PoolBlocked";
  m.name = n.name + "/blocked";
  m.inputs = {b->name};
  m.attrs["pool"] = graph::string_attribute(n.op_type);
  m.attrs["channels"] = graph::int_attribute(b->channels);
  m.attrs["spatial"] = graph::ints_attribute({b->height, b->width});
  m.outputs = {add_output(r, g, n.outputs[0], b->batch, b->channels, height, width)};
  r.nodes.push_back(std::move(m));
  return r;
}

std::optional<BlockedLayout::Rewrite> BlockedLayout::materialize(const Node& n, Graph&) {
  Rewrite r;
  for (auto& in : n.inputs) {
    auto it = of_.find(in);
    if (it == of_.end() || it->second.materialized) continue;
    Blocked& b = it->second;
    b.materialized = true;
    Node from{in + "/from_blocked", "FromBlocked", kInternalDomain, 1, {b.name}, {in}, {}};
    from.attrs["channels"] = graph::int_attribute(b.channels);
    from.attrs["spatial"] = graph::ints_attribute({b.height, b.width});
    r.nodes.push_back(std::move(from));
  }
  if (r.nodes.empty()) return std::nullopt;
  r.nodes.push_back(n);
  return r;
}

}  // namespace kiln::ops
