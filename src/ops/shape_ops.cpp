#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_shape_ops(Registry& r) {}

}  // namespace kiln::ops
