// Tensor expressions: the language operator definitions are written in (as TVM's TE).
// A Tensor is either a placeholder (a kernel input) or the result of compute(): a shape and a
// function from output indices to a scalar expression over other tensors' elements.
// Lowering (tir/lower.h) turns a set of output Tensors into a loop-nest PrimFunc.
#pragma once
#include <functional>

#include "tir/stmt.h"

namespace kiln::tir {

struct ComputeOpNode;

class Tensor {
 public:
  Tensor() = default;
  Tensor(Buffer b, std::shared_ptr<const ComputeOpNode> op) : buf_(std::move(b)), op_(std::move(op)) {}

  bool defined() const { return buf_ != nullptr; }
  const Buffer& buffer() const { return buf_; }
  const Shape& shape() const { return buf_->shape; }
  int64_t dim(int i) const { return buf_->shape.at(i < 0 ? i + ndim() : i); }
  int ndim() const { return int(buf_->shape.size()); }
  DType dtype() const { return buf_->dtype; }
  const std::string& name() const { return buf_->name; }
  const std::shared_ptr<const ComputeOpNode>& op() const { return op_; }  // null: placeholder

  // Element access inside a compute body.
  Expr operator()(std::vector<Expr> indices) const;
  Expr operator()(const std::vector<Var>& indices) const {
    return (*this)(std::vector<Expr>(indices.begin(), indices.end()));
  }
  template <typename... I> Expr operator()(I... i) const { return (*this)(std::vector<Expr>{Expr(i)...}); }

 private:
  Buffer buf_;
  std::shared_ptr<const ComputeOpNode> op_;
};

struct ComputeOpNode {
  std::vector<Var> axes;       // one per output dimension
  Expr body;                   // may be a Reduce at the top
  std::vector<Tensor> inputs;  // tensors read by body, in first-use order
  bool inline_ok = true;       // may be inlined into consumers when it is not a reduction
};

using FCompute = std::function<Expr(const std::vector<Var>&)>;

// `max_abs`: a bound on |element| of an integer constant (BufferNode::max_abs), -1 when unknown.
Tensor placeholder(Shape shape, DType dtype, std::string name, int64_t max_abs = -1);
Tensor compute(Shape shape, const FCompute& f, std::string name);
// A stage computed into its own buffer and never inlined into its consumers: for values that
// consumers read many times and that are cheaper to store once (e.g. a padded copy of a
// convolution's input, which turns every guarded read into a plain one).
Tensor compute_materialized(Shape shape, const FCompute& f, std::string name);
IterVar reduce_axis(int64_t extent, std::string name);

// Convenience reductions over reduce axes.
Expr sum(Expr body, std::vector<IterVar> axes);
Expr reduce_max(Expr body, std::vector<IterVar> axes);
Expr reduce_min(Expr body, std::vector<IterVar> axes);
Expr reduce_prod(Expr body, std::vector<IterVar> axes);

}  // namespace kiln::tir
