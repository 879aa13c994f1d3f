// Convolutions: Conv, ConvTranspose, ConvInteger and QLinearConv over 1-3 (any number of)
// spatial dimensions, with groups (depthwise included), strides, dilations and padding.
//
// A convolution is one reduction stage whose reduce axes are the input channels of the group
// followed by the kernel window, so the innermost reduction walks the weight tensor
// contiguously; padding is a guarded select inside the reduction (no padded copy of the input,
// no out-of-bounds reads). The bias is the reduction's initial value.
#include "ops/nn_common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

// How the elements of a convolution's operands enter the sum: converted to the accumulation
// type (and zero points subtracted, for the integer forms). `c` is the input channel of an x
// element, `m` the output channel of a weight element.
struct ConvTerms {
  DType acc;
  std::function<Expr(Expr x, Expr c)> x_value;
  std::function<Expr(Expr w, Expr m)> w_value;
  std::function<Expr(Expr m)> init;  // initial value of output channel m's sum; 0 when unset
  Expr pad;  // value of x in the padding, in x's type: its zero point (0 when unset)
};

ConvTerms float_terms(const OpContext& ctx, DType t, int bias_input) {
  ConvTerms terms;
  terms.acc = accum_dtype(t);
  terms.x_value = [acc = terms.acc](Expr x, Expr) { return cast_if_needed(acc, x); };
  terms.w_value = [acc = terms.acc](Expr w, Expr) { return cast_if_needed(acc, w); };
  if (ctx.has_input(bias_input))
    terms.init = [&ctx, bias_input, acc = terms.acc](Expr m) { return cast_if_needed(acc, ctx.input(bias_input)(m)); };
  return terms;
}

// Integer terms: (x - x_zero_point) * (w - w_zero_point[m]) in int32; x's zero point is per
// tensor, w's per tensor or per output channel.
ConvTerms integer_terms(OpContext& ctx, int x_zp, int w_zp) {
  ConvTerms terms;
  terms.acc = DType::I32;
  terms.x_value = [&ctx, x_zp](Expr x, Expr) { return subtract_zero_point(tir::cast(DType::I32, x), zero_point_i32(ctx, x_zp, 0)); };
  terms.w_value = [&ctx, w_zp](Expr w, Expr m) { return subtract_zero_point(tir::cast(DType::I32, w), zero_point_i32(ctx, w_zp, m)); };
  if (ctx.has_input(x_zp)) terms.pad = tir::cast(ctx.input(0).dtype(), zero_point_i32(ctx, x_zp, 0));
  return terms;
}

int64_t group_count(const OpContext& ctx, int64_t in_channels, int64_t out_channels) {
  int64_t group = ctx.attr_int("group", 1);
  if (group < 1 || in_channels % group || out_channels % group)
    ctx.error("group ", group, " does not divide ", in_channels, " input and ", out_channels, " output channels");
  return group;
}

std::vector<int64_t> kernel_extents(const OpContext& ctx, const Tensor& w) {
  std::vector<int64_t> from_w(w.shape().begin() + 2, w.shape().end());
  std::vector<int64_t> k = ctx.attr_ints("kernel_shape", from_w);
  if (k != from_w) ctx.error("kernel_shape ", shape_str(k), " does not match the weights ", shape_str(w.shape()));
  return k;
}

void check_ranks(const OpContext& ctx, const Tensor& x, const Tensor& w) {
  if (x.ndim() < 3 || w.ndim() != x.ndim())
    ctx.error("input ", shape_str(x.shape()), " and weights ", shape_str(w.shape()), " must both be N, C, D1.. with the same rank");
}

// Reduce axes of a convolution: the group's channels, then the kernel window.
struct ConvAxes {
  tir::IterVar channel;
  std::vector<tir::IterVar> kernel;
  std::vector<Expr> kernel_exprs() const { return axis_vars(kernel); }
  std::vector<tir::IterVar> all() const {
    std::vector<tir::IterVar> a{channel};
    a.insert(a.end(), kernel.begin(), kernel.end());
    return a;
  }
};

