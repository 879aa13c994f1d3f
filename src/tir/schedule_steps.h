// Schedules as data: a printable, parsable, replayable list of loop transformations applied to
// a kernel's loop nests, each checked before it is applied. The default schedule emits its
// elementwise decisions as such steps; users (and later an auto-tuner) replay their own with
// `kiln run --schedule FILE`. Loops are named by their variables, as `--dump-ir tir` prints.
//
//   split(x, 8)        x -> x_o * 8 + x_i, with a tail loop x_t when 8 does not divide x
//   reorder(a, b, c)   permute the loops of a perfect nest into this order (outermost first)
//   fuse(a, b)         b directly inside a -> one loop a_b over both
//   vectorize(x)       x becomes SIMD lanes (innermost loop, independent iterations)
//   unroll(x)          x is emitted once per iteration (constant extent up to 64)
//   parallel(x)        x runs on the thread pool (independent iterations, none nested)
#pragma once
#include <string>
#include <vector>

#include "tir/stmt.h"

namespace kiln::tir {

struct ScheduleStep {
  enum class Kind { Split, Reorder, Fuse, Vectorize, Unroll, Parallel };
  Kind kind;
  std::vector<std::string> loops;
  int64_t factor = 0;  // split only
};

std::string to_string(const ScheduleStep& step);
std::string to_string(const std::vector<ScheduleStep>& steps);  // "split(x, 8); vectorize(x_i)"

// Parses one step ("split(x, 8)") or a list separated by ';' or newlines; throws kiln::Error
// naming the text that is not a step.
std::vector<ScheduleStep> parse_schedule(const std::string& text);

// Applies the steps in order; throws kiln::Error naming the step, the loop and the reason
// when a step does not apply (no such loop, not a perfect nest, a dependence between
// iterations, a non-constant extent...).
Stmt apply_schedule(const Stmt& body, const std::vector<ScheduleStep>& steps);

// The default for elementwise nests: the innermost loop of every nest that writes one
// element per iteration is split by `lanes` (the target's lanes of 32 bits; twice that for
// long dependence chains, up to 4 times for loops that move only bytes) and its inner part
// vectorized. Returns the steps it chose (also applied to `*body`).
std::vector<ScheduleStep> vectorize_inner_loops(Stmt* body, int64_t lanes);

}  // namespace kiln::tir
