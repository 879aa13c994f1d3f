// Data-dependent indexing: Gather / GatherElements / GatherND read at indices held in a tensor;
// ScatterElements / ScatterND (and the old Scatter) write updates at such indices; OneHot.
// Scatters are written as computes over the OUTPUT index: a reduction over the update
// positions finds which updates land on each output element (the last one for plain writes,
// all of them for add/mul/max/min), and a second stage combines that with the data.
#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

using Exprs = std::vector<Expr>;

// Keeps a read index inside [0, extent): select() evaluates both branches, and invalid
// indices in the model must not turn into out-of-bounds reads.
Expr clamp_index(const Expr& e, int64_t extent) {
  return tir::max(Expr(0), tir::min(Expr(extent - 1), e));
}

// An index value read from an indices tensor, as i64, with negative values counting from
// the end of an axis of `extent`, clamped into it.
Expr axis_index(const Expr& raw, int64_t extent) {
  Expr v = tir::cast(DType::I64, raw);
  return clamp_index(tir::select(tir::lt(v, Expr(0)), v + Expr(extent), v), extent);
}

Expr true_expr() { return tir::make_int(1, DType::Bool); }

Tensor gather(OpContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  int64_t axis = ctx.axis(ctx.attr_int("axis", 0), data.ndim());
  Shape shape(data.shape().begin(), data.shape().begin() + axis);
  shape.insert(shape.end(), indices.shape().begin(), indices.shape().end());
  shape.insert(shape.end(), data.shape().begin() + axis + 1, data.shape().end());
  int q = indices.ndim();
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    Exprs at(i.begin() + axis, i.begin() + axis + q);
    Exprs idx(i.begin(), i.begin() + axis);
    idx.push_back(axis_index(indices(at), data.dim(int(axis))));
    idx.insert(idx.end(), i.begin() + axis + q, i.end());
    return data(idx);
  }, ctx.out_name());
}

Tensor gather_elements(OpContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  int64_t axis = ctx.axis(ctx.attr_int("axis", 0), data.ndim());
  if (indices.ndim() != data.ndim()) ctx.error("indices and data differ in rank");
  return tir::compute(indices.shape(), [&](const std::vector<Var>& i) {
    Exprs idx = as_exprs(i);
    idx[axis] = axis_index(indices(i), data.dim(int(axis)));
    return data(idx);
  }, ctx.out_name());
}

Tensor gather_nd(OpContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  int b = int(ctx.attr_int("batch_dims", 0));
  int q = indices.ndim();
  int64_t k = indices.dim(q - 1);
  if (b < 0 || b >= q || b + k > data.ndim()) ctx.error("indices of shape ", shape_str(indices.shape()), " do not fit data of shape ", shape_str(data.shape()));
  Shape shape(indices.shape().begin(), indices.shape().end() - 1);
  shape.insert(shape.end(), data.shape().begin() + b + k, data.shape().end());
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    Exprs at(i.begin(), i.begin() + (q - 1));
    at.push_back(Expr(0));
    Exprs idx(i.begin(), i.begin() + b);
    for (int64_t j = 0; j < k; ++j) {
      at.back() = Expr(j);
      idx.push_back(axis_index(indices(at), data.dim(int(b + j))));
    }
    idx.insert(idx.end(), i.begin() + (q - 1), i.end());
    return data(idx);
  }, ctx.out_name());
}

enum class Combine { None, Add, Mul, Max, Min };

Combine scatter_reduction(const OpContext& ctx) {
  std::string r = ctx.attr_string("reduction", "none");
  if (r == "none") return Combine::None;
  if (r == "add") return Combine::Add;
  if (r == "mul") return Combine::Mul;
  if (r == "max") return Combine::Max;
  if (r == "min") return Combine::Min;
  ctx.error("reduction '", r, "' is not supported");
}

