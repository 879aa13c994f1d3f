// kiln's graph IR: an ONNX-like dataflow graph with static, fully known tensor types.
// Values are named; a node reads and writes values by name (an empty input name is an
// absent optional input). Passes are free functions Graph -> Graph (graph/passes.h).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::graph {

struct Graph;

struct TensorType {
  DType dtype = DType::F32;
  Shape shape;
  std::string str() const;
};

struct Attribute {
  enum class Kind { Int, Float, String, Ints, Floats, Strings, Tensor, Graph };
  Kind kind = Kind::Int;
  int64_t i = 0;
  double f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::shared_ptr<const HostTensor> tensor;
  std::shared_ptr<const Graph> graph;  // If / Loop / Scan bodies
};

// Attributes for nodes a pass makes.
Attribute int_attribute(int64_t v);
Attribute ints_attribute(std::vector<int64_t> v);
Attribute string_attribute(std::string s);

struct Node {
  std::string name;  // never empty: the importer names anonymous nodes "<op>_<index>"
  std::string op_type;
  std::string domain;  // "" for the default ONNX domain
  int opset = 0;       // version of `domain` the model imports
  std::vector<std::string> inputs, outputs;
  std::map<std::string, Attribute> attrs;

  std::string label() const { return "node '" + name + "' (" + op_type + ")"; }
};

// A node's int / ints attribute, or `def` when it has none (for passes; converters read
// attributes through ops::OpContext, which also checks their kinds).
int64_t int_attr(const Node& n, const std::string& name, int64_t def);
std::vector<int64_t> ints_attr(const Node& n, const std::string& name, std::vector<int64_t> def = {});

struct Value {
  TensorType type;
  bool typed = false;                          // type known (graph input, constant, or inferred)
  std::shared_ptr<const HostTensor> constant;  // set for initializers and folded values
};

struct Graph {
  std::vector<Node> nodes;  // topologically sorted (the importer checks and refuses cycles)
  std::map<std::string, Value> values;
  std::vector<std::string> inputs;   // graph inputs that are not initializers
  std::vector<std::string> outputs;
  std::string source;                // file the graph came from, for error messages

  Value& value(const std::string& name);
  const Value& value(const std::string& name) const;
  bool has_value(const std::string& name) const { return values.count(name) > 0; }
};

// Readable text form (for --dump-ir and tests).
std::string to_string(const Graph& g);

}  // namespace kiln::graph
