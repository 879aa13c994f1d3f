// Operators that move elements without arithmetic on them: reshapes, transposes, joins and
// splits, slices, padding, tiling, and generators (ConstantOfShape, Range, EyeLike).
// Shapes are static: every value that decides an output shape comes from ctx.required_ints.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

using Exprs = std::vector<Expr>;

// Keeps a read index inside [0, extent): select() evaluates both branches, so reads in the
// branch that is not taken must still be in bounds.
Expr clamp_index(const Expr& e, int64_t extent) {
  return tir::max(Expr(0), tir::min(Expr(extent - 1), e));
}

// Row-major linear offset of `idx` in `shape`, and its inverse.
Expr linear_index(const Exprs& idx, const Shape& shape) {
  Expr off = 0;
  for (size_t d = 0; d < shape.size(); ++d) off = off * Expr(shape[d]) + idx[d];
  return off;
}
// `linear` is assumed in range, so the outermost index needs no modulo.
Exprs unravel_index(const Expr& linear, const Shape& shape) {
  Exprs idx(shape.size());
  int64_t stride = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    Expr q = stride == 1 ? linear : floordiv(linear, Expr(stride));
    idx[d] = shape[d] == 1 ? Expr(0) : d == 0 ? q : floormod(q, Expr(shape[d]));
    stride *= shape[d];
  }
  return idx;
}

// The same elements, row-major, in a new shape. The two shapes are cut into segments of equal
// element count (dims of extent 1 aside, which index 0): a segment of one dim on each side maps
// one to one, and only segments whose dims regroup ([12, 64] <-> [768]) linearize and split
// again; e.g. [1, 128, 3072] -> [128, 3072] reads x[0, i, j], with no division or modulo that
// would keep the read from vectorizing.
Tensor reshape_to(const OpContext& ctx, const Tensor& x, const Shape& shape, const std::string& name) {
  if (shape_numel(shape) != shape_numel(x.shape()))
    ctx.error("cannot reshape ", shape_str(x.shape()), " to ", shape_str(shape));
  const Shape& in_shape = x.shape();
  bool empty = shape_numel(shape) == 0;
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    if (empty) return x(Exprs(in_shape.size(), Expr(0)));
    Exprs idx(in_shape.size(), Expr(0));
    auto skip_ones = [](const Shape& s, size_t d) {
      while (d < s.size() && s[d] == 1) ++d;
      return d;
    };
    size_t o = skip_ones(shape, 0), n = skip_ones(in_shape, 0);
    while (o < shape.size() && n < in_shape.size()) {
      // One segment: output dims [o, o_end) and input dims [n, n_end) with equal products.
      std::vector<size_t> out_dims{o}, in_dims{n};
      int64_t out_count = shape[o], in_count = in_shape[n];
      size_t o_next = skip_ones(shape, o + 1), n_next = skip_ones(in_shape, n + 1);
      while (out_count != in_count) {
        if (out_count < in_count) {
          out_count *= shape[o_next];
          out_dims.push_back(o_next);
          o_next = skip_ones(shape, o_next + 1);
        } else {
          in_count *= in_shape[n_next];
          in_dims.push_back(n_next);
          n_next = skip_ones(in_shape, n_next + 1);
        }
      }
      Exprs out_idx;
      Shape out_seg, in_seg;
      for (size_t d : out_dims) out_idx.push_back(i[d]), out_seg.push_back(shape[d]);
      for (size_t d : in_dims) in_seg.push_back(in_shape[d]);
      Exprs in_idx = out_dims.size() == 1 && in_dims.size() == 1 ? out_idx
                                                                  : unravel_index(linear_index(out_idx, out_seg), in_seg);
      for (size_t k = 0; k < in_dims.size(); ++k) idx[in_dims[k]] = in_idx[k];
      o = o_next;
      n = n_next;
    }
    return x(idx);
  }, name);
}
Tensor reshape_to(const OpContext& ctx, const Tensor& x, const Shape& shape) {
  return reshape_to(ctx, x, shape, ctx.out_name());
}

// Axes from the attribute (before `input_opset`) or from input `input` (from it on).
std::vector<int64_t> axes_arg(OpContext& ctx, int input_opset, int input, bool* given) {
  if (ctx.opset() < input_opset) {
    *given = ctx.has_attr("axes");
    return ctx.attr_ints("axes");
  }
  *given = ctx.has_input(input);
  return *given ? ctx.required_ints(input, "axes") : std::vector<int64_t>{};
}

