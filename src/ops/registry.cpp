#include "ops/registry.h"

namespace kiln::ops {

Converter single(std::function<tir::Tensor(OpContext&)> f) {
  return [f = std::move(f)](OpContext& ctx) -> std::vector<tir::Tensor> { return {f(ctx)}; };
}

const Registry& Registry::get() {
  static const Registry r = [] {
    Registry reg;
    register_elementwise(reg);
    register_reduce(reg);
    register_matmul(reg);
    register_conv(reg);
    register_pool(reg);
    register_norm(reg);
    register_shape_ops(reg);
    register_index_ops(reg);
    register_misc(reg);
    register_softmax(reg);
    register_rnn(reg);
    register_resize(reg);
    register_loss(reg);
    register_quant(reg);
    register_signal(reg);
    register_host_ops(reg);
    register_sample(reg);
    register_blocked(reg);
    return reg;
  }();
  return r;
}

void Registry::add(const std::string& op_type, Converter c, int min_opset) {
  ops_[op_type] = OpInfo{std::move(c), nullptr, min_opset};
}

void Registry::add_host(const std::string& op_type, HostConverter c) {
  ops_[op_type] = OpInfo{nullptr, std::move(c), 1};
}

void Registry::add_internal(const std::string& op_type, Converter c) {
  internal_[op_type] = OpInfo{std::move(c), nullptr, 1};
}

const OpInfo* Registry::find(const std::string& op_type, const std::string& domain) const {
  const auto& table = domain.empty() ? ops_ : internal_;
  if (!domain.empty() && domain != kInternalDomain) return nullptr;
  auto it = table.find(op_type);
  return it == table.end() ? nullptr : &it->second;
}

std::vector<std::string> Registry::names() const {
  std::vector<std::string> v;
  for (auto& kv : ops_) v.push_back(kv.first);
  return v;
}

}  // namespace kiln::ops
