// Must-fail tests: malformed or hostile models and wrong run() inputs must raise kiln::Error
// (never crash, never another exception type) with a message that names the file, node or
// input at fault. The models are built with ONNX's protobuf classes into a per-test temp folder.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kiln/kiln.h"

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::HasSubstr;

namespace {

// ---- building ONNX models ------------------------------------------------------------------

void add_value(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list, const std::string& name,
               onnx::TensorProto::DataType type, const std::vector<int64_t>& dims) {
  onnx::ValueInfoProto* v = list->Add();
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(type);
  for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
}

onnx::NodeProto* add_node(onnx::GraphProto& g, const std::string& op, const std::vector<std::string>& ins,
                          const std::vector<std::string>& outs, const std::string& name) {
  onnx::NodeProto* n = g.add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (auto& i : ins) n->add_input(i);
  for (auto& o : outs) n->add_output(o);
  return n;
}

onnx::TensorProto* add_float_initializer(onnx::GraphProto& g, const std::string& name, const std::vector<int64_t>& dims) {
  onnx::TensorProto* t = g.add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  int64_t n = 1;
  for (int64_t d : dims) t->add_dims(d), n *= d;
  t->set_raw_data(std::string(size_t(n) * sizeof(float), '\0'));
  return t;
}

// A model of the given opset with graph input x: f32[2x3] and output y: f32[2x3]; `body` adds the nodes.
// Opsets up to 17 go through ONNX's checker first; from 18 on only kiln's own checks judge the graph.
onnx::ModelProto make_model(int opset, const std::function<void(onnx::GraphProto&)>& body) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("kiln bad_input_test");
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name("bad_input_test");
  add_value(g.mutable_input(), "x", onnx::TensorProto::FLOAT, {2, 3});
  add_value(g.mutable_output(), "y", onnx::TensorProto::FLOAT, {2, 3});
  body(g);
  return m;
}

onnx::ModelProto relu_model(int opset = 13) {
  return make_model(opset, [](onnx::GraphProto& g) { add_node(g, "Relu", {"x"}, {"y"}, "the_relu"); });
}

// ---- fixture: a temp folder per test -------------------------------------------------------

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("kiln_bad_input_" + std::to_string(getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "model");
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write_file(const std::string& name, const std::string& bytes) {
    fs::path p = dir_ / "model" / name;
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  std::string save(const onnx::ModelProto& m, const std::string& name = "model.onnx") {
    return write_file(name, m.SerializeAsString());
  }

  fs::path dir_;
};

// The message of the kiln::Error that `f` throws; any other exception escapes and fails the test.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const kiln::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a kiln::Error, but nothing was thrown";
  return "";
}

std::string compile_error(const std::string& path) {
  kiln::CompileOptions opts;
  opts.log = [](const std::string&) {};
  return error_of([&] { kiln::Model::compile_file(path, opts); });
}

kiln::HostTensor filled(kiln::DType t, kiln::Shape s) { return kiln::HostTensor(t, std::move(s)); }

// ---- unreadable files -------------------------------------------------------------------

TEST_F(BadInput, MissingFile) {
  std::string path = (dir_ / "model" / "no_such.onnx").string();
  EXPECT_THAT(compile_error(path), HasSubstr(path));
}

TEST_F(BadInput, DirectoryInsteadOfFile) {
  std::string path = (dir_ / "model").string();
  EXPECT_THAT(compile_error(path), HasSubstr(path));
}

TEST_F(BadInput, EmptyFile) {
  std::string path = write_file("empty.onnx", "");
  EXPECT_THAT(compile_error(path), HasSubstr(path));
}

TEST_F(BadInput, TruncatedModel) {
  // An initializer makes the file long enough that the cut lands inside its raw data.
  onnx::ModelProto m = make_model(13, [](onnx::GraphProto& g) {
    add_float_initializer(g, "b", {2, 3});
    add_float_initializer(g, "pad", {1024});
    add_node(g, "Add", {"x", "b"}, {"y"}, "the_add");
  });
  std::string bytes = m.SerializeAsString();
  for (size_t keep : {bytes.size() / 2, bytes.size() - 1, size_t(7)}) {
    SCOPED_TRACE("kept " + std::to_string(keep) + " of " + std::to_string(bytes.size()) + " bytes");
    std::string path = write_file("truncated.onnx", bytes.substr(0, keep));
    EXPECT_THAT(compile_error(path), HasSubstr(path));
  }
}

