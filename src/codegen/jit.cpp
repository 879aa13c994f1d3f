#include "codegen/jit.h"

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/JITTargetMachineBuilder.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/ExecutionEngine/Orc/ThreadSafeModule.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>

#include <mutex>

#include "codegen/llvm_emit.h"
#include "codegen/scratch.h"
#include "codegen/target.h"
#include "kiln/error.h"

namespace kiln::codegen {

namespace {

void init_llvm() {
  static std::once_flag once;
  std::call_once(once, [] {
    llvm::InitializeNativeTarget();
    llvm::InitializeNativeTargetAsmPrinter();
    llvm::InitializeNativeTargetAsmParser();
  });
}

llvm::orc::JITTargetMachineBuilder target_jtmb(const Target& t, int opt_level) {
  llvm::orc::JITTargetMachineBuilder jtmb{llvm::Triple(t.triple)};
  jtmb.setCPU(t.cpu);
  jtmb.addFeatures(std::vector<std::string>{t.features});
  jtmb.setCodeGenOptLevel(opt_level >= 2 ? llvm::CodeGenOptLevel::Default : llvm::CodeGenOptLevel::Less);
  return jtmb;
}

std::unique_ptr<llvm::TargetMachine> target_tm(const Target& t, int opt_level) {
  auto tm = target_jtmb(t, opt_level).createTargetMachine();
  if (!tm) fail("LLVM: cannot create a target machine: ", llvm::toString(tm.takeError()));
  return std::move(*tm);
}

void optimize(llvm::Module& m, llvm::TargetMachine& tm, const Target& t, int opt_level) {
  for (auto& f : m) {
    if (f.isDeclaration()) continue;
    f.addFnAttr("target-cpu", t.cpu);
    f.addFnAttr("target-features", t.features);
  }
  m.setDataLayout(tm.createDataLayout());
  m.setTargetTriple(t.triple);
  if (opt_level == 0) return;
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cam;
  llvm::ModuleAnalysisManager mam;
  llvm::PassBuilder pb(&tm);
  pb.registerModuleAnalyses(mam);
  pb.registerCGSCCAnalyses(cam);
  pb.registerFunctionAnalyses(fam);
  pb.registerLoopAnalyses(lam);
  pb.crossRegisterProxies(lam, fam, cam, mam);
  auto level = opt_level >= 3 ? llvm::OptimizationLevel::O3 : llvm::OptimizationLevel::O2;
  pb.buildPerModuleDefaultPipeline(level).run(m, mam);
}

}  // namespace

struct JitLibrary::Impl {
  std::unique_ptr<llvm::orc::LLJIT> jit;
};

JitLibrary::~JitLibrary() = default;

std::unique_ptr<JitLibrary> JitLibrary::compile(const std::vector<tir::PrimFunc>& funcs,
                                                const CodegenOptions& opts) {
  init_llvm();
  auto ctx = std::make_unique<llvm::LLVMContext>();
  const Target& host = Target::host();
  if (opts.target && opts.target != &host) fail("the JIT compiles for this machine only (", host.describe(), ")");
  auto mod = emit_module(*ctx, "kiln", funcs, host);
  auto tm = target_tm(host, opts.opt_level);
  optimize(*mod, *tm, host, opts.opt_level);

  auto jit = llvm::orc::LLJITBuilder().setJITTargetMachineBuilder(target_jtmb(host, opts.opt_level)).create();
  if (!jit) fail("LLVM: cannot create the JIT: ", llvm::toString(jit.takeError()));
  auto& dl = (*jit)->getDataLayout();
  auto gen = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(dl.getGlobalPrefix());
  if (!gen) fail("LLVM: cannot search the process for symbols: ", llvm::toString(gen.takeError()));
  (*jit)->getMainJITDylib().addGenerator(std::move(*gen));
  {
    // The scratch allocator every kernel may call (codegen/scratch.h), and the runtime's.
    std::vector<std::pair<std::string, void*>> runtime = {
        {"kiln_scratch_alloc", reinterpret_cast<void*>(&kiln_scratch_alloc)},
        {"kiln_scratch_free", reinterpret_cast<void*>(&kiln_scratch_free)}};
    runtime.insert(runtime.end(), opts.runtime_symbols.begin(), opts.runtime_symbols.end());
    llvm::orc::SymbolMap symbols;
    for (auto& [name, addr] : runtime)
      symbols[(*jit)->mangleAndIntern(name)] = {llvm::orc::ExecutorAddr::fromPtr(addr), llvm::JITSymbolFlags::Exported};
    if (auto err = (*jit)->getMainJITDylib().define(llvm::orc::absoluteSymbols(std::move(symbols))))
      fail("LLVM: cannot define runtime symbols: ", llvm::toString(std::move(err)));
  }
  if (auto err = (*jit)->addIRModule(llvm::orc::ThreadSafeModule(std::move(mod), std::move(ctx))))
    fail("LLVM: cannot add module: ", llvm::toString(std::move(err)));
  auto lib = std::unique_ptr<JitLibrary>(new JitLibrary());
  lib->impl_ = std::make_unique<Impl>();
  lib->impl_->jit = std::move(*jit);
  return lib;
}

KernelFn JitLibrary::lookup(const std::string& name) const {
  auto sym = impl_->jit->lookup(name);
  if (!sym) fail("LLVM: kernel ", name, " not found: ", llvm::toString(sym.takeError()));
  return sym->toPtr<KernelFn>();
}

std::string emit_string(const std::vector<tir::PrimFunc>& funcs, FileKind kind, const CodegenOptions& opts) {
  init_llvm();
  llvm::LLVMContext ctx;
  const Target& t = opts.target ? *opts.target : Target::host();
  auto mod = emit_module(ctx, "kiln", funcs, t);
  auto tm = target_tm(t, opts.opt_level);
  optimize(*mod, *tm, t, opts.opt_level);
  std::string out;
  llvm::raw_string_ostream os(out);
  if (kind == FileKind::LLVMIR) {
    mod->print(os, nullptr);
    return out;
  }
  llvm::SmallVector<char, 0> buf;
  llvm::raw_svector_ostream svos(buf);
  llvm::legacy::PassManager pm;
  auto ft = kind == FileKind::Object ? llvm::CodeGenFileType::ObjectFile : llvm::CodeGenFileType::AssemblyFile;
  if (tm->addPassesToEmitFile(pm, svos, nullptr, ft)) fail("LLVM: target cannot emit this file type");
  pm.run(*mod);
  return std::string(buf.begin(), buf.end());
}

void emit_file(const std::vector<tir::PrimFunc>& funcs, FileKind kind, const std::string& path,
               const CodegenOptions& opts) {
  std::string s = emit_string(funcs, kind, opts);
  std::error_code ec;
  llvm::raw_fd_ostream f(path, ec);
  if (ec) fail(path, ": cannot write: ", ec.message());
  f << s;
}

}  // namespace kiln::codegen
