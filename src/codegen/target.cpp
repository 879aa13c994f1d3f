#include "codegen/target.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/TargetParser/Host.h>

#include <sstream>

namespace kiln::codegen {

const Target& Target::host() {
  static const Target t = [] {
    Target h;
    h.triple = llvm::sys::getProcessTriple();
    // Generic x86-64 scheduling model plus the exact feature set read from CPUID.
    h.cpu = "x86-64";
    llvm::StringMap<bool> feats = llvm::sys::getHostCPUFeatures();
    std::string fs;
    for (auto& kv : feats) {
      fs += (fs.empty() ? "" : ",");
      fs += (kv.second ? "+" : "-");
      fs += kv.first().str();
    }
    h.features = fs;
    auto on = [&](const char* f) { auto it = feats.find(f); return it != feats.end() && it->second; };
    h.has_avx512 = on("avx512f");
    h.has_amx_bf16 = on("amx-bf16") && on("amx-tile");
    h.has_amx_int8 = on("amx-int8") && on("amx-tile");
    h.vector_bits = h.has_avx512 ? 512 : on("avx2") ? 256 : 128;
    return h;
  }();
  return t;
}

std::string Target::describe() const {
  std::ostringstream os;
  os << triple << ", " << vector_bits << "-bit vectors" << (has_avx512 ? ", avx512" : "")
     << (has_amx_bf16 ? ", amx-bf16" : "") << (has_amx_int8 ? ", amx-int8" : "");
  return os.str();
}

}  // namespace kiln::codegen
