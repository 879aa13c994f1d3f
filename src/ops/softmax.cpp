#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

void register_softmax(Registry& r) {}

}  // namespace kiln::ops
