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

Span Span::from(const Shape& shape, int64_t first, int64_t end) {
  Span s{shape, std::vector<bool>(shape.size(), false)};
  for (int64_t d = first; d < end; ++d) s.spanned[d] = true;
  return s;
}

Shape Span::reduced_shape() const {
  Shape s = shape;
  for (size_t d = 0; d < s.size(); ++d)
    if (spanned[d]) s[d] = 1;
  return s;
}

int64_t Span::count() const {
  int64_t n = 1;
  for (size_t d = 0; d < shape.size(); ++d)
    if (spanned[d]) n *= shape[d];
  return n;
}

std::vector<Expr> Span::group_of(const std::vector<Var>& i) const {
  std::vector<Expr> g = as_exprs(i);
  for (size_t d = 0; d < g.size(); ++d)
    if (spanned[d]) g[d] = Expr(0);
  return g;
}

Expr Span::position(const std::vector<Expr>& idx) const {
  Expr p = Expr(0);
  for (size_t d = 0; d < shape.size(); ++d)
    if (spanned[d]) p = p * Expr(shape[d]) + idx[d];
  return p;
}

Tensor Span::fold(tir::ReduceOp op,
                  const std::function<Expr(const std::vector<Expr>&, const std::vector<Var>&)>& term,
                  const std::string& name) const {
  return tir::compute(reduced_shape(), [&](const std::vector<Var>& g) {
    std::vector<tir::IterVar> rv;
    std::vector<Expr> idx = as_exprs(g);
    for (size_t d = 0; d < shape.size(); ++d) {
      if (!spanned[d]) continue;
      rv.push_back(tir::reduce_axis(shape[d], name + "_r" + std::to_string(d)));
      idx[d] = rv.back().var;
    }
    return tir::reduce(op, term(idx, g), rv);
  }, name);
}

}  // namespace kiln::ops
