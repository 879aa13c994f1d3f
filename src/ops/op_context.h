// What an operator converter sees of one graph node: its inputs as tensor-expression
// placeholders (with their static types), constant input values where known, the attributes,
// and the opset version. A converter returns one tir::Tensor per node output, written as
// compute definitions over its inputs; the compiler lowers and generates code for them.
#pragma once
#include <optional>

#include "graph/graph.h"
#include "kiln/error.h"
#include "tir/compute.h"

namespace kiln::ops {

class OpContext {
 public:
  // `values` gives the constant value of an input when it is known at compile time (an
  // initializer, a folded value, or a graph input the user specialized on).
  OpContext(const graph::Node& node, std::vector<tir::Tensor> inputs,
            std::vector<const HostTensor*> values);

  const graph::Node& node() const { return node_; }
  int opset() const { return node_.opset; }
  const std::string& op_type() const { return node_.op_type; }

  // Inputs. Optional inputs that are absent (empty name or beyond the list) are !has_input.
  int num_inputs() const { return int(inputs_.size()); }
  bool has_input(int i) const { return i < num_inputs() && inputs_[i].defined(); }
  const tir::Tensor& input(int i) const;  // error when absent
  // Compile-time value of input i or nullptr. Calling this marks that the compiled kernel
  // depends on the value (see used_values()).
  const HostTensor* value(int i);
  // Value of input i, required to be known at compile time; `what` names it in the error.
  const HostTensor& required_value(int i, const char* what);
  std::vector<int64_t> required_ints(int i, const char* what) { return required_value(i, what).to_i64_vector(); }
  const std::vector<bool>& used_values() const { return used_; }

  // Attributes with defaults.
  bool has_attr(const std::string& name) const { return node_.attrs.count(name) > 0; }
  int64_t attr_int(const std::string& name, int64_t def) const;
  double attr_float(const std::string& name, double def) const;
  std::string attr_string(const std::string& name, const std::string& def) const;
  std::vector<int64_t> attr_ints(const std::string& name, std::vector<int64_t> def = {}) const;
  std::vector<double> attr_floats(const std::string& name, std::vector<double> def = {}) const;
  const HostTensor* attr_tensor(const std::string& name) const;
  const graph::Attribute* attr(const std::string& name) const;

  // Error about this node: "node 'name' (Op): message". Use for anything the model got wrong
  // or that kiln does not support.
  template <typename... Args>
  [[noreturn]] void error(const Args&... args) const {
    fail(node_.label(), ": ", args...);
  }
  // Output names are "<node>_out<i>" unless the converter chooses otherwise.
  std::string out_name(int i = 0) const;
  // Normalizes a possibly negative axis against `rank`, with an error when out of range.
  int64_t axis(int64_t a, int64_t rank, const char* what = "axis") const;

 private:
  const graph::Node& node_;
  std::vector<tir::Tensor> inputs_;
  std::vector<const HostTensor*> values_;
  std::vector<bool> used_;
};

}  // namespace kiln::ops
