// ONNX -> kiln graph IR, through Debian's ONNX library (protobuf classes, checker, shape
// inference). Every error is a kiln::Error naming the file and, where it applies, the node.
#pragma once
#include <map>
#include <string>

#include "graph/graph.h"

namespace kiln::onnx_import {

struct ImportOptions {
  // Shapes for graph inputs, overriding the file's (symbolic dims otherwise default to 1).
  std::map<std::string, Shape> shapes;
  // Refuse tensors above this many bytes (guards against absurd declared dimensions).
  int64_t max_tensor_bytes = int64_t(16) << 30;
};

graph::Graph import_file(const std::string& path, const ImportOptions& opts = {});
// `dir` is where external-data files are looked up ("" refuses external data).
graph::Graph import_bytes(const std::string& bytes, const std::string& source, const std::string& dir,
                          const ImportOptions& opts = {});

// ONNX TensorProto files (the layout of test_data_set_N/input_K.pb).
HostTensor load_tensor_file(const std::string& path);
void save_tensor_file(const std::string& path, const HostTensor& t, const std::string& name = "");

}  // namespace kiln::onnx_import