TEST_F(BadInput, RandomBytes) {
  std::mt19937 rng(42);
  for (int trial = 0; trial < 20; ++trial) {
    std::string bytes(size_t(1 + rng() % 4096), '\0');
    for (char& c : bytes) c = char(rng());
    SCOPED_TRACE("trial " + std::to_string(trial));
    std::string path = write_file("random.onnx", bytes);
    EXPECT_THAT(compile_error(path), HasSubstr(path));
  }
}

TEST_F(BadInput, TextFile) {
  std::string path = write_file("readme.onnx", "this is not an ONNX model\n");
  EXPECT_THAT(compile_error(path), HasSubstr(path));
}

// ---- malformed graphs ----------------------------------------------------------------------

// A cycle, and a node input nobody produces, must be reported with the node at fault, whether
// ONNX's checker (opsets up to 17) or kiln's own topological sort (opset 18 is past the linked
// checker) finds them.
TEST_F(BadInput, Cycle) {
  for (int opset : {13, 18}) {
    SCOPED_TRACE("opset " + std::to_string(opset));
    std::string path = save(make_model(opset, [](onnx::GraphProto& g) {
      add_node(g, "Add", {"x", "z"}, {"y"}, "node_alpha");
      add_node(g, "Relu", {"y"}, {"z"}, "node_beta");
    }));
    EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), AnyOf(HasSubstr("node_alpha"), HasSubstr("node_beta"))));
  }
}

TEST_F(BadInput, MissingProducer) {
  for (int opset : {13, 18}) {
    SCOPED_TRACE("opset " + std::to_string(opset));
    std::string path = save(make_model(opset, [](onnx::GraphProto& g) {
      add_node(g, "Add", {"x", "ghost"}, {"y"}, "uses_ghost");
    }));
    EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), HasSubstr("ghost"), HasSubstr("uses_ghost")));
  }
}

TEST_F(BadInput, GraphOutputNeverProduced) {
  std::string path = save(make_model(18, [](onnx::GraphProto& g) { add_node(g, "Relu", {"x"}, {"other"}, "r"); }));
  EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), HasSubstr("'y'")));
}

TEST_F(BadInput, OutputProducedTwice) {
  std::string path = save(make_model(18, [](onnx::GraphProto& g) {
    add_node(g, "Relu", {"x"}, {"y"}, "one");
    add_node(g, "Neg", {"x"}, {"y"}, "two");
  }));
  EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), HasSubstr("'y'")));
}

TEST_F(BadInput, UnknownOperatorsAreAllListed) {
  for (int opset : {13, 18}) {
    SCOPED_TRACE("opset " + std::to_string(opset));
    onnx::ModelProto m = make_model(opset, [](onnx::GraphProto& g) {
      add_node(g, "NoSuchOp", {"x"}, {"t"}, "mystery_node");
      add_node(g, "AlsoMissing", {"t"}, {"y"}, "custom_node")->set_domain("com.example");
    });
    auto* custom = m.add_opset_import();
    custom->set_domain("com.example");
    custom->set_version(1);
    std::string path = save(m);
    EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), HasSubstr("NoSuchOp"), HasSubstr("mystery_node"),
                                           HasSubstr("AlsoMissing"), HasSubstr("custom_node")));
  }
}

// Opsets before 7 are accepted (pytorch-converted conformance models use opset 6): not an error.
TEST_F(BadInput, OldOpsetStillCompiles) {
  std::string path = save(relu_model(6));
  EXPECT_NO_THROW(kiln::Model::compile_file(path));
}

// ---- tensors: external data and absurd sizes ----------------------------------------------

void make_external(onnx::TensorProto* t, const std::string& location) {
  t->clear_raw_data();
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = t->add_external_data();
  kv->set_key("location");
  kv->set_value(location);
}

