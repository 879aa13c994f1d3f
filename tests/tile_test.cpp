// Tile products (tir/tile.h): the VNNI-packed matmul nest computes its definition (run here
// through the plain-loop lowering, or through AMX on a machine that has it), and for an AMX
// target the generated assembly is tile instructions. This machine's CPU need not have AMX.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "codegen/jit.h"
#include "codegen/target.h"
#include "kiln/tensor.h"
#include "tir/tile.h"

namespace {

using namespace kiln;
using namespace kiln::tir;

// A kernel C[m x n] (+)= A[m x k] * B with B given row-major and packed here.
struct TileCase {
  int64_t m, n, k;
  DType a_type, b_type;
  bool accumulate;
  int64_t a_bound = -1, b_bound = -1;  // BufferNode::max_abs of A and B
  bool panels = false;                 // B packed panel-major (vnni_panel_index)

  PrimFunc func() const {
    Buffer c = make_buffer("C", tile_accumulator(a_type), {m * n});
    Buffer a = make_buffer("A", a_type, {m * k}, a_bound);
    Buffer b = make_buffer("B", b_type, {panels ? vnni_panel_elements(k, n) : k * vnni_columns(n)}, b_bound);
    return PrimFunc{"tile_kernel", {c, a, b}, tiled_matmul(c, a, b, m, n, k, accumulate, make_int(0), make_int(0), make_int(0), 0, panels)};
  }
};

// B [k x n] row-major -> the VNNI packing tiled_matmul reads (rows of vnni_columns(n)), or
// with `panels` the panel-major one: [n / 32][k / group][32][group].
template <typename T>
std::vector<T> pack_vnni(const std::vector<T>& b, int64_t k, int64_t n, int64_t group, bool panels = false) {
  int64_t width = vnni_columns(n);
  std::vector<T> out(panels ? vnni_panel_elements(k, n) : k * width, T(0x55));  // padding holds junk: it must not matter
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t j = 0; j < n; ++j) {
      int64_t at = panels ? (j / kPanelColumns) * k * kPanelColumns + (kk / group) * kPanelColumns * group +
                                (j % kPanelColumns) * group + kk % group
                          : (kk / group) * width * group + j * group + kk % group;
      out[at] = b[kk * n + j];
    }
  return out;
}

void run(const PrimFunc& f, void* c, void* a, void* b) {
  auto lib = codegen::JitLibrary::compile({f});
  void* args[] = {c, a, b};
  lib->lookup(f.name)(args);
}

TEST(Tile, Bf16ProductMatchesItsDefinition) {
  for (bool accumulate : {false, true}) {
    TileCase tc{40, 40, 96, DType::BF16, DType::BF16, accumulate};  // 32 + 8 rows and columns, 3 k steps
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(-1, 1);
    std::vector<uint16_t> a(tc.m * tc.k), b(tc.k * tc.n);
    for (auto& v : a) v = f32_to_bf16(u(rng));
    for (auto& v : b) v = f32_to_bf16(u(rng));
    std::vector<float> c(tc.m * tc.n);
    for (auto& v : c) v = u(rng);
    std::vector<float> c0 = c;
    std::vector<uint16_t> packed = pack_vnni(b, tc.k, tc.n, vnni_group(DType::BF16));
    run(tc.func(), c.data(), a.data(), packed.data());
    for (int64_t i = 0; i < tc.m; ++i)
      for (int64_t j = 0; j < tc.n; ++j) {
        double want = accumulate ? c0[i * tc.n + j] : 0.0;
        for (int64_t kk = 0; kk < tc.k; ++kk) want += double(bf16_to_f32(a[i * tc.k + kk])) * bf16_to_f32(b[kk * tc.n + j]);
        ASSERT_NEAR(c[i * tc.n + j], want, 1e-4 * (1 + std::fabs(want))) << i << "," << j << " accumulate=" << accumulate;
      }
  }
}

TEST(Tile, Int8ProductsAreExact) {
  auto value = [](DType t, uint8_t byte) { return t == DType::U8 ? int64_t(byte) : int64_t(int8_t(byte)); };
  for (bool panels : {false, true})
  for (DType a_type : {DType::U8, DType::I8})
    for (DType b_type : {DType::I8, DType::U8}) {
      // 21 columns: a partial 8-column group; 45 in panels: a full panel and a partial one.
      TileCase tc{20, panels ? 45 : 21, 128, a_type, b_type, false};
      tc.panels = panels;
      std::mt19937 rng(5);
      std::uniform_int_distribution<int> byte(0, 255);
      std::vector<uint8_t> a(tc.m * tc.k), b(tc.k * tc.n);
      for (auto& v : a) v = uint8_t(byte(rng));
      for (auto& v : b) v = uint8_t(byte(rng));
      std::vector<int32_t> c(tc.m * tc.n, -1);
      std::vector<uint8_t> packed = pack_vnni(b, tc.k, tc.n, vnni_group(DType::I8), panels);
      run(tc.func(), c.data(), a.data(), packed.data());
      for (int64_t i = 0; i < tc.m; ++i)
        for (int64_t j = 0; j < tc.n; ++j) {
          int64_t want = 0;
          for (int64_t kk = 0; kk < tc.k; ++kk) want += value(a_type, a[i * tc.k + kk]) * value(b_type, b[kk * tc.n + j]);
          ASSERT_EQ(c[i * tc.n + j], want) << dtype_name(a_type) << " x " << dtype_name(b_type) << " at " << i << "," << j
                                           << (panels ? " (panels)" : "");
        }
    }
}

