// Sequences (SequenceConstruct, SequenceInsert, SplitToSequence, ...) inside a graph with static
// shapes are lists of tensors known at compile time. This lowering keeps each sequence as a
// list of value names and rewrites the ops that produce tensors into ordinary nodes
// (Identity, Split, Squeeze, Unsqueeze, Concat), so no sequence exists at run time.
#pragma once
#include <deque>
#include <functional>

#include "graph/graph.h"

namespace kiln {

class SequenceLowering {
 public:
  // Compile-time value of a tensor, or nullptr.
  using ValueOf = std::function<const HostTensor*(const std::string&)>;

  static bool is_sequence_op(const std::string& op);
  bool is_sequence(const std::string& value) const { return seqs_.count(value) > 0; }
  // Handles sequence op `n`: records the list it produces, or pushes replacement nodes to the
  // front of `work`. Throws kiln::Error when positions are not known at compile time.
  void lower(const graph::Node& n, graph::Graph& g, std::deque<graph::Node>& work, const ValueOf& value_of);

 private:
  std::map<std::string, std::vector<std::string>> seqs_;
  const std::vector<std::string>& items(const graph::Graph& g, const graph::Node& n, int input) const;
};

}  // namespace kiln
