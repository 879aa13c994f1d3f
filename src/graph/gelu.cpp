#include "graph/gelu.h"

#include <cmath>
#include <optional>
#include <set>

#include "graph/uses.h"

namespace kiln::graph {

namespace {

bool is_scalar(const Graph& g, const std::string& name, float want) {
  const HostTensor* t = constant(g, name);
  return t && t->dtype == DType::F32 && t->numel() == 1 && t->as<float>()[0] == want;
}

// The operand of binary node `n` other than `value`, or "" when `value` is not one of them.
std::string other_operand(const Node& n, const std::string& value) {
  if (n.inputs.size() != 2) return "";
  if (n.inputs[0] == value) return n.inputs[1];
  if (n.inputs[1] == value) return n.inputs[0];
  return "";
}

bool is_op(const Node* n, const char* op) { return n && n->op_type == op && n->domain.empty(); }

struct Match {
  std::string x;
  const Node* result;               // the last product, which the Gelu node replaces
  std::set<const Node*> absorbed;   // the other nodes of the pattern
};

// The pattern around Erf node `erf`, or nothing.
std::optional<Match> match(const Graph& g, const Uses& u, const Node& erf) {
  const Node* div = u.made_by(erf.inputs[0], "Div");
  if (!div || div->inputs.size() != 2 || u.only_reader(div->outputs[0]) != &erf ||
      !is_scalar(g, div->inputs[1], float(std::sqrt(2.0))))
    return std::nullopt;
  Match m{div->inputs[0], nullptr, {div, &erf}};
  const Node* add = u.only_reader(erf.outputs[0]);
  if (!is_op(add, "Add") || !is_scalar(g, other_operand(*add, erf.outputs[0]), 1.0f)) return std::nullopt;
  m.absorbed.insert(add);
  const Node* mul = u.only_reader(add->outputs[0]);
  if (!is_op(mul, "Mul")) return std::nullopt;
  std::string other = other_operand(*mul, add->outputs[0]);
  const Node* half = u.made_by(other, "Mul");
  if (other == m.x || is_scalar(g, other, 0.5f)) {
    // (x * a) * 0.5 or (0.5 * a) * x: one more product, with the remaining factor.
    const Node* last = u.only_reader(mul->outputs[0]);
    if (!is_op(last, "Mul")) return std::nullopt;
    std::string rest = other_operand(*last, mul->outputs[0]);
    if (other == m.x ? !is_scalar(g, rest, 0.5f) : rest != m.x) return std::nullopt;
    m.absorbed.insert(mul);
    m.result = last;
  } else if (half && u.only_reader(other) == mul && other_operand(*half, m.x) != "" &&
             is_scalar(g, other_operand(*half, m.x), 0.5f)) {
    // (x * 0.5) * a
    m.absorbed.insert(half);
    m.result = mul;
  } else {
    return std::nullopt;
  }
  return m;
}

}  // namespace

Graph fuse_gelu(Graph g) {
  Uses u(g);
  if (u.opaque) return g;
  std::map<const Node*, Node> replaced;  // last product -> its Gelu
  std::set<const Node*> absorbed;
  for (auto& n : g.nodes) {
    if (!is_op(&n, "Erf") || n.inputs.size() != 1) continue;
    std::optional<Match> m = match(g, u, n);
    if (!m) continue;
    Node gelu;
    gelu.name = m->result->name;
    gelu.op_type = "Gelu";
    gelu.opset = 20;
    gelu.inputs = {m->x};
    gelu.outputs = m->result->outputs;
    replaced[m->result] = std::move(gelu);
    absorbed.insert(m->absorbed.begin(), m->absorbed.end());
  }
  std::vector<Node> out;
  for (auto& n : g.nodes) {
    auto r = replaced.find(&n);
    if (r != replaced.end()) out.push_back(r->second);
    else if (!absorbed.count(&n)) out.push_back(n);
  }
  g.nodes = std::move(out);
  return g;
}

}  // namespace kiln::graph