Shape normalized_axes(const OpContext& ctx, std::vector<int64_t> axes, int64_t rank) {
  for (auto& a : axes) a = ctx.axis(a, rank);
  std::sort(axes.begin(), axes.end());
  if (std::adjacent_find(axes.begin(), axes.end()) != axes.end()) ctx.error("axes contain duplicates");
  return axes;
}

// An element of `dtype` with the value of element 0 of `t`.
Expr scalar_const(const HostTensor& t, DType dtype) {
  if (dtype_is_float(dtype)) return tir::make_const(dtype, t.get_f64(0));
  return tir::make_int(t.get_i64(0), dtype);
}

// Element 0 of a (rank 0 or single-element) tensor read at run time.
Expr first_element(const Tensor& t) { return t(Exprs(t.ndim(), Expr(0))); }

Tensor reshape(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> spec = ctx.required_ints(1, "shape");
  bool allow_zero = ctx.attr_int("allowzero", 0) != 0;
  Shape shape(spec.size());
  int infer = -1;
  int64_t known = 1;
  for (size_t d = 0; d < spec.size(); ++d) {
    int64_t v = spec[d];
    if (v == 0 && !allow_zero) {
      if (d >= size_t(x.ndim())) ctx.error("shape entry ", d, " is 0 but the input has rank ", x.ndim());
      v = x.dim(int(d));
    }
    if (v == -1) {
      if (infer >= 0) ctx.error("shape has more than one -1");
      infer = int(d);
      continue;
    }
    if (v < 0) ctx.error("invalid shape entry ", v);
    shape[d] = v;
    known *= v;
  }
  if (infer >= 0) {
    if (known == 0 || shape_numel(x.shape()) % known != 0)
      ctx.error("cannot infer the -1 dimension reshaping ", shape_str(x.shape()));
    shape[infer] = shape_numel(x.shape()) / known;
  }
  return reshape_to(ctx, x, shape);
}

Tensor flatten(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t r = x.ndim();
  int64_t a = ctx.attr_int("axis", 1);
  if (a < 0) a += r;
  if (a < 0 || a > r) ctx.error("axis ", ctx.attr_int("axis", 1), " is out of range for rank ", r);
  int64_t outer = 1;
  for (int64_t d = 0; d < a; ++d) outer *= x.dim(int(d));
  return reshape_to(ctx, x, {outer, outer == 0 ? 0 : shape_numel(x.shape()) / std::max<int64_t>(outer, 1)});
}

Tensor squeeze(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  bool given = false;
  auto axes = axes_arg(ctx, 13, 1, &given);
  Shape drop = normalized_axes(ctx, axes, x.ndim());
  Shape shape;
  for (int d = 0; d < x.ndim(); ++d) {
    bool listed = std::binary_search(drop.begin(), drop.end(), d);
    if (listed && x.dim(d) != 1) ctx.error("cannot squeeze axis ", d, " of extent ", x.dim(d));
    if (given ? !listed : x.dim(d) != 1) shape.push_back(x.dim(d));
  }
  return reshape_to(ctx, x, shape);
}

Tensor unsqueeze(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  bool given = false;
  auto axes = axes_arg(ctx, 13, 1, &given);
  if (!given) ctx.error("axes are required");
  int64_t rank = x.ndim() + int64_t(axes.size());
  Shape add = normalized_axes(ctx, axes, rank);
  Shape shape;
  for (int64_t d = 0, k = 0; d < rank; ++d)
    shape.push_back(std::binary_search(add.begin(), add.end(), d) ? 1 : x.dim(int(k++)));
  return reshape_to(ctx, x, shape);
}

Tensor transpose(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> perm(x.ndim());
  for (int d = 0; d < x.ndim(); ++d) perm[d] = x.ndim() - 1 - d;
  perm = ctx.attr_ints("perm", perm);
  if (int(perm.size()) != x.ndim()) ctx.error("perm has ", perm.size(), " entries for rank ", x.ndim());
  Shape shape(perm.size());
  for (size_t d = 0; d < perm.size(); ++d) shape[d] = x.dim(int(perm[d] = ctx.axis(perm[d], x.ndim(), "perm entry")));
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    Exprs idx(perm.size());
    for (size_t d = 0; d < perm.size(); ++d) idx[perm[d]] = i[d];
    return x(idx);
  }, ctx.out_name());
}

