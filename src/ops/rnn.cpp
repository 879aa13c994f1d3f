#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_rnn(Registry& r) {}

}  // namespace kiln::ops