// B's panels in groups (two 32-column panels per group here: two full groups, a smaller last
// one, then a partial panel of 13 columns), and each 32 x 32 block finished right after its
// product into a separate output (D = C + 7, through a per-block buffer): every output
// exactly once, with the product's exact value. Both on the vector kernels and on AMX.
TEST(Tile, PanelGroupsAndBlockFinishCoverEveryOutputOnce) {
  int64_t m = 40, n = 5 * 32 + 13, k = 64;
  Buffer block = make_buffer("block", DType::I32, {32 * 32});
  Buffer d = make_buffer("D", DType::I32, {m * n});
  Buffer a = make_buffer("A", DType::U8, {m * k});
  Buffer b = make_buffer("B", DType::I8, {vnni_panel_elements(k, n)});
  BlockFinish finish = [&](const Expr& row0, int64_t rows, const Expr& col0, int64_t cols, int band) {
    Var i("fin_i" + std::to_string(band)), j("fin_j" + std::to_string(band));
    Expr at = (row0 + i) * make_int(n) + col0 + j;
    return make_for(i, make_int(0), make_int(rows), ForKind::Serial,
                    make_for(j, make_int(0), make_int(cols), ForKind::Serial,
                             make_store(d, {at}, load(d, {at}) + load(block, {Expr(i) * make_int(32) + j}) + make_int(7, DType::I32))));
  };
  int64_t panel_bytes = k * kPanelColumns;
  Stmt body = tiled_matmul(block, a, b, m, n, k, false, make_int(0), make_int(0), make_int(0), 0, true, 2 * panel_bytes, finish);
  ASSERT_TRUE(body);
  int groups = 0;
  visit(body, [&](const Stmt& s) { groups += s->kind == StmtKind::For && as<ForNode>(s)->var.name() == "tile_panel_group"; });
  EXPECT_EQ(groups, 1) << "one loop over the full groups";
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<uint8_t> av(m * k), bv(k * n);
  for (auto& v : av) v = uint8_t(byte(rng));
  for (auto& v : bv) v = uint8_t(byte(rng));
  std::vector<uint8_t> packed = pack_vnni(bv, k, n, vnni_group(DType::I8), true);
  std::vector<int32_t> out(m * n, 0);  // each output is added to once: a second visit would show
  auto lib = codegen::JitLibrary::compile({PrimFunc{"grouped", {d, a, b}, body}});
  void* args[] = {out.data(), av.data(), packed.data()};
  lib->lookup("grouped")(args);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t want = 7;
      for (int64_t kk = 0; kk < k; ++kk) want += int64_t(av[i * k + kk]) * int64_t(int8_t(bv[kk * n + j]));
      ASSERT_EQ(out[i * n + j], want) << "at " << i << "," << j;
    }
}

std::string assembly_for(const TileCase& tc, const codegen::Target& target);