Tensor concat(OpContext& ctx) {
  std::vector<Tensor> ins;
  for (int k = 0; k < ctx.num_inputs(); ++k)
    if (ctx.has_input(k)) ins.push_back(ctx.input(k));
  if (ins.empty()) ctx.error("needs at least one input");
  int64_t axis = ctx.axis(ctx.attr_int("axis", 0), ins[0].ndim());
  Shape shape = ins[0].shape();
  shape[axis] = 0;
  for (auto& t : ins) {
    if (t.ndim() != int(shape.size()) || t.dtype() != ins[0].dtype()) ctx.error("inputs differ in rank or type");
    for (int d = 0; d < t.ndim(); ++d)
      if (d != axis && t.dim(d) != shape[d]) ctx.error("input shapes ", shape_str(t.shape()), " and ", shape_str(ins[0].shape()), " do not match");
    shape[axis] += t.dim(int(axis));
  }
  // Empty inputs contribute nothing and cannot be read, even under a select.
  std::erase_if(ins, [&](const Tensor& t) { return t.dim(int(axis)) == 0; });
  if (ins.empty()) ins.push_back(ctx.input(0));
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    // The last input is read when no earlier range matched; earlier ones are selected by range.
    int64_t start = shape[axis] - ins.back().dim(int(axis));
    Exprs idx = as_exprs(i);
    idx[axis] = clamp_index(i[axis] - Expr(start), ins.back().dim(int(axis)));
    Expr v = ins.back()(idx);
    for (size_t k = ins.size() - 1; k-- > 0;) {
      int64_t n = ins[k].dim(int(axis));
      start -= n;
      idx[axis] = clamp_index(i[axis] - Expr(start), n);
      v = tir::select(tir::lt(i[axis], Expr(start + n)), ins[k](idx), v);
    }
    return v;
  }, ctx.out_name());
}

// The window [start, start + extent) of `x` along `axis`, as output `out`.
Tensor axis_window(const OpContext& ctx, const Tensor& x, int64_t axis, int64_t start, int64_t extent, int out) {
  Shape shape = x.shape();
  shape[axis] = extent;
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    Exprs idx = as_exprs(i);
    idx[axis] = i[axis] + Expr(start);
    return x(idx);
  }, ctx.out_name(out));
}

std::vector<Tensor> split(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = ctx.axis(ctx.attr_int("axis", 0), x.ndim());
  int64_t n = x.dim(int(axis));
  std::vector<int64_t> sizes;
  if (ctx.opset() < 13) sizes = ctx.attr_ints("split");
  else if (ctx.has_input(1)) sizes = ctx.required_ints(1, "split");
  if (sizes.empty()) {
    int64_t parts = ctx.has_attr("num_outputs") ? ctx.attr_int("num_outputs", 1) : int64_t(ctx.node().outputs.size());
    if (parts <= 0) ctx.error("num_outputs must be positive");
    // Equal parts, the last one smaller when the extent does not divide (opset 18).
    int64_t each = (n + parts - 1) / parts;
    if (!ctx.has_attr("num_outputs") && n % parts != 0) ctx.error("extent ", n, " does not split into ", parts, " equal parts");
    for (int64_t k = 0; k < parts; ++k) sizes.push_back(std::clamp<int64_t>(n - k * each, 0, each));
  }
  if (std::accumulate(sizes.begin(), sizes.end(), int64_t(0)) != n) ctx.error("split sizes do not add up to ", n);
  std::vector<Tensor> outs;
  int64_t start = 0;
  for (size_t k = 0; k < sizes.size(); ++k) {
    outs.push_back(axis_window(ctx, x, axis, start, sizes[k], int(k)));
    start += sizes[k];
  }
  return outs;
}

// One axis of a slice: element j of the output reads start + j * step.
struct SliceDim {
  int64_t start = 0, step = 1, count = 0;
};

SliceDim slice_dim(int64_t extent, int64_t start, int64_t end, int64_t step) {
  // The clamping rules of the ONNX Slice operator (negative values count from the end).
  auto from_end = [&](int64_t v) { return v < 0 ? (v < -extent ? -1 - extent : v) + extent : v; };
  start = from_end(start);
  end = from_end(end);
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, extent);
    end = std::clamp<int64_t>(end, 0, extent);
  } else {
    start = std::clamp<int64_t>(start, 0, extent - 1);
    end = std::clamp<int64_t>(end, -1, extent - 1);
  }
  int64_t span = end - start;
  int64_t count = step > 0 ? (span + step - 1) / step : (span + step + 1) / step;
  return {start, step, std::max<int64_t>(count, 0)};
}

