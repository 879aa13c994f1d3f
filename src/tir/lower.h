// Lowering: tensor expressions -> one loop-nest PrimFunc.
#pragma once
#include "tir/compute.h"
#include "tir/reduction_schedule.h"

namespace kiln::tir {

// Builds the kernel computing `outputs` from `inputs`. Parameters are inputs then outputs.
// Non-reduction intermediate stages are inlined into their consumers; reductions and stages
// marked !inline_ok get scratch buffers. Output stages store straight into output params.
// `constants`: the inputs whose values are known at compile time (schedules may repack them).
PrimFunc lower(const std::string& name, const std::vector<Tensor>& inputs,
               const std::vector<Tensor>& outputs, const VectorTarget& target = {},
               const BufferSet& constants = {});

}  // namespace kiln::tir
