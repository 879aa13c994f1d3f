// Runtime and code-generation tests: concurrent runs of one compiled model, input checks,
// object/assembly output from the same code path as the JIT.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "codegen/jit.h"
#include "codegen/scratch.h"
#include "kiln/kiln.h"
#include "tir/lower.h"

namespace {

// y = Relu(a + b) * a, for f32[4x8] inputs.
std::string write_model(const std::string& name) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("g");
  for (const char* in : {"a", "b"}) {
    auto* vi = g->add_input();
    vi->set_name(in);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_value(4);
    tt->mutable_shape()->add_dim()->set_dim_param("n");
  }
  auto node = [&](const char* op, std::vector<std::string> ins, const char* out) {
    auto* n = g->add_node();
    n->set_op_type(op);
    for (auto& i : ins) n->add_input(i);
    n->add_output(out);
  };
  node("Add", {"a", "b"}, "s");
  node("Relu", {"s"}, "r");
  node("Mul", {"r", "a"}, "y");
  g->add_output()->set_name("y");
  auto* ot = g->mutable_output(0)->mutable_type()->mutable_tensor_type();
  ot->set_elem_type(onnx::TensorProto::FLOAT);
  ot->mutable_shape()->add_dim()->set_dim_value(4);
  ot->mutable_shape()->add_dim()->set_dim_param("n");
  auto path = (std::filesystem::temp_directory_path() / name).string();
  std::ofstream f(path, std::ios::binary);
  m.SerializeToOstream(&f);
  return path;
}

kiln::HostTensor random_input(std::mt19937& rng) {
  kiln::HostTensor t(kiln::DType::F32, {4, 8});
  std::uniform_real_distribution<float> u(-1, 1);
  for (int i = 0; i < 32; ++i) t.as<float>()[i] = u(rng);
  return t;
}

TEST(Runtime, ConcurrentRunsMatchReference) {
  kiln::CompileOptions opts;
  opts.shapes["a"] = {4, 8};
  opts.shapes["b"] = {4, 8};
  kiln::Model m = kiln::Model::compile_file(write_model("kiln_rt_concurrent.onnx"), opts);
  ASSERT_EQ(m.inputs().size(), 2u);
  EXPECT_EQ(m.inputs()[0].shape, (kiln::Shape{4, 8}));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int it = 0; it < 200; ++it) {
        auto a = random_input(rng), b = random_input(rng);
        auto out = m.run({a, b});
        for (int i = 0; i < 32; ++i) {
          float want = std::max(0.f, a.as<float>()[i] + b.as<float>()[i]) * a.as<float>()[i];
          if (out[0].as<float>()[i] != want) mismatches++;
        }
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// Conv with bias, 16 output channels over 5 x 5 positions: the channel-vector tiles start
// from the bias (a constant), and the last, one-row tile sits alone at the top of the kernel.
// Its accumulator must start afresh on every run (it was once hoisted as a constant fill).
TEST(Runtime, ConvWithBiasGivesTheSameResultEveryRun) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto* x = g->add_input();
  x->set_name("x");
  auto* xt = x->mutable_type()->mutable_tensor_type();
  xt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int d : {1, 2, 5, 5}) xt->mutable_shape()->add_dim()->set_dim_value(d);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1, 1);
  std::vector<float> W(16 * 2 * 3 * 3), B(16);
  for (auto& v : W) v = u(rng);
  for (auto& v : B) v = u(rng);
  auto init = [&](const char* name, std::vector<int64_t> dims, const std::vector<float>& v) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->add_dims(d);
    for (float f : v) t->add_float_data(f);
  };
  init("w", {16, 2, 3, 3}, W);
  init("b", {16}, B);
  auto* n = g->add_node();
  n->set_op_type("Conv");
  for (const char* i : {"x", "w", "b"}) n->add_input(i);
  n->add_output("y");
  auto* pads = n->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  g->add_output()->set_name("y");
  auto* yt = g->mutable_output(0)->mutable_type()->mutable_tensor_type();
  yt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int d : {1, 16, 5, 5}) yt->mutable_shape()->add_dim()->set_dim_value(d);
  auto path = (std::filesystem::temp_directory_path() / "kiln_rt_conv_bias.onnx").string();
  {
    std::ofstream f(path, std::ios::binary);
    m.SerializeToOstream(&f);
  }
  kiln::Model model = kiln::Model::compile_file(path);
  kiln::HostTensor in(kiln::DType::F32, {1, 2, 5, 5});
  for (int i = 0; i < 50; ++i) in.as<float>()[i] = u(rng);
  for (int run = 0; run < 3; ++run) {
    auto out = model.run({in});
    for (int oc = 0; oc < 16; ++oc)
      for (int y = 0; y < 5; ++y)
        for (int xx = 0; xx < 5; ++xx) {
          double want = B[oc];
          for (int c = 0; c < 2; ++c)
            for (int ky = 0; ky < 3; ++ky)
              for (int kx = 0; kx < 3; ++kx) {
                int iy = y + ky - 1, ix = xx + kx - 1;
                if (iy < 0 || iy >= 5 || ix < 0 || ix >= 5) continue;
                want += double(W[((oc * 2 + c) * 3 + ky) * 3 + kx]) * in.as<float>()[(c * 5 + iy) * 5 + ix];
              }
          ASSERT_NEAR(out[0].as<float>()[(oc * 5 + y) * 5 + xx], want, 1e-5) << "run " << run << " at " << oc << "," << y << "," << xx;
        }
  }
}