Tensor slice(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    starts = ctx.attr_ints("starts");
    ends = ctx.attr_ints("ends");
    axes = ctx.attr_ints("axes");
  } else {
    starts = ctx.required_ints(1, "starts");
    ends = ctx.required_ints(2, "ends");
    if (ctx.has_input(3)) axes = ctx.required_ints(3, "axes");
    if (ctx.has_input(4)) steps = ctx.required_ints(4, "steps");
  }
  if (axes.empty())
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(int64_t(k));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    ctx.error("starts, ends, axes and steps differ in length");
  std::vector<SliceDim> dims(x.ndim());
  for (int d = 0; d < x.ndim(); ++d) dims[d] = {0, 1, x.dim(d)};
  for (size_t k = 0; k < starts.size(); ++k) {
    if (steps[k] == 0) ctx.error("slice step cannot be 0");
    int64_t a = ctx.axis(axes[k], x.ndim());
    dims[a] = slice_dim(x.dim(int(a)), starts[k], ends[k], steps[k]);
  }
  Shape shape;
  for (auto& s : dims) shape.push_back(s.count);
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    Exprs idx;
    for (size_t d = 0; d < dims.size(); ++d) idx.push_back(Expr(dims[d].start) + i[d] * Expr(dims[d].step));
    return x(idx);
  }, ctx.out_name());
}

Tensor expand(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> target = ctx.required_ints(1, "shape");
  Shape shape = broadcast_shapes(ctx, {x.shape(), Shape(target.begin(), target.end())});
  return tir::compute(shape, [&](const std::vector<Var>& i) { return broadcast_read(x, i); }, ctx.out_name());
}

Tensor tile(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> repeats = ctx.required_ints(1, "repeats");
  if (int(repeats.size()) != x.ndim()) ctx.error("repeats has ", repeats.size(), " entries for rank ", x.ndim());
  Shape shape = x.shape();
  for (int d = 0; d < x.ndim(); ++d) {
    if (repeats[d] < 0) ctx.error("negative repeat count");
    shape[d] *= repeats[d];
  }
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    Exprs idx;
    for (int d = 0; d < x.ndim(); ++d) idx.push_back(x.dim(d) == 1 ? Expr(0) : floormod(i[d], Expr(x.dim(d))));
    return x(idx);
  }, ctx.out_name());
}

enum class PadMode { Constant, Reflect, Edge, Wrap };

// Index into an axis of extent n for padded coordinate c (c may lie outside [0, n)).
Expr padded_source(const Expr& c, int64_t n, PadMode mode) {
  switch (mode) {
    case PadMode::Reflect: {
      if (n == 1) return Expr(0);
      Expr m = floormod(c, Expr(2 * (n - 1)));
      return tir::select(tir::lt(m, Expr(n)), m, Expr(2 * (n - 1)) - m);
    }
    case PadMode::Wrap: return floormod(c, Expr(n));
    default: return clamp_index(c, n);  // edge, and the in-bounds read of constant mode
  }
}

Tensor pad(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  int r = x.ndim();
  std::string mode_name = ctx.attr_string("mode", "constant");
  PadMode mode;
  if (mode_name == "constant") mode = PadMode::Constant;
  else if (mode_name == "reflect") mode = PadMode::Reflect;
  else if (mode_name == "edge") mode = PadMode::Edge;
  else if (mode_name == "wrap") mode = PadMode::Wrap;
  else ctx.error("pad mode '", mode_name, "' is not supported");

  std::vector<int64_t> pads, axes;
  Expr fill = tir::make_const(x.dtype(), 0);
  if (ctx.opset() < 11) {
    pads = ctx.attr_ints(ctx.opset() < 2 ? "paddings" : "pads");
    fill = tir::make_const(x.dtype(), ctx.attr_float("value", 0.0));
  } else {
    pads = ctx.required_ints(1, "pads");
    if (ctx.has_input(2)) fill = first_element(ctx.input(2));
    if (ctx.has_input(3)) axes = ctx.required_ints(3, "axes");
  }
  if (axes.empty())
    for (int d = 0; d < r; ++d) axes.push_back(d);
  if (pads.size() != 2 * axes.size()) ctx.error("pads has ", pads.size(), " entries for ", axes.size(), " axes");
  std::vector<int64_t> before(r, 0), after(r, 0);
  for (size_t k = 0; k < axes.size(); ++k) {
    int64_t a = ctx.axis(axes[k], r);
    before[a] = pads[k];
    after[a] = pads[k + axes.size()];
  }
  Shape shape = x.shape();
  for (int d = 0; d < r; ++d) {
    shape[d] += before[d] + after[d];
    if (shape[d] < 0) ctx.error("pads remove more than axis ", d, " holds");
    if (mode != PadMode::Constant && x.dim(d) == 0 && shape[d] > 0) ctx.error("cannot pad an empty axis in mode ", mode_name);
  }
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    Exprs idx;
    Expr inside = tir::make_int(1, DType::Bool);
    for (int d = 0; d < r; ++d) {
      if (before[d] == 0 && after[d] <= 0) {  // untouched or cropped at the end only
        idx.push_back(i[d]);
        continue;
      }
      Expr c = i[d] - Expr(before[d]);
      if (mode == PadMode::Constant) inside = inside && tir::ge(c, Expr(0)) && tir::lt(c, Expr(x.dim(d)));
      idx.push_back(padded_source(c, x.dim(d), mode));
    }
    if (shape_numel(x.shape()) == 0) return fill;  // nothing to read
    Expr v = x(idx);
    return mode == PadMode::Constant ? tir::select(inside, v, fill) : v;
  }, ctx.out_name());
}

