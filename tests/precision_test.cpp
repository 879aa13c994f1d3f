// Mixed precision (CompileOptions::precision): in bf16 mode the matrix products must compute
// exactly "operands rounded to bf16, f32 accumulation, f32 result" — checked against that
// reference computed here — while the fp32 model is unchanged.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "kiln/kiln.h"

namespace {

using Floats = std::vector<float>;

float bf16(float v) { return kiln::bf16_to_f32(kiln::f32_to_bf16(v)); }

Floats random_floats(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1, 1);
  Floats v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

// A one-graph ONNX model built node by node.
struct ModelBuilder {
  onnx::ModelProto m;
  onnx::GraphProto* g;
  ModelBuilder() {
    m.set_ir_version(8);
    m.add_opset_import()->set_version(13);
    g = m.mutable_graph();
    g->set_name("g");
  }
  void typed(onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& shape) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (auto d : shape) t->mutable_shape()->add_dim()->set_dim_value(d);
  }
  void input(const std::string& name, const std::vector<int64_t>& shape) { typed(g->add_input(), name, shape); }
  void output(const std::string& name, const std::vector<int64_t>& shape) { typed(g->add_output(), name, shape); }
  void constant(const std::string& name, const std::vector<int64_t>& shape, const Floats& v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : shape) t->add_dims(d);
    for (float f : v) t->add_float_data(f);
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& ins, const std::string& out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    for (auto& i : ins) n->add_input(i);
    n->add_output(out);
    return n;
  }
  std::string write(const std::string& file) {
    auto path = (std::filesystem::temp_directory_path() / file).string();
    std::ofstream f(path, std::ios::binary);
    m.SerializeToOstream(&f);
    return path;
  }
};

kiln::HostTensor tensor(const std::vector<int64_t>& shape, const Floats& v) {
  return kiln::HostTensor(kiln::DType::F32, shape, v.data());
}

// y = MatMul(x, w) (or MatMul(Relu(x), w)) for an input x of `x_shape` (..., K) and constant
// weights w [K x N]; returns the model's path.
std::string weighted_matmul(const std::string& file, const std::vector<int64_t>& x_shape, int N, const Floats& w,
                            bool relu_first = false) {
  int64_t K = x_shape.back();
  std::vector<int64_t> y_shape = x_shape;
  y_shape.back() = N;
  ModelBuilder b;
  b.input("x", x_shape);
  b.constant("w", {K, N}, w);
  if (relu_first) b.node("Relu", {"x"}, "r");
  b.node("MatMul", {relu_first ? "r" : "x", "w"}, "y");
  b.output("y", y_shape);
  return b.write(file);
}

kiln::Model compile(const std::string& path, kiln::Precision p) {
  kiln::CompileOptions o;
  o.precision = p;
  return kiln::Model::compile_file(path, o);
}

// `batches` products A[b] (M x K) times B (K x N: one per batch when `b_batched`, else shared),
// both operands rounded to bf16 and accumulated in double; row-major.
std::vector<double> bf16_product(const Floats& a, const Floats& b, int batches, int M, int K, int N, bool b_batched) {
  std::vector<double> out(size_t(batches) * M * N, 0.0);
  for (int t = 0; t < batches; ++t)
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n)
        for (int k = 0; k < K; ++k)
          out[(size_t(t) * M + m) * N + n] +=
              double(bf16(a[(size_t(t) * M + m) * K + k])) * bf16(b[(b_batched ? size_t(t) * K * N : 0) + k * N + n]);
  return out;
}

// Each element of `got` within f32-accumulation accuracy of `want`.
void expect_close(const kiln::HostTensor& got, const std::vector<double>& want) {
  ASSERT_EQ(got.numel(), int64_t(want.size()));
  for (size_t i = 0; i < want.size(); ++i)
    ASSERT_NEAR(got.as<float>()[i], want[i], 2e-5 * (1 + std::fabs(want[i]))) << "element " << i;
}

// Checks `got` against `want` to f32-accumulation accuracy, and that `other` (the model in the
// other precision) differs from `want` somewhere by more than that: the rounding is visible.
void expect_matches_and_differs(const kiln::HostTensor& got, const std::vector<double>& want,
                                const kiln::HostTensor& other) {
  ASSERT_EQ(got.numel(), int64_t(want.size()));
  double max_other = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got.as<float>()[i], want[i], 2e-5 * (1 + std::fabs(want[i]))) << "element " << i;
    max_other = std::max(max_other, std::fabs(other.as<float>()[i] - want[i]));
  }
  EXPECT_GT(max_other, 1e-4) << "the two precisions gave the same results";
}

