// Producer-consumer fusion of a kernel's top-level loop nests, with storage folding (what
// Halide's compute_at / store_at give a stage): when a scratch buffer is filled by one nest
// and read by the nests after it, and every one of them works on one slice per iteration of
// its outermost loop (the same channel c of every buffer they write), their outer loops merge
// into one and the buffer shrinks to one slice, allocated inside the merged loop. A padded
// copy of a depthwise convolution's input is then one channel (a few KiB, in L1) made just
// before the channel's outputs read it, instead of a whole tensor written to memory and read
// back. A scratch buffer filled from `constants` alone is left whole: the compiler fills
// it once at compile time (hoist_constant_fills), not per slice on every run.
#pragma once
#include "tir/lower.h"
#include "tir/stmt.h"

namespace kiln::tir {

Stmt fuse_slice_nests(const Stmt& body, const BufferSet& constants);

}  // namespace kiln::tir
