// TensorProto <-> HostTensor.
#pragma once
#include <onnx/onnx_pb.h>

#include "kiln/tensor.h"

namespace kiln::onnx_import {

// `dir` is the model's folder for external data ("" refuses it). `what` names the tensor in errors.
HostTensor from_proto(const onnx::TensorProto& p, const std::string& dir, const std::string& what,
                      int64_t max_bytes);
onnx::TensorProto to_proto(const HostTensor& t, const std::string& name);

}  // namespace kiln::onnx_import
