#include "ops/common.h"

namespace kiln::ops {

Shape broadcast_shapes(const OpContext& ctx, const std::vector<Shape>& shapes) {
  size_t rank = 0;
  for (auto& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (auto& s : shapes) {
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[rank - s.size() + i];
      int64_t d = s[i];
      if (d == o || d == 1) continue;
      if (o == 1) { o = d; continue; }
      ctx.error("shapes cannot be broadcast together: ", shape_str(shapes[0]), " and ", shape_str(s));
    }
  }
  return out;
}

Expr broadcast_read(const Tensor& t, const std::vector<Var>& out_idx) {
  size_t off = out_idx.size() - t.ndim();
  std::vector<Expr> idx;
  for (int i = 0; i < t.ndim(); ++i) idx.push_back(t.dim(i) == 1 ? Expr(0) : Expr(out_idx[off + i]));
  return t(idx);
}

Tensor broadcast_compute(const OpContext& ctx, const std::vector<Tensor>& ins,
                         const std::function<Expr(const std::vector<Expr>&)>& f,
                         const std::string& name) {
  std::vector<Shape> shapes;
  for (auto& t : ins) shapes.push_back(t.shape());
  Shape out = broadcast_shapes(ctx, shapes);
  return tir::compute(out, [&](const std::vector<Var>& i) {
    std::vector<Expr> vals;
    for (auto& t : ins) vals.push_back(broadcast_read(t, i));
    return f(vals);
  }, name);
}

void check_float(const OpContext& ctx, const Tensor& t) {
  if (!dtype_is_float(t.dtype())) ctx.error("input '", t.name(), "' must be floating point, got ", dtype_name(t.dtype()));
}

std::vector<Expr> as_exprs(const std::vector<Var>& v) { return std::vector<Expr>(v.begin(), v.end()); }

}  // namespace kiln::ops
