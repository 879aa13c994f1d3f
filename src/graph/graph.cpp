#include "graph/graph.h"

#include <sstream>

#include "kiln/error.h"

namespace kiln::graph {

Attribute int_attribute(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::Int;
  a.i = v;
  return a;
}

Attribute ints_attribute(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Attribute::Kind::Ints;
  a.ints = std::move(v);
  return a;
}

Attribute string_attribute(std::string s) {
  Attribute a;
  a.kind = Attribute::Kind::String;
  a.s = std::move(s);
  return a;
}

int64_t int_attr(const Node& n, const std::string& name, int64_t def) {
  auto it = n.attrs.find(name);
  return it == n.attrs.end() ? def : it->second.i;
}

std::vector<int64_t> ints_attr(const Node& n, const std::string& name, std::vector<int64_t> def) {
  auto it = n.attrs.find(name);
  return it == n.attrs.end() ? def : it->second.ints;
}

std::string TensorType::str() const { return std::string(dtype_name(dtype)) + shape_str(shape); }

Value& Graph::value(const std::string& name) {
  auto it = values.find(name);
  KILN_CHECK(it != values.end(), "unknown value ", name);
  return it->second;
}

const Value& Graph::value(const std::string& name) const {
  auto it = values.find(name);
  KILN_CHECK(it != values.end(), "unknown value ", name);
  return it->second;
}

std::string to_string(const Graph& g) {
  std::ostringstream os;
  auto ty = [&](const std::string& n) {
    if (n.empty()) return std::string("<none>");
    auto it = g.values.find(n);
    if (it == g.values.end() || !it->second.typed) return "%" + n;
    return "%" + n + ":" + it->second.type.str() + (it->second.constant ? "=const" : "");
  };
  os << "graph(";
  for (size_t i = 0; i < g.inputs.size(); ++i) os << (i ? ", " : "") << ty(g.inputs[i]);
  os << ") {\n";
  for (auto& n : g.nodes) {
    os << "  ";
    for (size_t i = 0; i < n.outputs.size(); ++i) os << (i ? ", " : "") << ty(n.outputs[i]);
    os << " = " << n.op_type << "[" << n.name << "](";
    for (size_t i = 0; i < n.inputs.size(); ++i) os << (i ? ", " : "") << ty(n.inputs[i]);
    os << ")\n";
  }
  os << "  return ";
  for (size_t i = 0; i < g.outputs.size(); ++i) os << (i ? ", " : "") << ty(g.outputs[i]);
  os << "\n}\n";
  return os.str();
}

}  // namespace kiln::graph
