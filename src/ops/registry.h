// The operator table: ONNX op type -> converter. Each family of operators lives in its own
// file (ops/elementwise.cpp, ops/conv.cpp, ...) and adds its converters in a register_*
// function listed in registry.cpp.
#pragma once
#include <functional>
#include <string>

#include "ops/op_context.h"

namespace kiln::ops {

using Converter = std::function<std::vector<tir::Tensor>(OpContext&)>;

// The converter of an operator with one output.
Converter single(std::function<tir::Tensor(OpContext&)> f);

// Host operators: the few ops that are not index computations (sorting, for instance) run as
// C++ functions over whole tensors. They are kept apart from compiled ops (ops/host_ops.cpp).
struct TensorView {
  void* data;
  DType dtype;
  Shape shape;
};
struct HostPlan {
  std::vector<graph::TensorType> outputs;
  std::function<void(const std::vector<TensorView>& ins, const std::vector<TensorView>& outs)> run;
};
using HostConverter = std::function<HostPlan(OpContext&)>;

struct OpInfo {
  Converter convert;     // compiled op (set for all but host ops)
  HostConverter host;    // host op
  int min_opset = 1;     // oldest version of the op this converter implements
};

inline constexpr const char* kInternalDomain = "kiln.internal";

class Registry {
 public:
  static const Registry& get();
  void add(const std::string& op_type, Converter c, int min_opset = 1);
  void add_host(const std::string& op_type, HostConverter c);
  // Operators only the compiler's own passes create, in domain kInternalDomain (never an
  // ONNX model's: the importer's support check rejects that domain).
  void add_internal(const std::string& op_type, Converter c);
  // The converter of `op_type` in `domain` ("" for ONNX's default domain), or nullptr.
  const OpInfo* find(const std::string& op_type, const std::string& domain = "") const;
  std::vector<std::string> names() const;  // the ONNX operators

 private:
  std::map<std::string, OpInfo> ops_;
  std::map<std::string, OpInfo> internal_;
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
void register_host_ops(Registry& r);
void register_sample(Registry& r);
void register_blocked(Registry& r);

}  // namespace kiln::ops