// What a scatter needs to describe for one output element: over which update positions
// (`axes`) to look, whether position `axes` writes to this element (`match`), and the update
// value read there. `where(p)` is the update read for an explicit position (after the search).
struct ScatterSearch {
  std::vector<tir::IterVar> axes;
  Expr match;
  Expr update;
  std::function<Expr(const Exprs& position)> update_at;
};

// The scatter as two stages: a reduction over the update positions, then its combination
// with `data` at each output element.
// `searched` is false when there is a single update position (no search axes).
Tensor scatter(const OpContext& ctx, const Tensor& data, Combine how, bool searched,
               const std::function<ScatterSearch(const std::vector<Var>&)>& search) {
  DType t = data.dtype();
  std::string name = ctx.out_name();
  if (!searched) {
    // A single update position: no search, just a choice per element.
    return tir::compute(data.shape(), [&](const std::vector<Var>& i) {
      ScatterSearch s = search(i);
      Expr d = data(i), u = s.update;
      Expr v = how == Combine::Add ? d + u : how == Combine::Mul ? d * u
             : how == Combine::Max ? tir::max(d, u) : how == Combine::Min ? tir::min(d, u) : u;
      return tir::select(s.match, v, d);
    }, name);
  }
  if (how == Combine::None) {
    // The last matching position wins, as when the updates are applied in order.
    Tensor last = tir::compute(data.shape(), [&](const std::vector<Var>& i) {
      ScatterSearch s = search(i);
      Expr flat = Expr(0);
      for (auto& a : s.axes) flat = flat * Expr(a.extent) + a.var;
      return tir::reduce_max(tir::select(s.match, flat, Expr(-1)), s.axes);
    }, name + "_last");
    return tir::compute(data.shape(), [&](const std::vector<Var>& i) {
      ScatterSearch s = search(i);
      Expr l = last(i);
      Exprs position(s.axes.size());
      Expr rest = tir::max(l, Expr(0));
      for (size_t d = s.axes.size(); d-- > 0;) {
        position[d] = floormod(rest, Expr(s.axes[d].extent));
        rest = floordiv(rest, Expr(s.axes[d].extent));
      }
      return tir::select(tir::ge(l, Expr(0)), s.update_at(position), data(i));
    }, name);
  }
  Tensor combined = tir::compute(data.shape(), [&](const std::vector<Var>& i) {
    ScatterSearch s = search(i);
    switch (how) {
      case Combine::Add: return tir::sum(tir::select(s.match, s.update, tir::make_const(t, 0)), s.axes);
      case Combine::Mul: return tir::reduce_prod(tir::select(s.match, s.update, tir::make_const(t, 1)), s.axes);
      case Combine::Max: return tir::reduce_max(tir::select(s.match, s.update, tir::min_value(t)), s.axes);
      default: return tir::reduce_min(tir::select(s.match, s.update, tir::max_value(t)), s.axes);
    }
  }, name + "_updates");
  return tir::compute(data.shape(), [&](const std::vector<Var>& i) {
    Expr d = data(i), u = combined(i);
    switch (how) {
      case Combine::Add: return d + u;
      case Combine::Mul: return d * u;
      case Combine::Max: return tir::max(d, u);
      default: return tir::min(d, u);
    }
  }, name);
}

