#include "codegen/target.h"

#include <llvm/ADT/StringMap.h>
#include <llvm/TargetParser/Host.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace kiln::codegen {

namespace {

// Linux keeps the AMX tile state off until a process asks for it; without it the first tile
// instruction faults. Asked once per process.
bool amx_permitted() {
#if defined(__linux__) && defined(__x86_64__)
  constexpr long kArchReqXcompPerm = 0x1023;  // arch_prctl code (asm/prctl.h)
  constexpr long kXfeatureXtiledata = 18;     // the tile data state component
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

// Per-core L2 size as Linux reports it (cpu0's level-2 cache, e.g. "2048K"), or 0 when unknown.
int64_t l2_cache_bytes() {
  for (int index = 0; index < 8; ++index) {
    std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index) + "/";
    std::ifstream level(dir + "level"), size(dir + "size");
    int lv = 0;
    std::string text;
    if (!(level >> lv) || !(size >> text)) return 0;
    if (lv != 2 || text.empty()) continue;
    int64_t v = std::atoll(text.c_str());
    char unit = text.back();
    return unit == 'K' ? v << 10 : unit == 'M' ? v << 20 : v;
  }
  return 0;
}

}  // namespace

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
    auto on = [&](const char* f) { auto it = feats.find(f); return it != feats.end() && it->second; };
    h.has_avx512 = on("avx512f");
    bool tiles = on("amx-tile") && amx_permitted();
    h.has_amx_bf16 = on("amx-bf16") && tiles;
    h.has_amx_int8 = on("amx-int8") && tiles;
    if (on("amx-tile") && !tiles)  // refused: generate no tile instructions at all
      for (const char* f : {"amx-tile", "amx-bf16", "amx-int8"}) {
        std::string plus = std::string("+") + f;
        for (size_t at; (at = fs.find(plus)) != std::string::npos;) fs[at] = '-';
      }
    h.features = fs;
    h.vector_bits = h.has_avx512 ? 512 : on("avx2") ? 256 : 128;
    if (int64_t l2 = l2_cache_bytes(); l2 > 0) h.l2_bytes = l2;
    return h;
  }();
  return t;
}

const Target& Target::sapphire_rapids() {
  static const Target t = [] {
    Target s;
    s.triple = "x86_64-unknown-linux-gnu";
    s.cpu = "sapphirerapids";
    s.features = "+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512cd,+avx512bf16,+avx512vnni,+avx512fp16,"
                 "+amx-tile,+amx-bf16,+amx-int8,+avx2,+fma,+f16c,+bmi,+bmi2,+popcnt";
    s.has_avx512 = s.has_amx_bf16 = s.has_amx_int8 = true;
    s.vector_bits = 512;
    s.l2_bytes = 2 << 20;
    return s;
  }();
  return t;
}

std::string Target::describe() const {
  std::ostringstream os;
  os << triple << ", " << vector_bits << "-bit vectors" << (has_avx512 ? ", avx512" : "")
     << (has_amx_bf16 ? ", amx-bf16" : "") << (has_amx_int8 ? ", amx-int8" : "") << ", L2 " << l2_bytes / 1024
     << " KiB";
  return os.str();
}

}  // namespace kiln::codegen