// With one operand u8 and the other s8 within [-64, 64] (quantize_static's reduce_range
// weights), the AVX2 kernel multiplies the bytes as stored (vpmaddubsw): exact, also at the
// extremes where a pair sum reaches 2 * 255 * 64. A bound of 65 keeps the widening kernel.
TEST(Tile, Int8BytePairsAreExactWhereTheyCannotSaturate) {
  for (bool a_unsigned : {true, false})
    for (int fill : {0, 1}) {  // random bytes, then the extremes
      TileCase tc{13, 45, 64, a_unsigned ? DType::U8 : DType::I8, a_unsigned ? DType::I8 : DType::U8, fill == 1};
      tc.panels = true;
      (a_unsigned ? tc.b_bound : tc.a_bound) = 64;
      std::mt19937 rng(7);
      std::uniform_int_distribution<int> u8(0, 255), s8(-64, 64);
      std::vector<uint8_t> a(tc.m * tc.k), b(tc.k * tc.n);
      // Extremes: 255 against 64, 64 (k0, k1 of each group of 4) and -64, -64 (k2, k3), so each
      // pair sum is +-32640, the most vpmaddubsw's i16 must hold.
      auto small = [&](int64_t kk) { return uint8_t(int8_t(fill ? (kk % 4 < 2 ? 64 : -64) : s8(rng))); };
      auto wide = [&]() { return uint8_t(fill ? 255 : u8(rng)); };
      for (size_t i = 0; i < a.size(); ++i) a[i] = a_unsigned ? wide() : small(int64_t(i) % tc.k);
      for (size_t i = 0; i < b.size(); ++i) b[i] = a_unsigned ? small(int64_t(i) / tc.n) : wide();
      std::vector<int32_t> c(tc.m * tc.n, 3);
      std::vector<uint8_t> packed = pack_vnni(b, tc.k, tc.n, vnni_group(DType::I8), true);
      run(tc.func(), c.data(), a.data(), packed.data());
      auto value = [](DType t, uint8_t byte) { return t == DType::U8 ? int64_t(byte) : int64_t(int8_t(byte)); };
      for (int64_t i = 0; i < tc.m; ++i)
        for (int64_t j = 0; j < tc.n; ++j) {
          int64_t want = tc.accumulate ? 3 : 0;
          for (int64_t kk = 0; kk < tc.k; ++kk) want += value(tc.a_type, a[i * tc.k + kk]) * value(tc.b_type, b[kk * tc.n + j]);
          ASSERT_EQ(c[i * tc.n + j], want) << (a_unsigned ? "u8 x s8" : "s8 x u8") << " fill " << fill << " at " << i << "," << j;
        }
    }
  if (codegen::Target::host().vector_bits < 256 || codegen::Target::host().has_amx_int8)
    GTEST_SKIP() << "the AVX2 8-bit kernel is not this machine's (no AVX2, or AMX)";
  TileCase bounded{8, 16, 64, DType::U8, DType::I8, false, -1, 64}, unbounded{8, 16, 64, DType::U8, DType::I8, false, -1, 65};
  EXPECT_NE(assembly_for(bounded, codegen::Target::host()).find("vpmaddubsw"), std::string::npos);
  EXPECT_EQ(assembly_for(unbounded, codegen::Target::host()).find("vpmaddubsw"), std::string::npos);
}

TEST(Tile, KMustFillTileRows) {
  EXPECT_EQ(TileCase({16, 16, 40, DType::BF16, DType::BF16, false}).func().body, nullptr);
  EXPECT_EQ(TileCase({16, 16, 64, DType::BF16, DType::I8, false}).func().body, nullptr);  // mixed: no instruction
}

std::string assembly_for(const TileCase& tc, const codegen::Target& target) {
  codegen::CodegenOptions o;
  o.target = &target;
  return codegen::emit_string({tc.func()}, codegen::FileKind::Assembly, o);
}

TEST(Tile, AmxTargetGetsTileInstructions) {
  const codegen::Target& spr = codegen::Target::sapphire_rapids();
  std::string bf16 = assembly_for({40, 40, 64, DType::BF16, DType::BF16, true}, spr);
  for (const char* insn : {"ldtilecfg", "tileloadd", "tdpbf16ps", "tilestored", "tilerelease"})
    EXPECT_NE(bf16.find(insn), std::string::npos) << insn << " missing from:\n" << bf16.substr(0, 4000);
  // A 32 x 32 block is 2 x 2 tiles: all eight tile registers (4 C, 2 A, 2 B), none spilled.
  EXPECT_NE(bf16.find("%tmm7"), std::string::npos);
  EXPECT_EQ(bf16.find("tilestored\t%tmm0, -"), std::string::npos) << "a tile spilled to the stack";
  EXPECT_NE(assembly_for({16, 16, 64, DType::U8, DType::I8, false}, spr).find("tdpbusd"), std::string::npos);
  EXPECT_NE(assembly_for({16, 16, 64, DType::I8, DType::U8, false}, spr).find("tdpbsud"), std::string::npos);
  EXPECT_NE(assembly_for({16, 16, 64, DType::U8, DType::U8, false}, spr).find("tdpbuud"), std::string::npos);
  std::string s8 = assembly_for({16, 16, 64, DType::I8, DType::I8, false}, spr);
  EXPECT_NE(s8.find("tdpbssd"), std::string::npos);
  EXPECT_NE(s8.find("tilezero"), std::string::npos);
}

TEST(Tile, OtherTargetsGetLoops) {
  if (codegen::Target::host().has_amx_bf16) GTEST_SKIP() << "this CPU has AMX: the host target is not a fallback";
  std::string host = assembly_for({32, 32, 64, DType::BF16, DType::BF16, true}, codegen::Target::host());
  EXPECT_EQ(host.find("tdpbf16ps"), std::string::npos);
  EXPECT_EQ(host.find("ldtilecfg"), std::string::npos);
}

}  // namespace