ConvAxes conv_axes(int64_t channels, const std::vector<int64_t>& window, const std::string& name) {
  ConvAxes axes{tir::reduce_axis(channels, name + "_rc"), {}};
  for (size_t d = 0; d < window.size(); ++d)
    axes.kernel.push_back(tir::reduce_axis(window[d], name + "_rk" + std::to_string(d)));
  return axes;
}

Expr reduction(const ConvTerms& terms, Expr summand, const ConvAxes& axes, const Expr& m) {
  return tir::reduce(tir::ReduceOp::Sum, std::move(summand), axes.all(),
                     terms.init ? terms.init(m) : tir::make_const(terms.acc, 0));
}

std::vector<Expr> weight_index(Expr out_channel, Expr in_channel, const std::vector<Expr>& taps) {
  std::vector<Expr> idx{std::move(out_channel), std::move(in_channel)};
  idx.insert(idx.end(), taps.begin(), taps.end());
  return idx;
}

// x padded as pad_input does, with its last dimension also split by that dimension's
// stride s into phases: planes[n, c, d.., p, q] = padded[n, c, d.., q * s + p] (0 past the
// end). A strided window then reads neighbouring q for neighbouring outputs: vector loads
// where the padded input would need gathers, in one copy the size of the padded input.
Tensor phase_planes(const Tensor& x, const Window& win, const Expr& pad, const std::string& name) {
  int r = win.rank(), last = r - 1;
  int64_t s = win.strides[last], padded_width = win.in[last] + win.pad_begin[last] + win.pad_end[last];
  Shape shape{x.dim(0), x.dim(1)};
  for (int d = 0; d < last; ++d) shape.push_back(win.in[d] + win.pad_begin[d] + win.pad_end[d]);
  shape.push_back(s);
  shape.push_back((padded_width + s - 1) / s);
  return tir::compute_materialized(shape, [&](const std::vector<Var>& i) {
    std::vector<Expr> at(i.begin() + 2, i.begin() + 1 + r);  // the axes before the last
    at.push_back(Expr(i[2 + r]) * s + i[1 + r]);
    return padded_read(x, win, i[0], i[1], at, pad);
  }, name);
}

// The input term a convolution multiplies for batch n, input channel c, output position o (one
// index per spatial dim) and kernel tap k, already in the accumulation type (ConvTerms::x_value).
using InputRead = std::function<Expr(const Expr& n, const Expr& c, const std::vector<Expr>& o,
                                     const std::vector<Expr>& k)>;

// y[n, m, o] = init(m) + sum_{c, k} read(n, g*Cg + c, o, k) * w[m, c, k] with g = m / (M / group).
Tensor conv_reduce(int64_t batch, const Tensor& w, const ConvTerms& terms, const Window& win, int64_t group,
                   const InputRead& read, const std::string& name) {
  int64_t out_channels = w.dim(0), group_channels = w.dim(1), out_per_group = out_channels / group;
  Shape out{batch, out_channels};
  out.insert(out.end(), win.out.begin(), win.out.end());
  return tir::compute(out, [&](const std::vector<Var>& i) {
    ConvAxes axes = conv_axes(group_channels, win.kernel, name);
    Expr m = i[1];
    Expr c = group == 1 ? Expr(axes.channel.var) : floordiv(m, out_per_group) * group_channels + axes.channel.var;
    std::vector<Expr> o(i.begin() + 2, i.end());
    std::vector<Expr> taps = axes.kernel_exprs();
    Expr xv = read(i[0], c, o, taps);
    Expr wv = terms.w_value(w(weight_index(m, axes.channel.var, taps)), m);
    return reduction(terms, xv * wv, axes, m);
  }, name);
}

