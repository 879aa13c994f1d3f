#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_pool(Registry& r) {}

}  // namespace kiln::ops