// y = Relu(a) + Neg(b): the Add joins the kernel of one input's producer and inlines the
// other's, elementwise and of the same shape, so one kernel computes everything. With c of a
// broadcast shape, Neg(c) is stored once instead of being recomputed for every row.
TEST(Runtime, ElementwiseSideInputsAreInlined) {
  auto write = [](const char* name, std::vector<int64_t> other_shape) {
    onnx::ModelProto m;
    m.set_ir_version(8);
    m.add_opset_import()->set_version(13);
    auto* g = m.mutable_graph();
    g->set_name("g");
    auto input = [&](const char* in, std::vector<int64_t> dims, onnx::ValueInfoProto* vi) {
      vi->set_name(in);
      auto* tt = vi->mutable_type()->mutable_tensor_type();
      tt->set_elem_type(onnx::TensorProto::FLOAT);
      for (auto d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
    };
    input("a", {4, 8}, g->add_input());
    input("b", other_shape, g->add_input());
    auto node = [&](const char* op, std::vector<std::string> ins, const char* out) {
      auto* n = g->add_node();
      n->set_op_type(op);
      for (auto& i : ins) n->add_input(i);
      n->add_output(out);
    };
    node("Relu", {"a"}, "r");
    node("Neg", {"b"}, "n");
    node("Add", {"r", "n"}, "y");
    input("y", {4, 8}, g->add_output());
    auto path = (std::filesystem::temp_directory_path() / name).string();
    std::ofstream f(path, std::ios::binary);
    m.SerializeToOstream(&f);
    return path;
  };
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1, 1);
  for (bool broadcast : {false, true}) {
    kiln::Shape bs = broadcast ? kiln::Shape{8} : kiln::Shape{4, 8};
    kiln::Model m = kiln::Model::compile_file(write(broadcast ? "kiln_rt_side_bc.onnx" : "kiln_rt_side.onnx", bs));
    EXPECT_EQ(m.num_kernels(), broadcast ? 2 : 1);
    kiln::HostTensor a(kiln::DType::F32, {4, 8}), b(kiln::DType::F32, bs);
    for (int i = 0; i < 32; ++i) a.as<float>()[i] = u(rng);
    for (int i = 0; i < int(kiln::shape_numel(bs)); ++i) b.as<float>()[i] = u(rng);
    auto out = m.run({a, b});
    for (int i = 0; i < 32; ++i)
      ASSERT_EQ(out[0].as<float>()[i], std::max(0.f, a.as<float>()[i]) - b.as<float>()[broadcast ? i % 8 : i]) << i;
  }
}

TEST(Runtime, RejectsWrongInputs) {
  kiln::CompileOptions opts;
  opts.shapes["a"] = {4, 8};
  opts.shapes["b"] = {4, 8};
  kiln::Model m = kiln::Model::compile_file(write_model("kiln_rt_inputs.onnx"), opts);
  std::mt19937 rng(0);
  auto a = random_input(rng);
  EXPECT_THROW(m.run({a}), kiln::Error);
  kiln::HostTensor wrong_shape(kiln::DType::F32, {4, 7});
  EXPECT_THROW(m.run({a, wrong_shape}), kiln::Error);
  kiln::HostTensor wrong_type(kiln::DType::F64, {4, 8});
  EXPECT_THROW(m.run({a, wrong_type}), kiln::Error);
}