// The direct read: x[n, c, o*stride - pad + k*dilation]; outside the input the term is 0
// (padding contributes nothing, also for quantized inputs whose zero point is not 0).
InputRead window_input(const Tensor& x, const Window& win, const ConvTerms& terms) {
  return [&x, &win, &terms](const Expr& n, const Expr& c, const std::vector<Expr>& o, const std::vector<Expr>& k) {
    return window_read(x, n, c, win, o, k, [&](Expr e) { return terms.x_value(e, c); },
                       tir::make_const(terms.acc, 0));
  };
}

// The read of phase planes (phase_planes) for window `inner` over the padded input.
InputRead phase_input(const Tensor& planes, const Window& inner, const ConvTerms& terms) {
  return [&planes, &inner, &terms](const Expr& n, const Expr& c, const std::vector<Expr>& o, const std::vector<Expr>& k) {
    int last = inner.rank() - 1;
    int64_t s = inner.strides[last];
    std::vector<Expr> idx{n, c};
    for (int d = 0; d < last; ++d) idx.push_back(inner.input_coord(d, o[d], k[d]));
    Expr offset = k[last] * inner.dilations[last];
    idx.push_back(floormod(offset, s));
    idx.push_back(o[last] + floordiv(offset, s));
    return terms.x_value(planes(idx), c);
  };
}

// The read of im2col columns: cols[n, c, k..., o...].
InputRead column_input(const Tensor& cols, const ConvTerms& terms) {
  return [&cols, &terms](const Expr& n, const Expr& c, const std::vector<Expr>& o, const std::vector<Expr>& k) {
    std::vector<Expr> idx{n, c};
    idx.insert(idx.end(), k.begin(), k.end());
    idx.insert(idx.end(), o.begin(), o.end());
    return terms.x_value(cols(idx), c);
  };
}

// Output rows narrower than this read their windows through a staged copy (below): a
// register tile wants at least two vectors of neighbouring outputs.
constexpr int64_t kMinRowForDirectWindows = 16;
// Output channel counts that are a multiple of this fill whole AVX2 and AVX-512 vectors.
constexpr int64_t kChannelVectorMultiple = 16;

// The windows of a float convolution laid out as columns (im2col):
// cols[n, c, k..., o...] = x[n, c, o*stride + k*dilation], over an input that needs no guards.
// The reduction then reads, for each kernel tap, all output positions contiguously; it is used
// for narrow outputs and strided convolutions with few output channels, whose direct windows
// would be gathers (for a 1x1 kernel the columns are a plain subsample).
Tensor conv_columns(const Tensor& x, const Window& win, const std::string& name) {
  Shape shape{x.dim(0), x.dim(1)};
  shape.insert(shape.end(), win.kernel.begin(), win.kernel.end());
  shape.insert(shape.end(), win.out.begin(), win.out.end());
  int r = win.rank();
  return tir::compute_materialized(shape, [&](const std::vector<Var>& i) {
    std::vector<Expr> idx{i[0], i[1]};
    for (int d = 0; d < r; ++d) idx.push_back(win.input_coord(d, i[2 + r + d], i[2 + d]));
    return x(idx);
  }, name);
}

