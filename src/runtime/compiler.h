// Internal entry points of the compiler pipeline (runtime/compile.cpp) for tools like `info`.
#pragma once
#include "graph/graph.h"
#include "kiln/kiln.h"

namespace kiln {

// "Op (node 'a', 'b')" for each operator kiln cannot compile, over subgraphs too.
std::vector<std::string> find_unsupported(const graph::Graph& g);
// Import, canonicalize and type every value (folding constants); no code generation.
graph::Graph analyze(const std::string& path, const CompileOptions& opts);

}  // namespace kiln
