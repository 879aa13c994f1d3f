#include "runtime/sequences.h"

#include "kiln/error.h"

namespace kiln {

namespace {

graph::Node make_node(const graph::Node& from, const std::string& suffix, const std::string& op,
                      std::vector<std::string> ins, std::vector<std::string> outs) {
  graph::Node n;
  n.name = from.name + "/" + suffix;
  n.op_type = op;
  n.opset = 11;  // attribute forms of axes / split, which every converter understands
  n.inputs = std::move(ins);
  n.outputs = std::move(outs);
  return n;
}


}  // namespace

bool SequenceLowering::is_sequence_op(const std::string& op) {
  return op == "SequenceEmpty" || op == "SequenceConstruct" || op == "SequenceInsert" || op == "SequenceErase" ||
         op == "SequenceAt" || op == "SequenceLength" || op == "SplitToSequence" || op == "ConcatFromSequence";
}

const std::vector<std::string>& SequenceLowering::items(const graph::Graph& g, const graph::Node& n, int input) const {
  auto it = seqs_.find(n.inputs.at(input));
  if (it == seqs_.end())
    fail(g.source, ": ", n.label(), ": input '", n.inputs[input],
         "' is not a sequence built inside the graph (sequence inputs and outputs are not supported)");
  return it->second;
}

void SequenceLowering::lower(const graph::Node& n, graph::Graph& g, std::deque<graph::Node>& work,
                             const ValueOf& value_of) {
  auto position = [&](int input, int64_t def, int64_t len, bool insert) {
    if (n.inputs.size() <= size_t(input) || n.inputs[input].empty()) return def;
    const HostTensor* v = value_of(n.inputs[input]);
    if (!v) fail(g.source, ": ", n.label(), ": the position must be known at compile time");
    int64_t p = v->get_i64(0);
    if (p < 0) p += len;
    if (p < 0 || p > len || (!insert && p == len)) fail(g.source, ": ", n.label(), ": position ", v->get_i64(0), " is out of range");
    return p;
  };
  auto fresh = [&](const std::string& name) {
    if (!g.has_value(name)) g.values[name] = graph::Value{};
    return name;
  };
  const std::string& op = n.op_type;
  if (op == "SequenceEmpty") {
    seqs_[n.outputs[0]] = {};
  } else if (op == "SequenceConstruct") {
    seqs_[n.outputs[0]] = n.inputs;
  } else if (op == "SequenceInsert") {
    auto v = items(g, n, 0);
    int64_t p = position(2, int64_t(v.size()), int64_t(v.size()), true);
    v.insert(v.begin() + p, n.inputs.at(1));
    seqs_[n.outputs[0]] = v;
  } else if (op == "SequenceErase") {
    auto v = items(g, n, 0);
    if (v.empty()) fail(g.source, ": ", n.label(), ": erase from an empty sequence");
    int64_t p = position(1, int64_t(v.size()) - 1, int64_t(v.size()), false);
    v.erase(v.begin() + p);
    seqs_[n.outputs[0]] = v;
  } else if (op == "SequenceAt") {
    const auto& v = items(g, n, 0);
    int64_t p = position(1, 0, int64_t(v.size()), false);
    work.push_front(make_node(n, "at", "Identity", {v[p]}, {n.outputs[0]}));
  } else if (op == "SequenceLength") {
    HostTensor t(DType::I64, {});
    t.as<int64_t>()[0] = int64_t(items(g, n, 0).size());
    graph::Value& out = g.value(n.outputs[0]);
    out.type = {DType::I64, {}};
    out.typed = true;
    out.constant = std::make_shared<HostTensor>(std::move(t));
  } else if (op == "ConcatFromSequence") {
    const auto& v = items(g, n, 0);
    if (v.empty()) fail(g.source, ": ", n.label(), ": concatenation of an empty sequence");
    int64_t axis = graph::int_attr(n, "axis", 0);
    std::vector<graph::Node> nodes;
    std::vector<std::string> parts = v;
    if (graph::int_attr(n, "new_axis", 0)) {
      // A new axis: unsqueeze every item there first. A negative axis counts from the new rank.
      for (size_t i = 0; i < v.size(); ++i) {
        graph::Node u = make_node(n, "unsqueeze" + std::to_string(i), "Unsqueeze", {v[i]},
                                  {fresh(n.name + "/item" + std::to_string(i))});
        u.attrs["axes"] = graph::ints_attribute({axis});
        parts[i] = u.outputs[0];
        nodes.push_back(u);
      }
    }
    graph::Node c = make_node(n, "concat", "Concat", parts, {n.outputs[0]});
    c.attrs["axis"] = graph::int_attribute(axis);
    nodes.push_back(c);
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) work.push_front(*it);
  } else if (op == "SplitToSequence") {
    const graph::Value& x = g.value(n.inputs.at(0));
    int64_t rank = int64_t(x.type.shape.size());
    int64_t axis = graph::int_attr(n, "axis", 0);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) fail(g.source, ": ", n.label(), ": axis out of range");
    int64_t dim = x.type.shape[axis];
    std::vector<int64_t> sizes;
    bool squeeze = false;
    if (n.inputs.size() < 2 || n.inputs[1].empty()) {
      sizes.assign(dim, 1);
      squeeze = graph::int_attr(n, "keepdims", 1) == 0;
    } else {
      const HostTensor* s = value_of(n.inputs[1]);
      if (!s) fail(g.source, ": ", n.label(), ": split sizes must be known at compile time");
      if (s->shape.empty()) {
        int64_t chunk = s->get_i64(0);
        if (chunk <= 0) fail(g.source, ": ", n.label(), ": split size must be positive");
        for (int64_t at = 0; at < dim; at += chunk) sizes.push_back(std::min(chunk, dim - at));
      } else {
        sizes = s->to_i64_vector();
      }
    }
    std::vector<std::string> parts, out_items;
    for (size_t i = 0; i < sizes.size(); ++i) parts.push_back(fresh(n.name + "/part" + std::to_string(i)));
    graph::Node split = make_node(n, "split", "Split", {n.inputs[0]}, parts);
    split.attrs["axis"] = graph::int_attribute(axis);
    split.attrs["split"] = graph::ints_attribute(sizes);
    std::vector<graph::Node> nodes = {split};
    for (size_t i = 0; i < parts.size(); ++i) {
      if (!squeeze) {
        out_items.push_back(parts[i]);
        continue;
      }
      graph::Node sq = make_node(n, "squeeze" + std::to_string(i), "Squeeze", {parts[i]},
                                 {fresh(n.name + "/item" + std::to_string(i))});
      sq.attrs["axes"] = graph::ints_attribute({axis});
      out_items.push_back(sq.outputs[0]);
      nodes.push_back(sq);
    }
    seqs_[n.outputs[0]] = out_items;
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) work.push_front(*it);
  }
}

}  // namespace kiln