// y = MatMul(Relu(x), W): an activation rounded by a kernel, a weight rounded at compile time.
TEST(Precision, MatMulRoundsBothOperandsAndAccumulatesInF32) {
  const int M = 7, K = 40, N = 24;
  std::mt19937 rng(3);
  Floats W = random_floats(K * N, rng), X = random_floats(M * K, rng);
  std::string path = weighted_matmul("kiln_precision_matmul.onnx", {M, K}, N, W, true);
  auto run = [&](kiln::Precision p) { return compile(path, p).run({tensor({M, K}, X)})[0]; };
  kiln::HostTensor y16 = run(kiln::Precision::BF16), y32 = run(kiln::Precision::FP32);
  std::vector<double> want16(M * N, 0.0), want32(M * N, 0.0);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n)
      for (int k = 0; k < K; ++k) {
        float r = std::max(X[m * K + k], 0.0f);
        want16[m * N + n] += double(bf16(r)) * bf16(W[k * N + n]);
        want32[m * N + n] += double(r) * W[k * N + n];
      }
  expect_matches_and_differs(y16, want16, y32);
  expect_matches_and_differs(y32, want32, y16);
}

// Both operands are graph inputs (an attention product): both rounded on the fly.
TEST(Precision, ProductOfTwoInputsRoundsBoth) {
  const int M = 9, K = 33, N = 17;
  std::mt19937 rng(5);
  Floats A = random_floats(M * K, rng), B = random_floats(K * N, rng);
  ModelBuilder b;
  b.input("a", {M, K});
  b.input("b", {K, N});
  b.node("MatMul", {"a", "b"}, "y");
  b.output("y", {M, N});
  std::string path = b.write("kiln_precision_inputs.onnx");
  auto run = [&](kiln::Precision p) { return compile(path, p).run({tensor({M, K}, A), tensor({K, N}, B)})[0]; };
  kiln::HostTensor y16 = run(kiln::Precision::BF16), y32 = run(kiln::Precision::FP32);
  expect_matches_and_differs(y16, bf16_product(A, B, 1, M, K, N, false), y32);
}

// Conv with bias: x and w rounded, the bias added in f32.
TEST(Precision, ConvKeepsItsBiasInF32) {
  const int C = 3, H = 6, OC = 16;
  std::mt19937 rng(9);
  Floats W = random_floats(OC * C * 9, rng), Bias = random_floats(OC, rng), X = random_floats(C * H * H, rng);
  for (auto& v : Bias) v += 1.0f / 1024;  // not representable in bf16 near 1
  ModelBuilder b;
  b.input("x", {1, C, H, H});
  b.constant("w", {OC, C, 3, 3}, W);
  b.constant("bias", {OC}, Bias);
  auto* conv = b.node("Conv", {"x", "w", "bias"}, "y");
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  b.output("y", {1, OC, H, H});
  std::string path = b.write("kiln_precision_conv.onnx");
  auto run = [&](kiln::Precision p) { return compile(path, p).run({tensor({1, C, H, H}, X)})[0]; };
  kiln::HostTensor y16 = run(kiln::Precision::BF16), y32 = run(kiln::Precision::FP32);
  std::vector<double> want(OC * H * H);
  for (int oc = 0; oc < OC; ++oc)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < H; ++x) {
        double s = Bias[oc];
        for (int c = 0; c < C; ++c)
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              int iy = y + ky - 1, ix = x + kx - 1;
              if (iy < 0 || iy >= H || ix < 0 || ix >= H) continue;
              s += double(bf16(W[((oc * C + c) * 3 + ky) * 3 + kx])) * bf16(X[(c * H + iy) * H + ix]);
            }
        want[(oc * H + y) * H + x] = s;
      }
  expect_matches_and_differs(y16, want, y32);
}


// The AMX path scheduled on any CPU (CompileOptions::emulate_amx): bf16 operands stored as
// bf16, B packed in the VNNI layout at compile time, tile products (run here as loops when the
// CPU has no AMX) and the epilogue after them. Checked against operands rounded to bf16.
struct TileRun {
  kiln::HostTensor out;
  std::string tir;  // --dump-ir tir
};

TileRun run_on_tiles(const std::string& path, const std::vector<kiln::HostTensor>& inputs, int threads = 1) {
  kiln::CompileOptions o;
  o.threads = threads;
  o.precision = kiln::Precision::BF16;
  o.emulate_amx = true;
  o.dump_ir = "tir";
  TileRun r;
  o.log = [&](const std::string& s) { r.tir += s + "\n"; };
  r.out = kiln::Model::compile_file(path, o).run(inputs)[0];
  return r;
}