// Kernels' scratch blocks come from a per-thread cache (codegen/scratch.h): a block given back
// is handed out again, nested blocks are distinct, a larger request replaces a free smaller
// block, and every block is 64-byte aligned.
TEST(Scratch, BlocksAreReusedNestedAndAligned) {
  void* a = kiln_scratch_alloc(1000);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  void* b = kiln_scratch_alloc(3000);  // nested in a
  EXPECT_NE(a, b);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b) % 64, 0u);
  kiln_scratch_free(b);
  kiln_scratch_free(a);
  EXPECT_EQ(kiln_scratch_alloc(900), a) << "the smallest free block that fits";
  EXPECT_EQ(kiln_scratch_alloc(3000), b);
  kiln_scratch_free(b);
  void* c = kiln_scratch_alloc(1 << 20);  // larger than any free block: replaces b
  static_cast<char*>(c)[(1 << 20) - 1] = 1;
  kiln_scratch_free(c);
  kiln_scratch_free(a);
  EXPECT_EQ(kiln_scratch_alloc(1 << 20), c);
  kiln_scratch_free(c);
  kiln_scratch_free(nullptr);
}

// The VmFlags of the mapping holding `p` (from /proc/self/smaps), "" when not found.
static std::string vm_flags_of(const void* p) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool inside = false;
  auto addr = reinterpret_cast<uintptr_t>(p);
  while (std::getline(smaps, line)) {
    uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && line.find(':') > line.find(' ')) {
      inside = lo <= addr && addr < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return "";
}

// Tensors of 2 MiB and more (and scratch blocks) sit on 2 MiB boundaries in memory marked for
// transparent huge pages ("hg"): on 4 KiB pages, products striding over large operands missed
// the TLB on nearly every row (GEMM 2048^3: 15% slower).
TEST(TensorMemory, LargeBlocksAreMarkedForHugePages) {
  kiln::HostTensor big(kiln::DType::F32, {1024, 1024});  // 4 MiB
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big.data()) % (2u << 20), 0u);
  std::string flags = vm_flags_of(big.data());
  ASSERT_NE(flags, "") << "no mapping found in /proc/self/smaps";
  // A kernel built without transparent huge pages refuses the advice (and has no such flag).
  bool thp = std::filesystem::exists("/sys/kernel/mm/transparent_hugepage/enabled");
  if (!thp) std::fprintf(stderr, "note: this kernel has no transparent huge pages; the 'hg' flag is not checked\n");
  if (thp) EXPECT_NE(flags.find(" hg"), std::string::npos) << flags;
  void* scratch = kiln_scratch_alloc(3 << 20);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(scratch) % (2u << 20), 0u);
  if (thp) EXPECT_NE(vm_flags_of(scratch).find(" hg"), std::string::npos) << vm_flags_of(scratch);
  kiln_scratch_free(scratch);
  kiln::HostTensor small(kiln::DType::F32, {100});
  EXPECT_EQ(reinterpret_cast<uintptr_t>(small.data()) % 64, 0u);
  kiln::HostTensor copy = big;  // the allocator travels with copies
  EXPECT_TRUE(copy.same_as(big));
  // A freed block is handed out again for the same size (a model's outputs, every run).
  void* a = kiln::allocate_tensor_memory(3 << 20);
  kiln::free_tensor_memory(a, 3 << 20);
  EXPECT_EQ(kiln::allocate_tensor_memory(3 << 20), a);
  kiln::free_tensor_memory(a, 3 << 20);
}

// Tensor memory comes back from the block cache as it was left: HostTensor(dtype, shape) still
// zero-fills it, while the uninitialized form (a model's outputs, which their kernels write in
// full) leaves it, so a run does not clear its outputs before computing them.
TEST(TensorMemory, ZeroFilledUnlessAskedOtherwise) {
  const kiln::Shape shape{512, 512};  // 1 MiB: cached when freed
  void* first = nullptr;
  {
    kiln::HostTensor dirty(kiln::DType::F32, shape, kiln::HostTensor::Uninitialized{});
    std::memset(dirty.data(), 0xAB, dirty.bytes.size());
    first = dirty.data();
  }
  {
    kiln::HostTensor zeroed(kiln::DType::F32, shape);
    ASSERT_EQ(zeroed.data(), first) << "the freed block was not reused; the test checks nothing";
    for (size_t k = 0; k < zeroed.bytes.size(); ++k) ASSERT_EQ(zeroed.bytes[k], 0) << k;
    std::memset(zeroed.data(), 0xCD, zeroed.bytes.size());
  }
  kiln::HostTensor raw(kiln::DType::F32, shape, kiln::HostTensor::Uninitialized{});
  ASSERT_EQ(raw.data(), first);
  EXPECT_EQ(raw.bytes[0], 0xCD);  // not cleared
}

