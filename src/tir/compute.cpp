#include "tir/compute.h"

#include "kiln/error.h"

namespace kiln::tir {

namespace {
// Tensors read while a compute body is being built. compute() bodies run synchronously, so a
// per-thread stack records which tensors each body reads without threading it through the DSL.
thread_local std::vector<std::vector<Tensor>*> g_reads;
}  // namespace

Expr Tensor::operator()(std::vector<Expr> indices) const {
  KILN_CHECK(defined(), "access to an undefined tensor");
  KILN_CHECK(int(indices.size()) == ndim(), "tensor ", name(), " of rank ", ndim(), " indexed with ",
             indices.size(), " indices");
  if (!g_reads.empty()) {
    auto& reads = *g_reads.back();
    bool seen = false;
    for (auto& t : reads) seen |= t.buffer() == buf_;
    if (!seen) reads.push_back(*this);
  }
  return load(buf_, std::move(indices));
}

Tensor placeholder(Shape shape, DType dtype, std::string name, int64_t max_abs) {
  return Tensor(make_buffer(std::move(name), dtype, std::move(shape), max_abs), nullptr);
}

Tensor compute(Shape shape, const FCompute& f, std::string name) {
  for (int64_t d : shape) KILN_CHECK(d >= 0, "negative extent in compute ", name);
  auto op = std::make_shared<ComputeOpNode>();
  for (size_t i = 0; i < shape.size(); ++i) op->axes.emplace_back(name + "_i" + std::to_string(i));
  g_reads.push_back(&op->inputs);
  try {
    op->body = f(op->axes);
  } catch (...) {
    g_reads.pop_back();
    throw;
  }
  g_reads.pop_back();
  KILN_CHECK(op->body.defined(), "compute ", name, " returned no expression");
  DType t = op->body.dtype();
  return Tensor(make_buffer(std::move(name), t, std::move(shape)), op);
}

Tensor compute_materialized(Shape shape, const FCompute& f, std::string name) {
  Tensor t = compute(std::move(shape), f, std::move(name));
  auto op = std::make_shared<ComputeOpNode>(*t.op());
  op->inline_ok = false;
  return Tensor(t.buffer(), op);
}

IterVar reduce_axis(int64_t extent, std::string name) { return IterVar{Var(std::move(name)), extent}; }

Expr sum(Expr body, std::vector<IterVar> axes) { return reduce(ReduceOp::Sum, std::move(body), std::move(axes)); }
Expr reduce_max(Expr body, std::vector<IterVar> axes) { return reduce(ReduceOp::Max, std::move(body), std::move(axes)); }
Expr reduce_min(Expr body, std::vector<IterVar> axes) { return reduce(ReduceOp::Min, std::move(body), std::move(axes)); }
Expr reduce_prod(Expr body, std::vector<IterVar> axes) { return reduce(ReduceOp::Prod, std::move(body), std::move(axes)); }

}  // namespace kiln::tir