TEST(Precision, BatchedMatMulOnTilesMatchesRoundedOperands) {
  const int B = 2, M = 35, K = 64, N = 40;  // 32 + 3 rows, 32 + 8 columns, two k steps
  std::mt19937 rng(21);
  Floats W = random_floats(K * N, rng), X = random_floats(B * M * K, rng);
  TileRun r = run_on_tiles(weighted_matmul("kiln_precision_tiles.onnx", {B, M, K}, N, W), {tensor({B, M, K}, X)});
  EXPECT_NE(r.tir.find("tile_matmul 32x32x64"), std::string::npos) << r.tir;
  EXPECT_NE(r.tir.find("tile_matmul 3x8x64"), std::string::npos) << r.tir;
  expect_close(r.out, bf16_product(X, W, B, M, K, N, false));
}

TEST(Precision, GemmOnTilesAppliesBiasAndActivationAfter) {
  const int M = 5, K = 32, N = 40;
  std::mt19937 rng(23);
  Floats W = random_floats(N * K, rng), C = random_floats(N, rng), X = random_floats(M * K, rng);
  ModelBuilder b;
  b.input("x", {M, K});
  b.constant("w", {N, K}, W);
  b.constant("c", {N}, C);
  auto* gemm = b.node("Gemm", {"x", "w", "c"}, "g");
  auto* trans = gemm->add_attribute();
  trans->set_name("transB");
  trans->set_type(onnx::AttributeProto::INT);
  trans->set_i(1);
  b.node("Relu", {"g"}, "y");
  b.output("y", {M, N});
  TileRun r = run_on_tiles(b.write("kiln_precision_gemm_tiles.onnx"), {tensor({M, K}, X)});
  EXPECT_NE(r.tir.find("tile_matmul"), std::string::npos) << r.tir;
  Floats w_kn(K * N);  // W is [N, K] (transB)
  for (int k = 0; k < K; ++k)
    for (int n = 0; n < N; ++n) w_kn[k * N + n] = W[n * K + k];
  std::vector<double> want = bf16_product(X, w_kn, 1, M, K, N, false);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) want[m * N + n] = std::max(want[m * N + n] + C[n], 0.0);
  expect_close(r.out, want);
}


// A model compiled here for a Sapphire Rapids machine: the emitted assembly multiplies on AMX
// tiles, while the model compiled alongside still runs here (tile products as loops).
TEST(Precision, EmitsAmxAssemblyForSapphireRapids) {
  const int M = 16, K = 64, N = 32;
  std::mt19937 rng(29);
  Floats W = random_floats(K * N, rng), X = random_floats(M * K, rng);
  std::string path = weighted_matmul("kiln_precision_spr.onnx", {M, K}, N, W);
  kiln::CompileOptions o;
  o.precision = kiln::Precision::BF16;
  o.emit_path = (std::filesystem::temp_directory_path() / "kiln_precision_spr.s").string();
  o.emit_target = "sapphirerapids";
  kiln::HostTensor y = kiln::Model::compile_file(path, o).run({tensor({M, K}, X)})[0];
  std::ifstream f(o.emit_path);
  std::string assembly((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  for (const char* insn : {"ldtilecfg", "tileloadd", "tdpbf16ps", "tilestored"})
    EXPECT_NE(assembly.find(insn), std::string::npos) << insn;
  expect_close(y, bf16_product(X, W, 1, M, K, N, false));
  o.emit_target = "arm";
  EXPECT_THROW(kiln::Model::compile_file(path, o), kiln::Error);
}


// Attention's products multiply two activations: B is packed into the VNNI layout on every
// run, per batch and head, on two threads (each head's packing its own).
TEST(Precision, ActivationProductsOnTilesPackBEveryRun) {
  const int H = 3, M = 20, K = 32, N = 40;
  std::mt19937 rng(31);
  Floats A = random_floats(H * M * K, rng), Bv = random_floats(H * K * N, rng);
  ModelBuilder b;
  b.input("a", {1, H, M, K});
  b.input("b", {1, H, K, N});
  b.node("MatMul", {"a", "b"}, "y");
  b.output("y", {1, H, M, N});
  std::string path = b.write("kiln_precision_attention_tiles.onnx");
  TileRun r = run_on_tiles(path, {tensor({1, H, M, K}, A), tensor({1, H, K, N}, Bv)}, 2);
  EXPECT_NE(r.tir.find("parallel"), std::string::npos) << r.tir;
  EXPECT_NE(r.tir.find("tile_matmul"), std::string::npos) << r.tir;
  expect_close(r.out, bf16_product(A, Bv, H, M, K, N, true));
}

}  // namespace
