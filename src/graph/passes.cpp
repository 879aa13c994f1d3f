#include "graph/passes.h"

#include <set>

namespace kiln::graph {

namespace {

// Every name read inside the subgraphs of `n` (If/Loop bodies read enclosing-scope values).
void subgraph_reads(const Node& n, std::set<std::string>& out) {
  for (auto& kv : n.attrs) {
    if (!kv.second.graph) continue;
    for (auto& sn : kv.second.graph->nodes) {
      out.insert(sn.inputs.begin(), sn.inputs.end());
      subgraph_reads(sn, out);
    }
    out.insert(kv.second.graph->outputs.begin(), kv.second.graph->outputs.end());
  }
}

}  // namespace

Graph eliminate_dead_code(Graph g) {
  std::set<std::string> live(g.outputs.begin(), g.outputs.end());
  std::vector<Node> kept;
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    bool used = false;
    for (auto& o : it->outputs) used |= !o.empty() && live.count(o);
    if (!used) continue;
    for (auto& in : it->inputs) live.insert(in);
    subgraph_reads(*it, live);
    kept.push_back(*it);
  }
  g.nodes.assign(kept.rbegin(), kept.rend());
  std::set<std::string> named(g.inputs.begin(), g.inputs.end());
  named.insert(g.outputs.begin(), g.outputs.end());
  for (auto& n : g.nodes) {
    named.insert(n.inputs.begin(), n.inputs.end());
    named.insert(n.outputs.begin(), n.outputs.end());
    subgraph_reads(n, named);
  }
  std::erase_if(g.values, [&](const auto& kv) { return !named.count(kv.first); });
  return g;
}

Graph canonicalize(Graph g) {
  std::map<std::string, std::string> rename;
  auto resolve = [&](std::string n) {
    for (auto it = rename.find(n); it != rename.end(); it = rename.find(n)) n = it->second;
    return n;
  };
  std::set<std::string> outputs(g.outputs.begin(), g.outputs.end());
  std::vector<Node> kept;
  for (auto& n : g.nodes) {
    for (auto& in : n.inputs) in = resolve(in);
    bool forward = n.op_type == "Identity" && n.domain.empty();
    if (n.op_type == "Dropout" && n.domain.empty()) {
      // Inference mode: the output is the input (training_mode, if given, must be false).
      bool training = n.inputs.size() > 2 && !n.inputs[2].empty();
      bool mask_used = n.outputs.size() > 1 && !n.outputs[1].empty();
      forward = !training && !mask_used;
    }
    // A graph output must stay a distinct value, so forwarding stops there.
    if (forward && n.inputs.size() >= 1 && !n.inputs[0].empty() && !outputs.count(n.outputs[0])) {
      rename[n.outputs[0]] = n.inputs[0];
      continue;
    }
    kept.push_back(std::move(n));
  }
  g.nodes = std::move(kept);
  return eliminate_dead_code(std::move(g));
}

}  // namespace kiln::graph