Tensor conv_sum(OpContext& ctx, const Tensor& x, const Tensor& w, const ConvTerms& terms, const std::string& name) {
  check_ranks(ctx, x, w);
  int64_t out_channels = w.dim(0), group_channels = w.dim(1);
  int64_t group = group_count(ctx, x.dim(1), out_channels);
  if (x.dim(1) != group_channels * group)
    ctx.error("weights ", shape_str(w.shape()), " expect ", group_channels * group, " input channels, got ", x.dim(1));
  Window win = sliding_window(ctx, spatial_shape(x), kernel_extents(ctx, w));
  // The padding as a stored copy, so the reduction reads without bounds guards and
  // neighbouring outputs read neighbouring inputs (vector loads, not gathers).
  Tensor padded = pad_input(x, win, terms.pad, name + "_padded");
  Window inner = win;
  for (int d = 0; d < win.rank(); ++d) {
    inner.in[d] = padded.dim(2 + d);
    inner.pad_begin[d] = inner.pad_end[d] = 0;
  }
  bool unit_kernel = true, unit_stride = true;
  for (int d = 0; d < win.rank(); ++d) {
    unit_kernel &= win.kernel[d] == 1;
    unit_stride &= win.strides[d] == 1;
  }
  bool narrow = win.rank() > 0 && win.out.back() < kMinRowForDirectWindows && !unit_kernel;
  // Many output channels: the schedule vectorizes over them (tir/reduction_schedule.cpp) and
  // reads each window element as one broadcast, at any stride, so the columns would only
  // cost a copy (7.4 MB for ResNet-50's stem).
  bool channel_vectors = group == 1 && out_channels % kChannelVectorMultiple == 0;
  if (win.rank() > 0 && !narrow && !channel_vectors && win.strides[win.rank() - 1] > 1) {
    Tensor planes = phase_planes(x, win, terms.pad, name + "_phases");
    return conv_reduce(x.dim(0), w, terms, inner, group, phase_input(planes, inner, terms), name);
  }
  // A strided 1x1 kernel's columns are a plain subsample, smaller than its input: worth the
  // copy even with channel vectors (the tiles then read neighbouring positions).
  bool subsample = unit_kernel && !unit_stride;
  if (win.rank() > 0 && (((narrow || !unit_stride) && !channel_vectors) || subsample)) {
    Tensor cols = conv_columns(padded, inner, name + "_cols");
    return conv_reduce(x.dim(0), w, terms, inner, group, column_input(cols, terms), name);
  }
  return conv_reduce(x.dim(0), w, terms, inner, group, window_input(padded, inner, terms), name);
}

// ConvTranspose geometry: pads and output extents from output_shape, auto_pad or pads.
struct TransposeWindow {
  std::vector<int64_t> strides, dilations, pad_begin;
  Shape out;
};

