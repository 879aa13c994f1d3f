// The machine kiln generates code for. Features come from CPUID (LLVM's host feature query),
// never from the CPU's marketing name, which VMs often report wrongly.
#pragma once
#include <cstdint>
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
  int64_t l2_bytes = 512 * 1024;  // per core: sizes the blocks that cache blocking keeps in L2

  // This machine, features read from CPUID. AMX counts only when the OS grants the tile
  // state (arch_prctl ARCH_REQ_XCOMP_PERM, asked once here); otherwise kiln falls back to
  // vector code as on a CPU without AMX.
  static const Target& host();
  // An Intel Sapphire Rapids core (AVX-512, AVX512-BF16/VNNI, AMX-BF16/INT8): for generating
  // files for such a machine from any other (tests check its assembly for tile instructions).
  static const Target& sapphire_rapids();
  std::string describe() const;
};

}  // namespace kiln::codegen
