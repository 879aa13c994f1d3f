// Channel-blocked layout propagation (NCHW16c, as oneDNN's and ONNX Runtime's NCHWc
// transformers do): float convolutions write their output as [N, C/16, H*W, 16], and the ops
// that follow them — elementwise chains, batch normalization, residual adds, pools, the next
// convolutions — read and write that layout too, so a chain of them converts from the plain
// layout once, at its end, instead of around every op (ops/blocked.cpp has the operators). It lives with the operators because it
// creates them and needs their window geometry.
//
// The compiler applies it node by node while it types the graph (the decisions need shapes):
// a node either becomes its blocked form, or reads plain values only, in which case each
// blocked value it reads is first converted back (a kiln.FromBlocked node, made once per value).
// Graph outputs and values read inside subgraphs always exist in the plain layout.
#pragma once
#include <map>
#include <optional>
#include <set>

#include "graph/graph.h"

namespace kiln::ops {
using graph::Graph;
using graph::Node;
}

namespace kiln::ops {

class BlockedLayout {
 public:
  // `winograd`: 3x3 convolutions between blocked values that Winograd's F(2x2, 3x3) computes
  // with fewer multiplies become kiln.ConvWinograd (ops/winograd.cpp).
  BlockedLayout(const Graph& g, bool winograd);

  struct Rewrite {
    std::vector<Node> nodes;  // to process instead of the node, in order
    // (blocked value, plain value it stands for): the blocked value has as many readers as
    // the plain one had, at most (its readers are the plain one's, rewritten).
    std::vector<std::pair<std::string, std::string>> blocked_outputs;
  };
  // Rewrite of node `n`, or std::nullopt when it stays as it is (it reads no blocked value).
  // New values are added to `g`: blocked activations untyped, blocked constants with values.
  std::optional<Rewrite> rewrite(const Node& n, Graph& g);

  // Whether `name` is a blocked value this pass made.
  bool is_blocked(const std::string& name) const { return blocked_names_.count(name) > 0; }

 private:
  struct Blocked {
    std::string name;  // the blocked value
    int64_t batch, channels, height, width;
    bool materialized = false;  // the plain value exists too
  };
  std::optional<Rewrite> conv(const Node& n, Graph& g);
  std::optional<Rewrite> elementwise(const Node& n, Graph& g);
  std::optional<Rewrite> batch_norm(const Node& n, Graph& g);
  std::optional<Rewrite> pool(const Node& n, Graph& g);
  std::optional<Rewrite> materialize(const Node& n, Graph& g);
  // A blocked output `plain` of shape batch, channels, h, w: its name, recorded.
  std::string add_output(Rewrite& r, Graph& g, const std::string& plain, int64_t batch, int64_t channels,
                         int64_t h, int64_t w);
  const Blocked* blocked(const std::string& plain) const;
  bool may_block(const std::string& plain) const { return !plain_only_.count(plain); }

  bool winograd_;
  std::set<std::string> plain_only_;      // graph outputs, subgraph reads
  std::map<std::string, Blocked> of_;     // plain value -> its blocked form
  std::set<std::string> blocked_names_;
  int constants_ = 0;
};

}  // namespace kiln::ops