// A model whose kernel needs megabytes of scratch (a Winograd convolution: its padded input,
// transformed tiles and products) and its arena keep their memory from one run to the next:
// malloc and free per run gave it back to the OS and faulted it in again (PP-OCRv4
// detection: 17,000 page faults per run).
TEST(Scratch, RunsDoNotFaultTheirScratchInAgain) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto io = [](onnx::ValueInfoProto* v, const char* name, std::vector<int64_t> dims) {
    v->set_name(name);
    auto* t = v->mutable_type()->mutable_tensor_type();
    t->set_elem_type(onnx::TensorProto::FLOAT);
    for (auto d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
  };
  io(g->add_input(), "x", {1, 96, 80, 80});
  io(g->add_output(), "y", {1, 24, 80, 80});
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : {24, 96, 3, 3}) w->add_dims(d);
  for (int i = 0; i < 24 * 96 * 9; ++i) w->add_float_data(float(i % 7) * 0.01f);
  auto* n = g->add_node();
  n->set_op_type("Conv");
  n->add_input("x");
  n->add_input("w");
  n->add_output("y");
  auto* pads = n->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  auto path = (std::filesystem::temp_directory_path() / "kiln_rt_scratch.onnx").string();
  {
    std::ofstream f(path, std::ios::binary);
    m.SerializeToOstream(&f);
  }
  kiln::Model model = kiln::Model::compile_file(path);
  kiln::HostTensor in(kiln::DType::F32, {1, 96, 80, 80});
  for (int64_t i = 0; i < in.numel(); ++i) in.as<float>()[i] = float(i % 13) * 0.1f;
  const std::vector<kiln::HostTensor> inputs{in};  // one copy: run({in}) would copy 2.5 MB per call
  auto first = model.run(inputs);
  model.run(inputs);
  auto faults = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
  };
  long before = faults();
  for (int run = 0; run < 3; ++run) {
    auto out = model.run(inputs);
    ASSERT_EQ(0, std::memcmp(out[0].data(), first[0].data(), out[0].bytes.size())) << "run " << run;
  }
  // The kernel's scratch and the arena are megabytes (1,600 faults in three runs when they
  // were malloc'd per run), the output tensor that each run allocates 150 pages (faulted in
  // afresh by every run, depending on glibc's state, until freed tensor blocks were kept).
  EXPECT_LT(faults() - before, 50) << "page faults in three runs";
}

TEST(Codegen, ObjectAndAssemblyFromTheSamePath) {
  using namespace kiln::tir;
  Tensor x = placeholder({16}, kiln::DType::F32, "x");
  Tensor y = compute({16}, [&](const std::vector<Var>& i) { return x(i) * 2.0; }, "y");
  PrimFunc f = lower("double_it", {x}, {y});
  std::string obj = kiln::codegen::emit_string({f}, kiln::codegen::FileKind::Object);
  ASSERT_GT(obj.size(), 4u);
  EXPECT_EQ(obj.substr(0, 4), "\x7f" "ELF");
  std::string as = kiln::codegen::emit_string({f}, kiln::codegen::FileKind::Assembly);
  EXPECT_NE(as.find("double_it"), std::string::npos);
  std::string ir = kiln::codegen::emit_string({f}, kiln::codegen::FileKind::LLVMIR);
  EXPECT_NE(ir.find("define void @double_it"), std::string::npos);
}

}  // namespace

#include "runtime/memory_plan.h"

namespace {

TEST(MemoryPlan, DisjointLifetimesShareAndOverlappingOnesDoNot) {
  // a [0,1] and c [2,3] never live together; b [1,2] overlaps both.
  std::vector<kiln::Lifetime> l = {{1000, 0, 1}, {500, 1, 2}, {1000, 2, 3}};
  kiln::MemoryPlan p = kiln::plan_memory(l, 64);
  EXPECT_EQ(p.offsets[0], p.offsets[2]);  // a and c share
  auto overlaps = [&](size_t i, size_t j) {
    size_t ei = p.offsets[i] + 1024, ej = p.offsets[j] + (j == 1 ? 512 : 1024);
    return p.offsets[i] < ej && p.offsets[j] < ei;
  };
  EXPECT_FALSE(overlaps(0, 1));
  EXPECT_FALSE(overlaps(2, 1));
  EXPECT_EQ(p.arena_bytes, 1024u + 512u);
  EXPECT_EQ(p.unshared_bytes, 1024u + 512u + 1024u);
  for (size_t o : p.offsets) EXPECT_EQ(o % 64, 0u);
}

}  // namespace
