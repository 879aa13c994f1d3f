#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_reduce(Registry& r) {}

}  // namespace kiln::ops
