// The machine kiln generates code for. Features come from CPUID (LLVM's host feature query),
// never from the CPU's marketing name, which VMs often report wrongly.
#pragma once
#include <string>

namespace kiln::codegen {

struct Target {
  std::string triple;
  std::string cpu;       // LLVM CPU name used for scheduling; generic unless known to be right
  std::string features;  // "+avx512f,+amx-tile,..." as read from the host
  bool has_avx512 = false;
  bool has_amx_bf16 = false;
  bool has_amx_int8 = false;
  int vector_bits = 128;

  static const Target& host();
  std::string describe() const;
};

}  // namespace kiln::codegen
