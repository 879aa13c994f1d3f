// The operator table: ONNX op type -> converter. Each family of operators lives in its own
// file (ops/elementwise.cpp, ops/conv.cpp, ...) and adds its converters in a register_*
// function listed in registry.cpp.
#pragma once
#include <functional>
#include <string>

#include "ops/op_context.h"

namespace kiln::ops {

using Converter = std::function<std::vector<tir::Tensor>(OpContext&)>;

struct OpInfo {
  Converter convert;
  int min_opset = 1;  // oldest version of the op this converter implements
};

class Registry {
 public:
  static const Registry& get();
  void add(const std::string& op_type, Converter c, int min_opset = 1);
  const OpInfo* find(const std::string& op_type) const;
  std::vector<std::string> names() const;

 private:
  std::map<std::string, OpInfo> ops_;
};

// One per file; each registers its family.
void register_elementwise(Registry& r);
void register_reduce(Registry& r);
void register_matmul(Registry& r);
void register_conv(Registry& r);
void register_pool(Registry& r);
void register_norm(Registry& r);
void register_shape_ops(Registry& r);
void register_index_ops(Registry& r);
void register_misc(Registry& r);
void register_softmax(Registry& r);
void register_rnn(Registry& r);
void register_resize(Registry& r);
void register_loss(Registry& r);
void register_quant(Registry& r);
void register_signal(Registry& r);

}  // namespace kiln::ops