TransposeWindow transpose_window(const OpContext& ctx, const Shape& in, const std::vector<int64_t>& kernel) {
  size_t n = in.size();
  TransposeWindow tw{spatial_attr(ctx, "strides", n, 1), spatial_attr(ctx, "dilations", n, 1),
                     std::vector<int64_t>(n, 0), Shape(n)};
  std::vector<int64_t> output_padding = spatial_attr(ctx, "output_padding", n, 0);
  for (size_t d = 0; d < n; ++d)
    if (tw.strides[d] < 1 || tw.dilations[d] < 1) ctx.error("strides and dilations must be positive");
  std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  std::vector<int64_t> full(n);  // extent with no padding removed
  for (size_t d = 0; d < n; ++d)
    full[d] = tw.strides[d] * (in[d] - 1) + output_padding[d] + (kernel[d] - 1) * tw.dilations[d] + 1;

  std::vector<int64_t> target = ctx.attr_ints("output_shape");
  if (target.size() > n) target.erase(target.begin(), target.end() - n);  // N, C given too
  if (!target.empty() && target.size() != n) ctx.error("output_shape must have one extent per spatial axis");
  if (target.empty() && (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER"))
    for (size_t d = 0; d < n; ++d) target.push_back(in[d] * tw.strides[d]);
  if (!target.empty()) {
    // The padding removed is split evenly, the odd unit at the end for SAME_UPPER and at the
    // start otherwise; a negative total (output_shape larger than `full`) extends the end.
    for (size_t d = 0; d < n; ++d) {
      int64_t total = full[d] - target[d];
      int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);  // floor(total / 2)
      tw.pad_begin[d] = auto_pad == "SAME_UPPER" ? half : total - half;
      tw.out[d] = target[d];
    }
    return tw;
  }
  std::vector<int64_t> pads(2 * n, 0);
  if (auto_pad == "NOTSET" || auto_pad.empty()) pads = spatial_attr(ctx, "pads", 2 * n, 0);
  else if (auto_pad != "VALID") ctx.error("auto_pad '", auto_pad, "' is not supported");
  for (size_t d = 0; d < n; ++d) {
    tw.pad_begin[d] = pads[d];
    tw.out[d] = full[d] - pads[d] - pads[n + d];
    if (tw.out[d] < 1) ctx.error("pads remove the whole output along spatial axis ", d);
  }
  return tw;
}

// A transposed convolution whose kernel equals its stride on every axis, with no padding,
// dilation or groups (U-Net and FPN upsampling): each input element writes its own s x s block,
// so y[n, m, q*s + p] = sum_c x[n, c, q] * w[c, m, p]. Computed as phases
// z[n, m, q0, p0, .., p_last, q_last] — a plain reduction, vectorized along q_last with the
// weights broadcast — then interleaved into y. Returns an undefined tensor when it does not apply.
Tensor nonoverlapping_transpose(const Tensor& x, const Tensor& w, const ConvTerms& terms, const TransposeWindow& tw,
                                const std::vector<int64_t>& kernel, int64_t group, const std::string& name) {
  size_t n = kernel.size();
  if (group != 1 || n == 0) return Tensor();
  for (size_t d = 0; d < n; ++d)
    if (kernel[d] != tw.strides[d] || tw.dilations[d] != 1 || tw.pad_begin[d] != 0 ||
        tw.out[d] != x.dim(2 + d) * tw.strides[d])
      return Tensor();
  int64_t channels = x.dim(1), out_channels = w.dim(1);
  // Phase layout: q and p interleaved per axis, except the last axis, whose q goes innermost.
  Shape zshape{x.dim(0), out_channels};
  for (size_t d = 0; d + 1 < n; ++d) {
    zshape.push_back(x.dim(2 + d));
    zshape.push_back(tw.strides[d]);
  }
  zshape.push_back(tw.strides[n - 1]);
  zshape.push_back(x.dim(1 + n));
  tir::IterVar c = tir::reduce_axis(channels, name + "_rc");
  Tensor z = tir::compute_materialized(zshape, [&](const std::vector<Var>& i) {
    std::vector<Expr> xi{i[0], c.var}, wi{c.var, i[1]};
    for (size_t d = 0; d + 1 < n; ++d) {
      xi.push_back(i[2 + 2 * d]);
      wi.push_back(i[3 + 2 * d]);
    }
    xi.push_back(i[3 + 2 * (n - 1)]);
    wi.push_back(i[2 + 2 * (n - 1)]);
    Expr m = i[1];
    return tir::reduce(tir::ReduceOp::Sum, terms.x_value(x(xi), c.var) * terms.w_value(w(wi), m), {c},
                       terms.init ? terms.init(m) : tir::make_const(terms.acc, 0));
  }, name + "_phases");
  Shape out{x.dim(0), out_channels};
  out.insert(out.end(), tw.out.begin(), tw.out.end());
  return tir::compute(out, [&](const std::vector<Var>& i) {
    std::vector<Expr> zi{i[0], i[1]};
    for (size_t d = 0; d < n; ++d) {
      Expr q = floordiv(Expr(i[2 + d]), tw.strides[d]), p = floormod(Expr(i[2 + d]), tw.strides[d]);
      if (d + 1 < n) {
        zi.push_back(q);
        zi.push_back(p);
      } else {
        zi.push_back(p);
        zi.push_back(q);
      }
    }
    return z(zi);
  }, name);
}

// Gather form of the transposed convolution: y[n, m, o] = init(m) + sum_{c, k} x[n, g*Cg + c, q]
// * w[g*Cg + c, m mod Mg, k] over the taps k where t = o + pad - k*dilation is a multiple of the
// stride and q = t / stride is inside the input. Along an axis with stride s > 1 and no
// dilation only every s-th tap qualifies, k = (o + pad) mod s + s*j, so that axis reduces over
// j < ceil(K / s) rather than testing all K taps.
Tensor conv_transpose_sum(OpContext& ctx, const Tensor& x, const Tensor& w, const ConvTerms& terms,
                          const std::string& name) {
  check_ranks(ctx, x, w);
  int64_t in_channels = x.dim(1), out_per_group = w.dim(1);
  if (w.dim(0) != in_channels) ctx.error("weights ", shape_str(w.shape()), " do not match ", in_channels, " input channels");
  int64_t group = ctx.attr_int("group", 1);
  if (group < 1 || in_channels % group) ctx.error("group ", group, " does not divide ", in_channels, " input channels");
  int64_t group_channels = in_channels / group;
  Shape in = spatial_shape(x);
  std::vector<int64_t> kernel = kernel_extents(ctx, w);
  TransposeWindow tw = transpose_window(ctx, in, kernel);
  size_t n = in.size();
  std::vector<bool> phased(n);
  std::vector<int64_t> extents(n);
  for (size_t d = 0; d < n; ++d) {
    phased[d] = tw.strides[d] > 1 && tw.dilations[d] == 1;
    extents[d] = phased[d] ? (kernel[d] + tw.strides[d] - 1) / tw.strides[d] : kernel[d];
  }
  if (Tensor fast = nonoverlapping_transpose(x, w, terms, tw, kernel, group, name); fast.defined()) return fast;
  Shape out{x.dim(0), out_per_group * group};
  out.insert(out.end(), tw.out.begin(), tw.out.end());
  return tir::compute(out, [&](const std::vector<Var>& i) {
    ConvAxes axes = conv_axes(group_channels, extents, name);
    Expr m = i[1];
    Expr c = group == 1 ? Expr(axes.channel.var) : floordiv(m, out_per_group) * group_channels + axes.channel.var;
    Expr m_in_group = group == 1 ? m : floormod(m, out_per_group);
    std::vector<Expr> xi{i[0], c}, taps;
    Expr inside;
    for (size_t d = 0; d < n; ++d) {
      Expr shifted = i[2 + d] + tw.pad_begin[d];
      Expr j = axes.kernel[d].var, tap = j, q, ok;
      int64_t s = tw.strides[d];
      if (phased[d]) {
        tap = floormod(shifted, s) + j * s;
        q = floordiv(shifted, s) - j;
        ok = tir::ge(q, 0) && tir::lt(q, in[d]);
        if (kernel[d] % s) {
          ok = ok && tir::lt(tap, kernel[d]);
          tap = tir::min(tap, kernel[d] - 1);
        }
      } else {
        Expr t = shifted - j * tw.dilations[d];
        q = s == 1 ? t : floordiv(t, s);
        ok = tir::ge(t, 0) && tir::lt(q, in[d]);
        if (s != 1) ok = ok && tir::eq(floormod(t, s), 0);
      }
      inside = inside.defined() ? (inside && ok) : ok;
      xi.push_back(tir::max(0, tir::min(in[d] - 1, q)));
      taps.push_back(tap);
    }
    Expr xv = tir::select(inside, terms.x_value(x(xi), c), tir::make_const(terms.acc, 0));
    Expr wv = terms.w_value(w(weight_index(c, m_in_group, taps)), m);
    return reduction(terms, xv * wv, axes, m);
  }, name);
}

std::vector<Tensor> conv(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  ConvTerms terms = float_terms(ctx, x.dtype(), 2);
  DType result = product_dtype(ctx, x.dtype());
  std::string name = ctx.out_name() + (terms.acc == result ? "" : "_acc");
  return {cast_stage(conv_sum(ctx, x, ctx.input(1), terms, name), result, ctx.out_name())};
}

std::vector<Tensor> conv_transpose(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  ConvTerms terms = float_terms(ctx, x.dtype(), 2);
  DType result = product_dtype(ctx, x.dtype());
  std::string name = ctx.out_name() + (terms.acc == result ? "" : "_acc");
  return {cast_stage(conv_transpose_sum(ctx, x, ctx.input(1), terms, name), result, ctx.out_name())};
}

std::vector<Tensor> conv_integer(OpContext& ctx) {
  return {conv_sum(ctx, ctx.input(0), ctx.input(1), integer_terms(ctx, 2, 3), ctx.out_name())};
}

// Whether an 8-bit convolution's int32 sums can run as f32 arithmetic, exactly: each term
// (x - zx) * (w - zw) is at most 255 * 255 in magnitude, so with fewer than 2^24 / 255^2 = 258
// terms per output every partial sum is an integer below 2^24, which f32 holds exactly (the
// bias, possibly larger, is added in int32 afterwards). Taken only where the int8 tile
// kernels do not apply (their K, a group's channels, must fill 64-byte tile rows): the C = 3
// stem and depthwise convolutions, which otherwise run as i32 vector code (vpmulld) at a
// fraction of the f32 FMA rate.
bool exact_in_f32(const Tensor& x, const Tensor& w) {
  int64_t terms = w.dim(1);
  for (int64_t d = 2; d < w.ndim(); ++d) terms *= w.dim(d);
  bool bytes = dtype_bytes(x.dtype()) == 1 && dtype_bytes(w.dtype()) == 1;
  return bytes && terms * 255 * 255 < (int64_t(1) << 24) && w.dim(1) % 64 != 0;
}

// QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B): integer convolution plus
// the int32 bias, rescaled by x_scale * w_scale[m] / y_scale and requantized.
std::vector<Tensor> qlinear_conv(OpContext& ctx) {
  ConvTerms terms = integer_terms(ctx, 2, 5);
  const Tensor& x = ctx.input(0);
  bool f32 = exact_in_f32(x, ctx.input(3));
  Tensor terms_x = x;  // what the window reads
  if (f32) {  // the same integer terms, converted to f32
    // x - zx converted once per input element, into the padded copy where there is one (zero
    // in the padding), rather than at every multiply of the window: the stem's 7x7 window
    // reads each element 49 / 4 times on average.
    terms_x = tir::compute(x.shape(), [&, x_i32 = terms.x_value](const std::vector<Var>& i) {
      return tir::cast(DType::F32, x_i32(x(i), i[1]));
    }, ctx.out_name() + "_x_f32");
    terms.acc = DType::F32;
    terms.x_value = [](Expr v, Expr) { return v; };
    terms.w_value = [w_i32 = terms.w_value](Expr w, Expr m) { return tir::cast(DType::F32, w_i32(w, m)); };
    terms.pad = tir::make_const(DType::F32, 0);
  } else if (ctx.has_input(8)) {
    terms.init = [&ctx](Expr m) { return cast_if_needed(DType::I32, ctx.input(8)(m)); };
  }
  Tensor acc = conv_sum(ctx, terms_x, ctx.input(3), terms, ctx.out_name() + "_acc");
  const Tensor& y_zp = ctx.input(7);
  return {tir::compute(acc.shape(), [&](const std::vector<Var>& i) {
    Expr m = i[1];
    Expr scale = cast_if_needed(DType::F32, quant_param(ctx, ctx.input(1), 0)) *
                 cast_if_needed(DType::F32, quant_param(ctx, ctx.input(4), m)) /
                 cast_if_needed(DType::F32, quant_param(ctx, ctx.input(6), 0));
    Expr sum = f32 ? tir::cast(DType::I32, acc(i)) : acc(i);
    if (f32 && ctx.has_input(8)) sum = sum + cast_if_needed(DType::I32, ctx.input(8)(m));
    return quantize(tir::cast(DType::F32, sum) * scale, quant_param(ctx, y_zp, 0), y_zp.dtype());
  }, ctx.out_name())};
}

}  // namespace

void register_conv(Registry& r) {
  r.add("Conv", conv);
  r.add("ConvTranspose", conv_transpose);
  r.add("ConvInteger", conv_integer);
  r.add("QLinearConv", qlinear_conv);
}

}  // namespace kiln::ops
