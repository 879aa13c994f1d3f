// Public helpers over the ONNX importer: model inputs and tensor files.
#include "kiln/kiln.h"
#include "onnx/importer.h"

namespace kiln {

std::vector<TensorInfo> read_model_inputs(const std::string& path, const std::map<std::string, Shape>& shapes) {
  onnx_import::ImportOptions io;
  io.shapes = shapes;
  graph::Graph g = onnx_import::import_file(path, io);
  std::vector<TensorInfo> r;
  for (auto& n : g.inputs) r.push_back({n, g.value(n).type.dtype, g.value(n).type.shape});
  return r;
}

HostTensor load_tensor(const std::string& path) { return onnx_import::load_tensor_file(path); }

void save_tensor(const std::string& path, const HostTensor& t, const std::string& name) {
  onnx_import::save_tensor_file(path, t, name);
}

}  // namespace kiln
