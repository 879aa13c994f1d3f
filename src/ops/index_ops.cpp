#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_index_ops(Registry& r) {}

}  // namespace kiln::ops
