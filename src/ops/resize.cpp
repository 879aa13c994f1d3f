// Resize (opset 10+) and Upsample (opset 7-9): nearest, (multi)linear and cubic
// interpolation over any axes, following the ONNX reference implementation.
// Each output element is a weighted sum of input elements; per resized axis, a source
// coordinate is computed from the output coordinate (coordinate_transformation_mode) and
// turned into a few taps (index + weight). The taps of all axes are combined as a tensor
// product. Coordinates are computed in f64 so that nearest rounding matches the reference.
#include <cmath>

#include "ops/common.h"
#include "ops/registry.h"
#include "tir/simplify.h"

namespace kiln::ops {

namespace {

using Exprs = std::vector<Expr>;

enum class Mode { Nearest, Linear, Cubic };

struct ResizeSpec {
  Mode mode = Mode::Nearest;
  std::string coord = "half_pixel";
  std::string nearest = "round_prefer_floor";
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
  std::vector<double> scales;            // per axis of the input
  Shape out_shape;
  std::vector<double> roi_start, roi_end;  // per axis, tf_crop_and_resize only
};

// One input element contributing to an output element along one axis.
struct Tap {
  Expr index;   // i64, in bounds
  Expr weight;  // f64
};

Expr f64(double v) { return tir::make_const(DType::F64, v); }

// Source coordinate along an axis of extent `in` for output coordinate `x` (f64).
Expr source_coordinate(const ResizeSpec& s, int axis, int64_t in, const Expr& x) {
  double scale = s.scales[axis];
  int64_t out = s.out_shape[axis];
  // The reference uses the real-valued output length scale * in, not the rounded one.
  double out_len = scale * double(in);
  const std::string& m = s.coord;
  if (m == "half_pixel") return (x + f64(0.5)) / f64(scale) - f64(0.5);
  if (m == "pytorch_half_pixel") return out > 1 ? (x + f64(0.5)) / f64(scale) - f64(0.5) : f64(-0.5);
  if (m == "align_corners") return out_len == 1 ? f64(0) : x * f64(double(in - 1) / (out_len - 1));
  if (m == "asymmetric") return x / f64(scale);
  if (m == "tf_half_pixel_for_nn") return (x + f64(0.5)) / f64(scale);
  if (m == "half_pixel_symmetric") {
    double adjustment = double(out) / out_len;
    double offset = double(in) / 2 * (1 - adjustment);
    return f64(offset) + (x + f64(0.5)) / f64(scale) - f64(0.5);
  }
  if (m == "tf_crop_and_resize") {
    double a = s.roi_start[axis], b = s.roi_end[axis];
    if (out_len == 1) return f64((b - a) * double(in - 1) / 2 + a * double(in - 1));
    return x * f64((b - a) * double(in - 1) / (out_len - 1)) + f64(a * double(in - 1));
  }
  KILN_CHECK(false, "unchecked coordinate mode ", m);
}

Expr clamp_index(const Expr& e, int64_t extent) { return tir::max(Expr(0), tir::min(Expr(extent - 1), e)); }

// The reference's cubic convolution weights for the taps at offsets -1, 0, 1, 2 from
// floor(x), with r = x - floor(x).
std::vector<Expr> cubic_weights(const Expr& r, double a) {
  auto near = [&](Expr d) { return (f64(a + 2) * d - f64(a + 3)) * d * d + f64(1); };              // |d| <= 1
  auto far = [&](Expr d) { return ((f64(a) * d - f64(5 * a)) * d + f64(8 * a)) * d - f64(4 * a); };  // 1 < |d| < 2
  return {far(r + f64(1)), near(r), near(f64(1) - r), far(f64(2) - r)};
}

// The nearest source index in integer arithmetic, where the coordinate is out_index / k for
// an integer scale k (asymmetric coordinates: an integer upsampling); undefined otherwise.
// floor(o/k) = o div k, ceil(o/k) = (o + k - 1) div k, and rounding o/k to the nearest with
// ties down / up is (2o + k - 1) div 2k / (2o + k) div 2k: the same indices as the f64
// reference, without per-element float conversions.
Expr integer_nearest(const ResizeSpec& s, int axis, const Expr& o) {
  double scale = s.scales[axis];
  if (s.coord != "asymmetric" || scale < 1 || scale != std::floor(scale) || scale > 1 << 20) return Expr();
  int64_t k = int64_t(scale);
  const std::string& m = s.nearest;
  if (m == "floor" || m == "simple") return floordiv(o, k);
  if (m == "ceil") return floordiv(o + Expr(k - 1), k);
  if (m == "round_prefer_floor") return floordiv(o * Expr(2) + Expr(k - 1), 2 * k);
  if (m == "round_prefer_ceil") return floordiv(o * Expr(2) + Expr(k), 2 * k);
  return Expr();
}

std::vector<Tap> axis_taps(const ResizeSpec& s, int axis, int64_t in, const Expr& out_index) {
  if (s.mode == Mode::Nearest)
    if (Expr n = integer_nearest(s, axis, out_index); n.defined()) {
      // Monotone in the output index and never negative: clamped only when the last output
      // would read past the end.
      int64_t last;
      bool inside = tir::is_const_int(tir::simplify(integer_nearest(s, axis, Expr(s.out_shape[axis] - 1))), &last) &&
                    last < in;
      return {{inside ? n : clamp_index(n, in), f64(1)}};
    }
  Expr x = source_coordinate(s, axis, in, tir::cast(DType::F64, out_index));
  if (s.mode == Mode::Nearest) {
    Expr n;
    if (s.nearest == "round_prefer_floor") n = tir::ceil(x - f64(0.5));
    else if (s.nearest == "round_prefer_ceil") n = tir::floor(x + f64(0.5));
    else if (s.nearest == "floor") n = tir::floor(x);
    else if (s.nearest == "ceil") n = tir::ceil(x);
    else n = s.scales[axis] < 1 ? tir::ceil(x) : tir::floor(x);  // "simple": Resize-10 / Upsample
    return {{clamp_index(tir::cast(DType::I64, n), in), f64(1)}};
  }
  Expr x0 = tir::floor(x);
  Expr r = x - x0;
  Expr base = tir::cast(DType::I64, x0);
  std::vector<Tap> taps;
  if (s.mode == Mode::Linear) {
    taps = {{base, f64(1) - r}, {base + Expr(1), r}};
  } else {
    auto w = cubic_weights(r, s.cubic_a);
    for (int t = 0; t < 4; ++t) taps.push_back({base + Expr(t - 1), w[t]});
  }
  if (s.exclude_outside) {
    // Taps outside the input get no weight; the rest are renormalized to sum to 1.
    Expr total = f64(0);
    for (auto& t : taps) {
      t.weight = tir::select(tir::ge(t.index, Expr(0)) && tir::lt(t.index, Expr(in)), t.weight, f64(0));
      total = total + t.weight;
    }
    for (auto& t : taps) t.weight = t.weight / total;
  }
  for (auto& t : taps) t.index = clamp_index(t.index, in);  // edge padding
  return taps;
}

Tensor resize_compute(const OpContext& ctx, const Tensor& x, const ResizeSpec& s) {
  if (s.mode != Mode::Nearest) check_float(ctx, x);
  std::vector<int> resized;
  for (int d = 0; d < x.ndim(); ++d)
    if (s.out_shape[d] != x.dim(d) || s.scales[d] != 1.0 || s.coord == "tf_crop_and_resize") resized.push_back(d);
  return tir::compute(s.out_shape, [&](const std::vector<Var>& i) {
    std::vector<std::vector<Tap>> taps;
    Expr outside = tir::make_int(0, DType::Bool);
    for (int d : resized) {
      taps.push_back(axis_taps(s, d, x.dim(d), i[d]));
      if (s.coord == "tf_crop_and_resize") {
        Expr c = source_coordinate(s, d, x.dim(d), tir::cast(DType::F64, i[d]));
        outside = outside || tir::lt(c, f64(0)) || tir::gt(c, f64(double(x.dim(d) - 1)));
      }
    }
    if (s.mode == Mode::Nearest) {  // one tap per axis: a plain read, in any element type
      Exprs idx = as_exprs(i);
      for (size_t k = 0; k < taps.size(); ++k) idx[resized[k]] = taps[k][0].index;
      if (s.coord != "tf_crop_and_resize") return x(idx);
      return tir::select(outside, tir::make_const(x.dtype(), s.extrapolation), x(idx));
    }
    // Sum over every combination of one tap per resized axis.
    Expr acc;
    std::vector<size_t> pick(taps.size(), 0);
    while (true) {
      Exprs idx = as_exprs(i);
      Expr w = f64(1);
      for (size_t k = 0; k < taps.size(); ++k) {
        idx[resized[k]] = taps[k][pick[k]].index;
        w = w * taps[k][pick[k]].weight;
      }
      Expr term = w * tir::cast(DType::F64, x(idx));
      acc = acc.defined() ? acc + term : term;
      size_t k = 0;
      while (k < pick.size() && ++pick[k] == taps[k].size()) pick[k++] = 0;
      if (k == pick.size()) break;
    }
    if (s.coord == "tf_crop_and_resize") acc = tir::select(outside, f64(s.extrapolation), acc);
    return tir::cast(x.dtype(), acc);
  }, ctx.out_name());
}

Mode parse_mode(const OpContext& ctx) {
  std::string m = ctx.attr_string("mode", "nearest");
  if (m == "nearest") return Mode::Nearest;
  if (m == "linear" || m == "bilinear") return Mode::Linear;
  if (m == "cubic") return Mode::Cubic;
  ctx.error("mode '", m, "' is not supported");
}

// Output shape from scales (rounded down, as the reference) when sizes are not given.
void shape_from_scales(const OpContext& ctx, const Tensor& x, ResizeSpec& s) {
  if (int(s.scales.size()) != x.ndim()) ctx.error("scales has ", s.scales.size(), " entries for rank ", x.ndim());
  for (int d = 0; d < x.ndim(); ++d) {
    if (s.scales[d] <= 0) ctx.error("scales must be positive");
    s.out_shape.push_back(int64_t(std::floor(double(x.dim(d)) * s.scales[d])));
  }
}

std::vector<double> values_f64(const HostTensor& t) {
  std::vector<double> v(t.numel());
  for (int64_t k = 0; k < t.numel(); ++k) v[k] = t.get_f64(k);
  return v;
}

Tensor resize(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  int r = x.ndim();
  ResizeSpec s;
  s.mode = parse_mode(ctx);
  if (ctx.attr_int("antialias", 0) != 0) ctx.error("antialias is not supported");
  if (ctx.has_attr("axes")) ctx.error("the axes attribute is not supported");
  if (ctx.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch")
    ctx.error("keep_aspect_ratio_policy '", ctx.attr_string("keep_aspect_ratio_policy", ""), "' is not supported");
  if (ctx.opset() < 11) {
    // Resize-10: (X, scales), asymmetric coordinates, nearest rounds as Upsample did.
    s.coord = "asymmetric";
    s.nearest = "simple";
    s.scales = values_f64(ctx.required_value(1, "scales"));
    shape_from_scales(ctx, x, s);
    return resize_compute(ctx, x, s);
  }
  s.coord = ctx.attr_string("coordinate_transformation_mode", "half_pixel");
  static const char* coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                 "tf_half_pixel_for_nn", "half_pixel_symmetric", "tf_crop_and_resize"};
  if (std::find(std::begin(coords), std::end(coords), s.coord) == std::end(coords))
    ctx.error("coordinate_transformation_mode '", s.coord, "' is not supported");
  s.nearest = ctx.attr_string("nearest_mode", "round_prefer_floor");
  if (s.nearest != "round_prefer_floor" && s.nearest != "round_prefer_ceil" && s.nearest != "floor" && s.nearest != "ceil")
    ctx.error("nearest_mode '", s.nearest, "' is not supported");
  s.cubic_a = ctx.attr_float("cubic_coeff_a", -0.75);
  s.exclude_outside = ctx.attr_int("exclude_outside", 0) != 0;
  s.extrapolation = ctx.attr_float("extrapolation_value", 0.0);

  // Inputs (X, roi, scales, sizes); an empty tensor counts as absent.
  auto present = [&](int k) { return ctx.has_input(k) && shape_numel(ctx.input(k).shape()) > 0; };
  if (present(3)) {
    std::vector<int64_t> sizes = ctx.required_ints(3, "sizes");
    if (int(sizes.size()) != r) ctx.error("sizes has ", sizes.size(), " entries for rank ", r);
    for (int d = 0; d < r; ++d) {
      s.out_shape.push_back(sizes[d]);
      s.scales.push_back(double(sizes[d]) / double(x.dim(d)));
    }
  } else if (present(2)) {
    s.scales = values_f64(ctx.required_value(2, "scales"));
    shape_from_scales(ctx, x, s);
  } else {
    ctx.error("one of scales and sizes is required");
  }
  if (s.coord == "tf_crop_and_resize") {
    if (!present(1)) ctx.error("tf_crop_and_resize needs roi");
    std::vector<double> roi = values_f64(ctx.required_value(1, "roi"));
    if (int(roi.size()) != 2 * r) ctx.error("roi has ", roi.size(), " entries for rank ", r);
    s.roi_start.assign(roi.begin(), roi.begin() + r);
    s.roi_end.assign(roi.begin() + r, roi.end());
  }
  return resize_compute(ctx, x, s);
}

Tensor upsample(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  ResizeSpec s;
  s.mode = parse_mode(ctx);
  if (s.mode == Mode::Cubic) ctx.error("mode 'cubic' is not supported by Upsample");
  s.coord = "asymmetric";
  s.nearest = "simple";
  s.scales = ctx.opset() < 9 ? ctx.attr_floats("scales") : values_f64(ctx.required_value(1, "scales"));
  shape_from_scales(ctx, x, s);
  return resize_compute(ctx, x, s);
}

}  // namespace

void register_resize(Registry& r) {
  r.add("Resize", single(resize));
  r.add("Upsample", single(upsample));
}

}  // namespace kiln::ops
