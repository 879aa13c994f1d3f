// Loop IR -> LLVM IR. Each PrimFunc becomes `void name(void** args)`, args[i] pointing at the
// i-th parameter buffer. No runtime library is needed beyond libc/libm.
#pragma once
#include <memory>
#include <vector>

#include "codegen/target.h"
#include "tir/stmt.h"

namespace llvm {
class LLVMContext;
class Module;
}  // namespace llvm

namespace kiln::codegen {

// Tile products (tir::TileMatmulNode) become AMX instructions where `target` has them for
// their types, plain loops otherwise.
std::unique_ptr<llvm::Module> emit_module(llvm::LLVMContext& ctx, const std::string& module_name,
                                          const std::vector<tir::PrimFunc>& funcs, const Target& target);

}  // namespace kiln::codegen