Tensor scatter_elements(OpContext& ctx, Combine how) {
  const Tensor& data = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  int r = data.ndim();
  int64_t axis = ctx.axis(ctx.attr_int("axis", 0), r);
  if (indices.ndim() != r || indices.shape() != updates.shape()) ctx.error("indices and updates must have data's rank and the same shape");
  int64_t n = indices.dim(int(axis));
  if (shape_numel(indices.shape()) == 0)  // nothing to write
    return tir::compute(data.shape(), [&](const std::vector<Var>& i) { return data(i); }, ctx.out_name());
  return scatter(ctx, data, how, true, [&](const std::vector<Var>& i) {
    // Position k of the updates writes to output i when k equals i off the axis and
    // indices[k] == i on it; only the axis coordinate of k is searched.
    ScatterSearch s;
    s.axes = {tir::reduce_axis(n, ctx.out_name() + "_k")};
    Expr covered = true_expr();
    Exprs at;
    for (int d = 0; d < r; ++d) {
      if (d == axis) { at.push_back(s.axes[0].var); continue; }
      if (indices.dim(d) < data.dim(d)) covered = covered && tir::lt(i[d], Expr(indices.dim(d)));
      at.push_back(indices.dim(d) < data.dim(d) ? clamp_index(i[d], indices.dim(d)) : Expr(i[d]));
    }
    s.match = covered && tir::eq(axis_index(indices(at), data.dim(int(axis))), i[axis]);
    s.update = updates(at);
    s.update_at = [&updates, at, axis](const Exprs& p) {
      Exprs u = at;
      u[axis] = p[0];
      return updates(u);
    };
    return s;
  });
}

Tensor scatter_nd(OpContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& indices = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  int q = indices.ndim();
  int64_t k = indices.dim(q - 1);
  if (k > data.ndim() || updates.ndim() != q - 1 + data.ndim() - k) ctx.error("indices, updates and data shapes do not fit");
  return scatter(ctx, data, scatter_reduction(ctx), q > 1, [&](const std::vector<Var>& i) {
    // Every index tuple (the leading q-1 axes of indices) is searched; it matches when its
    // k coordinates equal the first k coordinates of i.
    ScatterSearch s;
    Exprs tuple;
    for (int d = 0; d < q - 1; ++d) {
      s.axes.push_back(tir::reduce_axis(indices.dim(d), ctx.out_name() + "_p" + std::to_string(d)));
      tuple.push_back(s.axes.back().var);
    }
    s.match = true_expr();
    for (int64_t j = 0; j < k; ++j) {
      Exprs at = tuple;
      at.push_back(Expr(j));
      s.match = s.match && tir::eq(axis_index(indices(at), data.dim(int(j))), i[j]);
    }
    Exprs tail(i.begin() + k, i.end());
    s.update_at = [&updates, tail](const Exprs& p) {
      Exprs u = p;
      u.insert(u.end(), tail.begin(), tail.end());
      return updates(u);
    };
    s.update = s.update_at(tuple);
    return s;
  });
}

Tensor one_hot(OpContext& ctx) {
  const Tensor& indices = ctx.input(0);
  const Tensor& values = ctx.input(2);
  std::vector<int64_t> depth_v = ctx.required_ints(1, "depth");
  if (depth_v.size() != 1 || depth_v[0] <= 0) ctx.error("depth must be one positive value");
  int64_t depth = depth_v[0];
  int64_t axis = ctx.axis(ctx.attr_int("axis", -1), indices.ndim() + 1);
  Shape shape = indices.shape();
  shape.insert(shape.begin() + axis, depth);
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    Exprs at = as_exprs(i);
    at.erase(at.begin() + axis);
    Expr raw = indices(at);
    // Floating-point indices are truncated, as the reference does.
    Expr v = tir::cast(DType::I64, raw);
    v = tir::select(tir::lt(v, Expr(0)), v + Expr(depth), v);
    return tir::select(tir::eq(v, i[axis]), values(Expr(1)), values(Expr(0)));
  }, ctx.out_name());
}

}  // namespace

void register_index_ops(Registry& r) {
  r.add("Gather", single(gather));
  r.add("GatherElements", single(gather_elements));
  r.add("GatherND", single(gather_nd));
  r.add("ScatterElements", single([](OpContext& ctx) { return scatter_elements(ctx, scatter_reduction(ctx)); }));
  r.add("Scatter", single([](OpContext& ctx) { return scatter_elements(ctx, Combine::None); }));
  r.add("ScatterND", single(scatter_nd));
  r.add("OneHot", single(one_hot));
}

}  // namespace kiln::ops
