#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_matmul(Registry& r) {}

}  // namespace kiln::ops
