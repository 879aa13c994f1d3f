// Who makes and who reads each value of a graph: the lookups of pattern-matching passes
// (graph/qdq.h, graph/gelu.h).
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace kiln::graph {

struct Uses {
  std::map<std::string, const Node*> producer;
  std::map<std::string, std::vector<const Node*>> readers;
  std::set<std::string> outputs;
  bool opaque = false;  // a node has a subgraph, whose reads this map does not see

  explicit Uses(const Graph& g) : outputs(g.outputs.begin(), g.outputs.end()) {
    for (auto& n : g.nodes) {
      for (auto& o : n.outputs) producer[o] = &n;
      for (auto& i : n.inputs) readers[i].push_back(&n);
      for (auto& kv : n.attrs)
        if (kv.second.graph) opaque = true;
    }
  }

  // The node of ONNX operator `op` that makes `value`, or null.
  const Node* made_by(const std::string& value, const char* op) const {
    auto it = producer.find(value);
    if (it == producer.end() || it->second->op_type != op || !it->second->domain.empty()) return nullptr;
    return it->second;
  }
  // The only node reading `value`, when `value` is not a graph output; else null.
  const Node* only_reader(const std::string& value) const {
    auto it = readers.find(value);
    if (outputs.count(value) || it == readers.end() || it->second.size() != 1) return nullptr;
    return it->second[0];
  }
};

// The constant (initializer or folded value) named `name`, or null.
inline const HostTensor* constant(const Graph& g, const std::string& name) {
  if (name.empty() || !g.has_value(name)) return nullptr;
  return g.value(name).constant.get();
}

}  // namespace kiln::graph
