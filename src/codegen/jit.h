// Native code from loop IR: optimize with LLVM's O2 pipeline for the host target, then either
// load into the process with ORC's LLJIT or write an object / assembly file (same module).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "tir/stmt.h"

namespace kiln::codegen {

using KernelFn = void (*)(void**);

struct Target;

struct CodegenOptions {
  int opt_level = 2;
  // The machine to generate code for; null: this one. Only files (emit_*) may target another
  // machine: the JIT runs what it compiles here.
  const Target* target = nullptr;
  // Runtime functions generated code may call (e.g. kiln_parallel_for), by symbol name.
  std::vector<std::pair<std::string, void*>> runtime_symbols;
};

class JitLibrary {
 public:
  ~JitLibrary();
  // Compiles all functions into one module and loads it. Throws kiln::Error on failure.
  static std::unique_ptr<JitLibrary> compile(const std::vector<tir::PrimFunc>& funcs,
                                             const CodegenOptions& opts = {});
  KernelFn lookup(const std::string& name) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

enum class FileKind { Object, Assembly, LLVMIR };
// Writes the functions as a file for opts.target (ahead-of-time path).
void emit_file(const std::vector<tir::PrimFunc>& funcs, FileKind kind, const std::string& path,
               const CodegenOptions& opts = {});
std::string emit_string(const std::vector<tir::PrimFunc>& funcs, FileKind kind,
                        const CodegenOptions& opts = {});

}  // namespace kiln::codegen
