// Graph-to-graph passes that need no operator knowledge.
#pragma once
#include "graph/graph.h"

namespace kiln::graph {

// Removes nodes whose outputs reach no graph output, and values nobody uses.
Graph eliminate_dead_code(Graph g);

// Inference-mode simplifications: Identity and Dropout (inference) forward their input;
// the values they produced are renamed to their sources everywhere.
Graph canonicalize(Graph g);

}  // namespace kiln::graph