Tensor constant_of_shape(OpContext& ctx) {
  std::vector<int64_t> dims = ctx.required_ints(0, "shape");
  const HostTensor* value = ctx.attr_tensor("value");
  Expr v = value ? scalar_const(*value, value->dtype) : tir::make_const(DType::F32, 0);
  return tir::compute(Shape(dims.begin(), dims.end()), [&](const std::vector<Var>&) { return v; }, ctx.out_name());
}

Tensor range(OpContext& ctx) {
  const HostTensor& start = ctx.required_value(0, "start");
  const HostTensor& limit = ctx.required_value(1, "limit");
  const HostTensor& delta = ctx.required_value(2, "delta");
  DType t = ctx.input(0).dtype();
  double d = delta.get_f64(0);
  if (d == 0) ctx.error("delta cannot be 0");
  int64_t n = std::max<int64_t>(0, int64_t(std::ceil((limit.get_f64(0) - start.get_f64(0)) / d)));
  Expr s = scalar_const(start, t), step = scalar_const(delta, t);
  return tir::compute({n}, [&](const std::vector<Var>& i) { return s + tir::cast(t, i[0]) * step; }, ctx.out_name());
}

Tensor eye_like(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.ndim() != 2) ctx.error("input must be 2-D");
  DType t = x.dtype();
  if (ctx.has_attr("dtype") && !dtype_from_onnx(int(ctx.attr_int("dtype", 0)), &t))
    ctx.error("dtype ", ctx.attr_int("dtype", 0), " is not supported");
  int64_t k = ctx.attr_int("k", 0);
  return tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    return tir::select(tir::eq(i[1] - i[0], Expr(k)), tir::make_const(t, 1), tir::make_const(t, 0));
  }, ctx.out_name());
}

Tensor trilu(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.ndim() < 2) ctx.error("input must have rank 2 or more");
  bool upper = ctx.attr_int("upper", 1) != 0;
  // k is read at run time: it does not change any shape.
  Expr k = ctx.has_input(1) ? tir::cast(DType::I64, first_element(ctx.input(1))) : Expr(0);
  return tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    Expr diag = i[x.ndim() - 1] - i[x.ndim() - 2];
    Expr keep = upper ? tir::ge(diag, k) : tir::le(diag, k);
    return tir::select(keep, x(i), tir::make_const(x.dtype(), 0));
  }, ctx.out_name());
}

// DepthToSpace / SpaceToDepth: NCHW with a block of b x b pixels per group of channels.
Tensor depth_to_space(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.ndim() != 4) ctx.error("input must be 4-D NCHW");
  int64_t b = ctx.attr_int("blocksize", 0);
  std::string mode = ctx.attr_string("mode", "DCR");
  if (mode != "DCR" && mode != "CRD") ctx.error("mode '", mode, "' is not supported");
  if (b <= 0 || x.dim(1) % (b * b) != 0) ctx.error("channels ", x.dim(1), " do not divide by blocksize^2");
  int64_t c_out = x.dim(1) / (b * b);
  return tir::compute({x.dim(0), c_out, x.dim(2) * b, x.dim(3) * b}, [&](const std::vector<Var>& i) {
    Expr bh = floormod(i[2], Expr(b)), bw = floormod(i[3], Expr(b));
    Expr block = bh * Expr(b) + bw;
    Expr c = mode == "DCR" ? block * Expr(c_out) + i[1] : i[1] * Expr(b * b) + block;
    return x(i[0], c, floordiv(i[2], Expr(b)), floordiv(i[3], Expr(b)));
  }, ctx.out_name());
}