TEST_F(BadInput, ExternalDataOutsideModelFolder) {
  // A real file sits at the escaped location, so only the containment check can refuse it.
  std::ofstream(dir_ / "x", std::ios::binary) << std::string(24, '\0');
  for (const std::string& location : std::vector<std::string>{"../x", "sub/../../x", (dir_ / "x").string()}) {
    for (int opset : {13, 18}) {
      SCOPED_TRACE(location + ", opset " + std::to_string(opset));
      std::string path = save(make_model(opset, [&](onnx::GraphProto& g) {
        make_external(add_float_initializer(g, "weights", {2, 3}), location);
        add_node(g, "Add", {"x", "weights"}, {"y"}, "the_add");
      }));
      EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), HasSubstr("weights")));
    }
  }
}

TEST_F(BadInput, ExternalDataFileMissing) {
  std::string path = save(make_model(18, [](onnx::GraphProto& g) {
    make_external(add_float_initializer(g, "weights", {2, 3}), "weights.bin");
    add_node(g, "Add", {"x", "weights"}, {"y"}, "the_add");
  }));
  EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), HasSubstr("weights")));
}

TEST_F(BadInput, HugeDeclaredInputDims) {
  for (int opset : {13, 18}) {
    SCOPED_TRACE("opset " + std::to_string(opset));
    onnx::ModelProto m = relu_model(opset);
    auto* shape = m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->mutable_dim(0)->set_dim_value(1000000000000);
    shape->mutable_dim(1)->set_dim_value(1000000000000);
    std::string path = save(m);
    EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), HasSubstr("'x'")));
  }
}

TEST_F(BadInput, HugeInitializerWithoutData) {
  std::string path = save(make_model(13, [](onnx::GraphProto& g) {
    onnx::TensorProto* t = add_float_initializer(g, "giant", {});
    t->add_dims(1000000000000);
    t->add_dims(1000000000000);
    add_node(g, "Add", {"x", "giant"}, {"y"}, "the_add");
  }));
  EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), HasSubstr("giant")));
}

TEST_F(BadInput, InitializerDataShorterThanShape) {
  std::string path = save(make_model(13, [](onnx::GraphProto& g) {
    add_float_initializer(g, "short", {2, 3})->set_raw_data(std::string(5, '\0'));
    add_node(g, "Add", {"x", "short"}, {"y"}, "the_add");
  }));
  EXPECT_THAT(compile_error(path), AllOf(HasSubstr(path), HasSubstr("short")));
}

// ---- wrong inputs at run() ------------------------------------------------------------------

class BadRunInput : public BadInput {
 protected:
  void SetUp() override {
    BadInput::SetUp();
    kiln::CompileOptions opts;
    opts.log = [](const std::string&) {};
    model_ = std::make_unique<kiln::Model>(kiln::Model::compile_file(save(relu_model()), opts));
  }
  std::string run_error(const std::vector<kiln::HostTensor>& inputs) {
    return error_of([&] { model_->run(inputs); });
  }
  std::unique_ptr<kiln::Model> model_;
};

TEST_F(BadRunInput, CorrectInputRuns) {
  auto out = model_->run({filled(kiln::DType::F32, {2, 3})});
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].shape, (kiln::Shape{2, 3}));
}

TEST_F(BadRunInput, WrongCount) {
  EXPECT_THAT(run_error({}), HasSubstr("1 input"));
  EXPECT_THAT(run_error({filled(kiln::DType::F32, {2, 3}), filled(kiln::DType::F32, {2, 3})}), HasSubstr("1 input"));
}

TEST_F(BadRunInput, WrongDtype) {
  EXPECT_THAT(run_error({filled(kiln::DType::I64, {2, 3})}), HasSubstr("'x'"));
}

TEST_F(BadRunInput, WrongShape) {
  EXPECT_THAT(run_error({filled(kiln::DType::F32, {3, 2})}), HasSubstr("'x'"));
  EXPECT_THAT(run_error({filled(kiln::DType::F32, {6})}), HasSubstr("'x'"));
  EXPECT_THAT(run_error({filled(kiln::DType::F32, {})}), HasSubstr("'x'"));
}

TEST_F(BadRunInput, DataSizeDisagreesWithShape) {
  kiln::HostTensor t = filled(kiln::DType::F32, {2, 3});
  t.bytes.resize(5);
  EXPECT_THAT(run_error({t}), HasSubstr("'x'"));
}

}  // namespace
