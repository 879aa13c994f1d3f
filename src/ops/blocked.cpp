// Operators on the channel-blocked layout (ops/blocked_layout.h): a tensor N, C, H, W stored as
// [N, C / 16, H * W, 16], sixteen channels contiguous per pixel. Convolutions that produce it
// keep a register tile of pixels x 16 channels and store each pixel's channels as whole
// vectors (in N, C, H, W those channels lie H * W apart and are stored lane by lane);
// depthwise convolutions and pools read it with vector loads along the channels.
//
// These operators are internal: only the layout pass creates them (domain kiln.internal).
// Their attributes: `channels` and `spatial` (H, W) of every blocked input, `blocked_in` /
// `blocked_out` for convolutions, which take and make either layout; the window attributes
// are the ONNX operator's own.
#include "ops/blocked.h"
#include "ops/registry.h"

namespace kiln::ops {

Plane blocked_plane(const OpContext& ctx, const Tensor& x) {
  std::vector<int64_t> spatial = ctx.attr_ints("spatial");
  int64_t channels = ctx.attr_int("channels", 0);
  if (spatial.size() != 2 || x.ndim() != 4 || x.dim(3) != kChannelBlock || x.dim(1) * kChannelBlock != channels ||
      x.dim(2) != spatial[0] * spatial[1])
    ctx.error("blocked input ", shape_str(x.shape()), " does not match channels ", channels, " and spatial ",
              shape_str(spatial));
  return {channels, spatial[0], spatial[1]};
}

namespace {

// Coordinates of a padded copy's element in the plane, clamped into it (so the guarded read
// never leaves the buffer), and whether the element lies inside.
struct PaddedAt {
  Expr h, w, inside;
};
using PaddedSource = std::function<Expr(const std::vector<Var>& i, const PaddedAt& at)>;

// A padded blocked copy [N, blocks, Hp, Wp, 16] of a plane: `source` where the element is
// inside, `pad` elsewhere; read back in padded coordinates.
BlockedRead padded_copy(int64_t batch, int64_t blocks, const Plane& p, const Window& win, const Expr& pad,
                        const PaddedSource& source, const std::string& name, Tensor* keep) {
  int64_t hp = p.height + win.pad_begin[0] + win.pad_end[0], wp = p.width + win.pad_begin[1] + win.pad_end[1];
  *keep = tir::compute_materialized({batch, blocks, hp, wp, kChannelBlock}, [&](const std::vector<Var>& i) {
    Expr h = Expr(i[2]) - win.pad_begin[0], w = Expr(i[3]) - win.pad_begin[1];
    PaddedAt at{tir::max(0, tir::min(p.height - 1, h)), tir::max(0, tir::min(p.width - 1, w)),
                tir::ge(h, 0) && tir::lt(h, p.height) && tir::ge(w, 0) && tir::lt(w, p.width)};
    return source(i, at);
  }, name);
  Tensor padded = *keep;
  return [padded](Expr n, Expr cb, Expr h, Expr w, Expr l) { return padded(std::vector<Expr>{n, cb, h, w, l}); };
}

}  // namespace

BlockedRead padded_blocked(const Tensor& x, const Plane& p, const Window& win, const Expr& pad,
                           const std::string& name, Tensor* keep) {
  bool any = false;
  for (int d = 0; d < 2; ++d) any |= win.may_underflow(d) || win.may_overflow(d);
  if (!any)
    return [x, p](Expr n, Expr cb, Expr h, Expr w, Expr l) { return x(std::vector<Expr>{n, cb, h * p.width + w, l}); };
  return padded_copy(x.dim(0), x.dim(1), p, win, pad, [&](const std::vector<Var>& i, const PaddedAt& at) {
    return tir::select(at.inside, x(std::vector<Expr>{i[0], i[1], at.h * p.width + at.w, i[4]}), pad);
  }, name, keep);
}

BlockedRead padded_blocked_from_plain(const Tensor& x, const Plane& p, const Window& win, const std::string& name,
                                      Tensor* keep) {
  Expr zero = tir::make_const(x.dtype(), 0);
  int64_t blocks = channel_blocks(p.channels);
  return padded_copy(x.dim(0), blocks, p, win, zero, [&](const std::vector<Var>& i, const PaddedAt& at) {
    Expr c = Expr(i[1]) * kChannelBlock + i[4];
    return tir::select(at.inside && tir::lt(c, p.channels),
                       x(std::vector<Expr>{i[0], tir::min(c, p.channels - 1), at.h, at.w}), zero);
  }, name, keep);
}

Expr blocked_element(const Tensor& x, const Expr& n, const Expr& c, const Expr& h, const Expr& w, int64_t width) {
  return x(std::vector<Expr>{n, floordiv(c, kChannelBlock), h * width + w, floormod(c, kChannelBlock)});
}

Expr tap(const Window& win, int d, const Expr& o, const Expr& k) { return o * win.strides[d] + k * win.dilations[d]; }

namespace {

using Idx = std::vector<Expr>;

bool is_strided_pointwise(const Window& win) {
  for (int d = 0; d < 2; ++d)
    if (win.kernel[d] != 1 || win.pad_begin[d] || win.pad_end[d]) return false;
  return win.strides[0] > 1 || win.strides[1] > 1;
}

// kiln.ConvBlocked(x, w[, b]): a float Conv (2-D, group 1 or depthwise) whose input and output
// are each blocked or plain as the attributes say. The weights are relaid per output-channel
// block, [K/16, C.., KH, KW, (16 input channels,) 16] contiguous along the reduction; as a
// constant-only stage the compiler fills that copy once at compile time.
Tensor conv_blocked(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  bool in_blocked = ctx.attr_int("blocked_in", 0) != 0, out_blocked = ctx.attr_int("blocked_out", 0) != 0;
  if (x.dtype() != DType::F32 || w.dtype() != DType::F32 || w.ndim() != 4) ctx.error("expects f32 input and 4-D f32 weights");
  Plane p = in_blocked ? blocked_plane(ctx, x) : Plane{x.dim(1), x.dim(2), x.dim(3)};
  if (!in_blocked && x.ndim() != 4) ctx.error("plain input must be N, C, H, W");
  int64_t out_channels = w.dim(0), group = ctx.attr_int("group", 1);
  bool depthwise = group > 1;
  if ((depthwise && (group != p.channels || out_channels != p.channels || w.dim(1) != 1 || !in_blocked || !out_blocked)) ||
      (!depthwise && (group != 1 || w.dim(1) != p.channels)) || ((out_blocked || !in_blocked) && out_channels % kChannelBlock))
    ctx.error("weights ", shape_str(w.shape()), " and group ", group, " do not fit ", p.channels, " input channels");
  Window win = sliding_window(ctx, {p.height, p.width}, {w.dim(2), w.dim(3)});
  for (int d = 0; d < 2; ++d)
    if (win.dilations[d] != 1) ctx.error("dilated windows are not blocked");
  std::string name = ctx.out_name();
  Expr zero = tir::make_const(DType::F32, 0);
  Tensor keep, plain_padded;
  BlockedRead read_blocked;
  if (in_blocked && is_strided_pointwise(win)) {
    // A strided 1x1 convolution (ResNet's downsampling) reads a subsampled copy of its input
    // (a quarter of it at stride 2), so that a register tile's pixels are adjacent rows of the
    // copy: ResNet-50's six such convs took 14.1-15.4 ms instead of 16.1-16.7 ms (profiles of
    // alternating runs).
    keep = tir::compute_materialized({x.dim(0), x.dim(1), win.out[0] * win.out[1], kChannelBlock},
                                     [&](const std::vector<Var>& i) {
      Expr h = floordiv(Expr(i[2]), win.out[1]) * win.strides[0], col = floormod(Expr(i[2]), win.out[1]) * win.strides[1];
      return x(Idx{i[0], i[1], h * p.width + col, i[3]});
    }, name + "_subsampled");
    p.height = win.out[0], p.width = win.out[1];
    win.in = win.out;
    win.strides = {1, 1};
  }
  if (in_blocked) read_blocked = padded_blocked(keep.defined() ? keep : x, p, win, zero, name + "_padded", &keep);
  else plain_padded = pad_input(x, win, Expr(), name + "_padded");
  int64_t kh = w.dim(2), kw = w.dim(3), cb_count = p.channels / kChannelBlock;
  int64_t out_pixels = win.out[0] * win.out[1];
  auto init = [&](const Expr& m) { return ctx.has_input(2) ? ctx.input(2)(m) : zero; };

  auto at = [&](const std::vector<Var>& i, int d) {
    return d == 0 ? floordiv(Expr(i[2]), win.out[1]) : floormod(Expr(i[2]), win.out[1]);
  };
  // The result from blocked products (products(with_bias, stage name)): those, with the bias,
  // for a blocked output; for a plain one, a blocked scratch converted once, the bias added in
  // the conversion, where the epilogue fuses.
  auto finish = [&](const std::function<Tensor(bool, const std::string&)>& products) {
    if (out_blocked) return products(true, name);
    Tensor acc = products(false, name + "_blocked");
    return tir::compute({x.dim(0), out_channels, win.out[0], win.out[1]}, [&](const std::vector<Var>& i) {
      return blocked_element(acc, i[0], i[1], i[2], i[3], win.out[1]) + init(i[1]);
    }, name);
  };
  if (in_blocked && !depthwise && (out_blocked || out_channels >= kChannelBlock)) {
    // Products over whole blocks of output channels with whole-vector stores. A plain output
    // takes them from a blocked scratch, its channels padded to whole blocks with zero weights,
    // through one conversion where the epilogue fuses: storing each pixel's channels lane by
    // lane into the plain layout (H * W apart) cost more than the padded products (MobileNetV2's
    // two 24-channel projections went from 0.35-0.37 and 0.24 ms to 0.22-0.26 and 0.16-0.18 ms
    // at 2 threads).
    int64_t blocks = channel_blocks(out_channels);
    bool padded = blocks * kChannelBlock != out_channels;
    Tensor wb = tir::compute_materialized({blocks, cb_count, kh, kw, kChannelBlock, kChannelBlock},
                                          [&](const std::vector<Var>& i) {
      Expr k = Expr(i[0]) * kChannelBlock + i[5];
      Expr v = w(Idx{padded ? tir::min(k, out_channels - 1) : k, Expr(i[1]) * kChannelBlock + i[4], i[2], i[3]});
      return padded ? tir::select(tir::lt(k, out_channels), v, zero) : v;
    }, name + "_wblocked");
    auto products = [&](bool with_bias, const std::string& stage) {
      return tir::compute({x.dim(0), blocks, out_pixels, kChannelBlock}, [&](const std::vector<Var>& i) {
        auto cb = tir::reduce_axis(cb_count, name + "_rcb"), r = tir::reduce_axis(kh, name + "_rk0"),
             s = tir::reduce_axis(kw, name + "_rk1"), cl = tir::reduce_axis(kChannelBlock, name + "_rcl");
        Expr xv = read_blocked(i[0], cb.var, tap(win, 0, at(i, 0), r.var), tap(win, 1, at(i, 1), s.var), cl.var);
        return tir::reduce(tir::ReduceOp::Sum, xv * wb(Idx{i[1], cb.var, r.var, s.var, cl.var, i[3]}), {cb, r, s, cl},
                           with_bias ? init(Expr(i[1]) * kChannelBlock + i[3]) : zero);
      }, stage);
    };
    return finish(products);
  }
  if (in_blocked && !out_blocked) {
    // Plain output from a blocked input, fewer than 16 channels: one reduction per element.
    return tir::compute({x.dim(0), out_channels, win.out[0], win.out[1]}, [&](const std::vector<Var>& i) {
      auto cb = tir::reduce_axis(cb_count, name + "_rcb"), r = tir::reduce_axis(kh, name + "_rk0"),
           s = tir::reduce_axis(kw, name + "_rk1"), cl = tir::reduce_axis(kChannelBlock, name + "_rcl");
      Expr xv = read_blocked(i[0], cb.var, tap(win, 0, i[2], r.var), tap(win, 1, i[3], s.var), cl.var);
      Expr wv = w(Idx{i[1], Expr(cb.var) * kChannelBlock + cl.var, r.var, s.var});
      return tir::reduce(tir::ReduceOp::Sum, xv * wv, {cb, r, s, cl}, init(i[1]));
    }, name);
  }
  Shape out{x.dim(0), out_channels / kChannelBlock, out_pixels, kChannelBlock};
  if (depthwise) {
    Tensor wd = tir::compute_materialized({out_channels / kChannelBlock, kh, kw, kChannelBlock}, [&](const std::vector<Var>& i) {
      return w(Idx{Expr(i[0]) * kChannelBlock + i[3], 0, i[1], i[2]});
    }, name + "_wblocked");
    return tir::compute(out, [&](const std::vector<Var>& i) {
      auto r = tir::reduce_axis(kh, name + "_rk0"), s = tir::reduce_axis(kw, name + "_rk1");
      Expr xv = read_blocked(i[0], i[1], tap(win, 0, at(i, 0), r.var), tap(win, 1, at(i, 1), s.var), i[3]);
      return tir::reduce(tir::ReduceOp::Sum, xv * wd(Idx{i[1], r.var, s.var, i[3]}), {r, s},
                         init(Expr(i[1]) * kChannelBlock + i[3]));
    }, name);
  }
  Tensor wb = tir::compute_materialized({out_channels / kChannelBlock, p.channels, kh, kw, kChannelBlock}, [&](const std::vector<Var>& i) {
    return w(Idx{Expr(i[0]) * kChannelBlock + i[4], i[1], i[2], i[3]});
  }, name + "_wblocked");
  auto products = [&](bool with_bias, const std::string& stage) {
    return tir::compute(out, [&](const std::vector<Var>& i) {
      auto c = tir::reduce_axis(p.channels, name + "_rc"), r = tir::reduce_axis(kh, name + "_rk0"),
           s = tir::reduce_axis(kw, name + "_rk1");
      Expr xv = plain_padded(Idx{i[0], c.var, tap(win, 0, at(i, 0), r.var), tap(win, 1, at(i, 1), s.var)});
      return tir::reduce(tir::ReduceOp::Sum, xv * wb(Idx{i[1], c.var, r.var, s.var, i[3]}), {c, r, s},
                         with_bias ? init(Expr(i[1]) * kChannelBlock + i[3]) : zero);
    }, stage);
  };
  // Plain in and out: the layout pass's choice for a convolution that writes a model output.
  return finish(products);
}

// kiln.PoolBlocked(x): MaxPool, AveragePool (no padding, or count_include_pad) or their
// global forms (attribute `pool`) over a blocked input, vectorized along the 16 channels.
Tensor pool_blocked(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::F32) ctx.error("expects an f32 input");
  Plane p = blocked_plane(ctx, x);
  std::string kind = ctx.attr_string("pool", "");
  bool global = kind.starts_with("Global"), max = kind.ends_with("MaxPool");
  Window win;
  if (global) {
    win.in = win.kernel = {p.height, p.width};
    win.strides = win.dilations = win.out = {1, 1};
    win.pad_begin = win.pad_end = {0, 0};
  } else {
    win = sliding_window(ctx, {p.height, p.width}, ctx.attr_ints("kernel_shape"), ctx.attr_int("ceil_mode", 0) != 0);
  }
  for (int d = 0; d < 2; ++d)
    if (win.dilations[d] != 1) ctx.error("dilated windows are not blocked");
  std::string name = ctx.out_name();
  Expr pad = max ? tir::min_value(DType::F32) : tir::make_const(DType::F32, 0);
  Tensor keep;
  BlockedRead read = padded_blocked(x, p, win, pad, name + "_padded", &keep);
  Shape out{x.dim(0), x.dim(1), win.out[0] * win.out[1], kChannelBlock};
  Tensor reduced = tir::compute(out, [&](const std::vector<Var>& i) {
    auto r = tir::reduce_axis(win.kernel[0], name + "_rk0"), s = tir::reduce_axis(win.kernel[1], name + "_rk1");
    Expr h = floordiv(Expr(i[2]), win.out[1]), w = floormod(Expr(i[2]), win.out[1]);
    Expr v = read(i[0], i[1], tap(win, 0, h, r.var), tap(win, 1, w, s.var), i[3]);
    return tir::reduce(max ? tir::ReduceOp::Max : tir::ReduceOp::Sum, v, {r, s});
  }, max ? name : name + "_sum");
  if (max) return reduced;
  double divisor = double(win.kernel[0] * win.kernel[1]);
  return tir::compute(out, [&](const std::vector<Var>& i) { return reduced(i) / tir::make_const(DType::F32, divisor); },
                      name);
}

// kiln.FromBlocked(x): the plain N, C, H, W tensor.
Tensor from_blocked(OpContext& ctx) {
  const Tensor& x = ctx.input(0);
  Plane p = blocked_plane(ctx, x);
  return tir::compute({x.dim(0), p.channels, p.height, p.width}, [&](const std::vector<Var>& i) {
    return blocked_element(x, i[0], i[1], i[2], i[3], p.width);
  }, ctx.out_name());
}

}  // namespace

void register_blocked(Registry& r) {
  r.add_internal("ConvBlocked", single(conv_blocked));
  r.add_internal("ConvWinograd", single(conv_winograd));
  r.add_internal("PoolBlocked", single(pool_blocked));
  r.add_internal("FromBlocked", single(from_blocked));
}

}  // namespace kiln::ops