Tensor space_to_depth(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.ndim() != 4) ctx.error("input must be 4-D NCHW");
  int64_t b = ctx.attr_int("blocksize", 0);
  if (b <= 0 || x.dim(2) % b != 0 || x.dim(3) % b != 0) ctx.error("spatial extents do not divide by blocksize");
  int64_t c_in = x.dim(1);
  return tir::compute({x.dim(0), c_in * b * b, x.dim(2) / b, x.dim(3) / b}, [&](const std::vector<Var>& i) {
    Expr block = floordiv(i[1], Expr(c_in)), c = floormod(i[1], Expr(c_in));
    Expr bh = floordiv(block, Expr(b)), bw = floormod(block, Expr(b));
    return x(i[0], c, i[2] * Expr(b) + bh, i[3] * Expr(b) + bw);
  }, ctx.out_name());
}

Tensor reverse_sequence(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& lens = ctx.input(1);
  int64_t batch_axis = ctx.axis(ctx.attr_int("batch_axis", 1), x.ndim(), "batch_axis");
  int64_t time_axis = ctx.axis(ctx.attr_int("time_axis", 0), x.ndim(), "time_axis");
  int64_t steps = x.dim(int(time_axis));
  return tir::compute(x.shape(), [&](const std::vector<Var>& i) {
    Expr len = tir::cast(DType::I64, lens(i[batch_axis]));
    Exprs idx = as_exprs(i);
    Expr t = i[time_axis];
    idx[time_axis] = tir::select(tir::lt(t, len), clamp_index(len - Expr(1) - t, steps), t);
    return x(idx);
  }, ctx.out_name());
}

// Compress with a condition known at compile time: the kept positions form runs, and each
// output position reads its source as "position + offset of its run".
Tensor compress(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> cond = ctx.required_ints(1, "condition");
  bool flat = !ctx.has_attr("axis");
  Tensor src = flat ? reshape_to(ctx, x, {shape_numel(x.shape())}, ctx.out_name() + "_flat") : x;
  int64_t axis = flat ? 0 : ctx.axis(ctx.attr_int("axis", 0), x.ndim());
  int64_t n = src.dim(int(axis));
  if (int64_t(cond.size()) > n) ctx.error("condition is longer than the axis");
  struct Run { int64_t out_start, offset; };
  std::vector<Run> runs;
  int64_t kept = 0;
  for (int64_t k = 0; k < int64_t(cond.size()); ++k) {
    if (!cond[k]) continue;
    if (runs.empty() || k == 0 || !cond[k - 1]) runs.push_back({kept, k - kept});
    ++kept;
  }
  Shape shape = src.shape();
  shape[axis] = kept;
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    Expr offset = runs.empty() ? Expr(0) : Expr(runs[0].offset);
    for (size_t r = 1; r < runs.size(); ++r)
      offset = tir::select(tir::ge(i[axis], Expr(runs[r].out_start)), Expr(runs[r].offset), offset);
    Exprs idx = as_exprs(i);
    idx[axis] = clamp_index(i[axis] + offset, n);
    return src(idx);
  }, ctx.out_name());
}

}  // namespace

void register_shape_ops(Registry& r) {
  r.add("Reshape", single(reshape));
  r.add("Flatten", single(flatten));
  r.add("Squeeze", single(squeeze));
  r.add("Unsqueeze", single(unsqueeze));
  r.add("Transpose", single(transpose));
  r.add("Concat", single(concat));
  r.add("Split", split);
  r.add("Slice", single(slice));
  r.add("Expand", single(expand));
  r.add("Tile", single(tile));
  r.add("Pad", single(pad));
  r.add("ConstantOfShape", single(constant_of_shape));
  r.add("Range", single(range));
  r.add("EyeLike", single(eye_like));
  r.add("Trilu", single(trilu));
  r.add("DepthToSpace", single(depth_to_space));
  r.add("SpaceToDepth", single(space_to_depth));
  r.add("ReverseSequence", single(reverse_sequence));
  r.add("Compress", single(compress));
}

}  // namespace kiln::ops
