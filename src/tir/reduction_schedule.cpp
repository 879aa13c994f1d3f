#include "tir/reduction_schedule.h"
#include "tir/schedule.h"
#include "tir/tile_schedule.h"

#include <optional>
#include <set>

#include "kiln/error.h"
#include "tir/affine.h"
#include "tir/simplify.h"

namespace kiln::tir {

namespace {

constexpr int64_t kMaxRowAccumulatorBytes = 16 * 1024;

struct Range {
  int64_t lo, hi;
  int64_t extent() const { return hi - lo; }
};

Expr combine(ReduceOp op, const Expr& acc, const Expr& v) {
  switch (op) {
    case ReduceOp::Sum: return acc + v;
    case ReduceOp::Prod: return acc * v;
    case ReduceOp::Max: return max(acc, v);
    case ReduceOp::Min: return min(acc, v);
  }
  return Expr();
}

Stmt loop(const Var& v, int64_t lo, int64_t hi, Stmt body, ForKind k = ForKind::Serial) {
  return make_for(v, make_int(lo), make_int(hi - lo), k, std::move(body));
}

// The loops of `r`'s axes around `body`, outermost first; `first_min` / `first_extent`, when
// given, restrict the first axis to one cache block.
Stmt reduce_loops(const ReduceNode* r, Stmt body, int64_t max_rolled = 0, Expr first_min = Expr(),
                  int64_t first_extent = 0) {
  for (int i = int(r->axes.size()) - 1; i >= 0; --i) {
    int64_t ext = i == 0 && first_min.defined() ? first_extent : r->axes[i].extent;
    Expr lo = i == 0 && first_min.defined() ? first_min : make_int(0);
    body = make_for(r->axes[i].var, lo, make_int(ext), ext <= max_rolled ? ForKind::Rolled : ForKind::Serial, body);
  }
  return body;
}

// Reduction loops this short around a register tile stay loops (ForKind::Rolled).
constexpr int64_t kMaxRolledTileLoop = 8;

// Plain nest: one scalar accumulator per output element.
// The stage being scheduled: `axes` are the loop axes (the output axes, or with the two
// innermost fused into one), `out` the destination index in terms of them.
struct Nest {
  Buffer dst;
  std::vector<Var> axes;
  std::vector<Expr> out;
  const ReduceNode* r;
  std::shared_ptr<const ReduceNode> owned;  // r, when scheduling rewrote it (axis fusion)
  Epilogue epilogue;                        // in terms of `axes`

  // The value stored for an output whose reduction result is `acc`.
  Expr stored(const Expr& acc) const {
    if (!epilogue.value.defined()) return acc;
    return substitute(epilogue.value, {{epilogue.result.as<VarNode>(), acc}});
  }
};

// Whether every load of `body` reads along `axis` with unit stride in its last dimension or
// not at all: vector loads, no gathers.
bool contiguous_along(const Expr& body, const Var& axis) {
  bool ok = true;
  const VarNode* v = axis.as<VarNode>();
  visit(body, [&](const Expr& e) {
    if (e.kind() != ExprKind::Load) return;
    const auto& idx = e.as<LoadNode>()->indices;
    for (size_t d = 0; d < idx.size(); ++d) {
      std::optional<int64_t> c = coefficient(idx[d], v);
      ok &= c.has_value() && (*c == 0 || (*c == 1 && d + 1 == idx.size()));
    }
  });
  return ok;
}

// Partial results in vector lanes along the innermost reduction axis, when every load reads
// it contiguously (a row's sum or max: Softmax, LayerNorm, ReduceMean over the last axis):
// `vectors` independent vector accumulators instead of one scalar chain, whose latency
// (4 cycles an add) bounded these reductions, folded into the result after the loop. Max and
// min give the same result in any order; f32 sums are reassociated (each output's result
// may change within rounding, as in any vectorized sum). Softmax over [12, 128, 128] at 1
// thread: 0.62 -> 0.26 ms; BERT-base's LayerNorm kernels 6.9 -> 2.9 ms in all. Null when the
// reduction does not qualify.
Stmt lane_reduction(const Nest& n, const std::vector<Range>& ranges, int64_t lanes) {
  const ReduceNode* r = n.r;
  const IterVar& k = r->axes.back();
  bool reorderable = r->op == ReduceOp::Max || r->op == ReduceOp::Min ||
                     (r->op == ReduceOp::Sum && r->dtype == DType::F32);
  if (!reorderable || dtype_bytes(r->dtype) != 4 || k.extent < 2 * lanes || !contiguous_along(r->body, k.var))
    return nullptr;
  // Enough vectors to hide the combine's latency, while the fold after the loop stays short.
  int64_t vectors = std::clamp<int64_t>(k.extent / (4 * lanes), 1, 4), step = vectors * lanes;
  int64_t main = k.extent / step * step;
  Buffer part = make_buffer(n.dst->name + "_lanes", r->dtype, {step});
  Buffer acc = make_buffer(n.dst->name + "_acc", r->dtype, {});
  Var ko(k.var.name() + "_o"), vec(k.var.name() + "_v"), lane(k.var.name() + "_l");
  Expr slot = Expr(vec) * make_int(lanes) + lane;
  auto over_lanes = [&](Stmt s) {
    return make_for(vec, make_int(0), make_int(vectors), ForKind::Unrolled,
                    make_for(lane, make_int(0), make_int(lanes), ForKind::Vectorized, s));
  };
  auto accumulate = [&](const Expr& at, const Expr& term) {
    return make_store(part, {at}, combine(r->op, load(part, {at}), term));
  };
  // Sums start every lane at zero and add the init once, in the fold; max and min may repeat it.
  Expr lane_init = r->op == ReduceOp::Sum ? make_const(r->dtype, 0) : r->init;
  Stmt update = loop(ko, 0, main / step, over_lanes(accumulate(slot, substitute(r->body, {{k.var.as<VarNode>(), Expr(ko) * make_int(step) + slot}}))));
  if (main < k.extent)
    update = make_seq({update, make_for(k.var, make_int(main), make_int(k.extent - main), ForKind::Unrolled,
                                        accumulate(Expr(k.var) - make_int(main), r->body))});
  for (int i = int(r->axes.size()) - 2; i >= 0; --i) update = loop(r->axes[i].var, 0, r->axes[i].extent, update);
  // The fold: the vectors into the first one lane by lane, then its lanes in order.
  Var t(k.var.name() + "_f");
  Stmt fold = make_seq(
      {make_for(vec, make_int(1), make_int(vectors - 1), ForKind::Unrolled,
                make_for(lane, make_int(0), make_int(lanes), ForKind::Vectorized,
                         make_store(part, {Expr(lane)}, combine(r->op, load(part, {Expr(lane)}), load(part, {slot}))))),
       make_store(acc, {}, r->init),
       make_for(t, make_int(0), make_int(lanes), ForKind::Unrolled,
                make_store(acc, {}, combine(r->op, load(acc, {}), load(part, {Expr(t)}))))});
  Stmt s = make_allocate(acc, make_allocate(part, make_seq({over_lanes(make_store(part, {slot}, lane_init)), update, fold,
                                                             make_store(n.dst, n.out, n.stored(load(acc, {})))})));
  for (int d = int(n.axes.size()) - 1; d >= 0; --d) s = loop(n.axes[d], ranges[d].lo, ranges[d].hi, s);
  return s;
}

Stmt scalar_reduction(const Nest& n, const std::vector<Range>& ranges) {
  const Buffer& dst = n.dst;
  const auto& axes = n.axes;
  const ReduceNode* r = n.r;
  Buffer acc = make_buffer(dst->name + "_acc", r->dtype, {});
  Stmt update = reduce_loops(r, make_store(acc, {}, combine(r->op, load(acc, {}), r->body)));
  const std::vector<Expr>& idx = n.out;
  Stmt s = make_allocate(acc, make_seq({make_store(acc, {}, r->init), update, make_store(dst, idx, n.stored(load(acc, {})))}));
  for (int d = int(axes.size()) - 1; d >= 0; --d) s = loop(axes[d], ranges[d].lo, ranges[d].hi, s);
  return s;
}

// Row accumulation over the innermost axis.
Stmt row_reduction(const Nest& n, const std::vector<Range>& ranges) {
  const Buffer& dst = n.dst;
  const auto& axes = n.axes;
  const ReduceNode* r = n.r;
  size_t last = axes.size() - 1;
  const Var& j = axes[last];
  Range jr = ranges[last];
  Buffer acc = make_buffer(dst->name + "_rowacc", r->dtype, {jr.extent()});
  Expr slot = Expr(j) - make_int(jr.lo);
  auto over_row = [&](Stmt s) { return loop(j, jr.lo, jr.hi, s); };
  Stmt init = over_row(make_store(acc, {slot}, r->init));
  Stmt update = reduce_loops(r, over_row(make_store(acc, {slot}, combine(r->op, load(acc, {slot}), r->body))));
  const std::vector<Expr>& idx = n.out;
  Stmt s = make_allocate(acc, make_seq({init, update, over_row(make_store(dst, idx, n.stored(load(acc, {slot}))))}));
  for (int d = int(last) - 1; d >= 0; --d) s = loop(axes[d], ranges[d].lo, ranges[d].hi, s);
  return s;
}

// A row accumulator when the outputs along the innermost axis are read contiguously, else
// vector lanes along the reduction when it qualifies, else one scalar chain per output.
Stmt rows_or_scalar(const Nest& n, const std::vector<Range>& ranges, int64_t lanes) {
  const ReduceNode* r = n.r;
  for (auto& rg : ranges)
    if (rg.extent() <= 0) return nullptr;
  int64_t terms = 1;
  for (auto& a : r->axes) terms *= a.extent;
  bool rows = !ranges.empty() && ranges.back().extent() >= 4 && terms >= 2 &&
              ranges.back().extent() * dtype_bytes(r->dtype) <= kMaxRowAccumulatorBytes;
  if (rows && contiguous_along(r->body, n.axes.back())) return row_reduction(n, ranges);
  if (Stmt s = lane_reduction(n, ranges, lanes)) return s;
  return rows ? row_reduction(n, ranges) : scalar_reduction(n, ranges);
}

// Packs larger than this stay unpacked (the copy would not pay for itself in cache).
// Sums whose accumulators fill 32-bit vector lanes: the register-tiled kinds.
bool vector_sum(const ReduceNode* r) {
  return r->op == ReduceOp::Sum && (r->dtype == DType::F32 || r->dtype == DType::I32);
}

// Reductions whose tiles keep their results in 32-bit vector registers: those sums, and
// maxima and minima (pools) of the same types.
bool register_tiled(const ReduceNode* r) {
  return vector_sum(r) ||
         ((r->op == ReduceOp::Max || r->op == ReduceOp::Min) && (r->dtype == DType::F32 || r->dtype == DType::I32));
}

constexpr int64_t kMaxPackedBytes = int64_t(64) << 20;
constexpr int64_t kL1PanelBytes = int64_t(32) << 10;
// Strips of rows under small weights (tiled_reduction): at most this much weight, and about
// this much of the rows' operand per strip (a quarter of a 512 KiB L2 each), where a panel
// would otherwise stream more than kStreamedBytes of rows. Below that the rows come from L3
// and the panel-outer order was faster: a plain 1x1 256->64 convolution over 56x56 pixels
// (3.2 MB of input) took 2.5-3.2 ms in strips against 1.9-2.3 ms.
constexpr int64_t kStripPanelsBytes = int64_t(128) << 10;
constexpr int64_t kStripBytes = int64_t(128) << 10;
constexpr int64_t kStreamedBytes = int64_t(4) << 20;

// A load the tile can pack: it varies along the vector axis `vi` and the reduction only (so
// one copy serves every other output), and the copy is not too large.
Expr packable_load(const Nest& n, size_t vi) {
  Expr found;
  const VarNode* vec = n.axes[vi].as<VarNode>();
  std::set<const VarNode*> allowed{vec};
  for (auto& a : n.r->axes) allowed.insert(a.var.as<VarNode>());
  visit(n.r->body, [&](const Expr& e) {
    if (found.defined() || e.kind() != ExprKind::Load) return;
    auto l = e.as<LoadNode>();
    bool ok = true, inner = false, reduce = false;
    for (auto& i : l->indices)
      visit(i, [&](const Expr& x) {
        if (x.kind() != ExprKind::Var) return;
        const VarNode* v = x.as<VarNode>();
        ok &= allowed.count(v) > 0;
        inner |= v == vec;
        reduce |= v != vec;
      });
    int64_t bytes = shape_numel(l->buffer->shape) * dtype_bytes(l->dtype);
    if (ok && inner && reduce && bytes <= kMaxPackedBytes) found = e;
  });
  return found;
}

// The operand every row of a tile shares (a matmul's B, a convolution's weights) copied into
// panels of vj neighbouring outputs of the vector axis, contiguous along the reduction: the
// reduction loop then streams one panel instead of striding across rows. `index` addresses
// the panel with placeholders J0 (the panel) and JJ (the position in it) that each tile
// replaces with its own variables.
struct Panels {
  Expr shared;  // the load the panels replace
  Buffer packed;
  std::vector<Expr> index;
  Var j0, jj;  // the placeholders
  Stmt fill;
};

// The widest subexpression of `e` around the load `shared` that reads constants only, through
// the variables `allowed`: the operand as the products use it (f32(i32(w) - zw[m]) for an
// 8-bit convolution summed in f32), which the panels then hold converted, at compile time,
// instead of converting it in the reduction loop at every multiply. `shared` itself when
// nothing around it qualifies.
Expr constant_operand(const Expr& e, const Expr& shared, const std::set<const VarNode*>& allowed,
                      const BufferSet& constants) {
  bool contains = false, only_constants = true;
  visit(e, [&](const Expr& x) {
    contains |= x.same_as(shared);
    if (x.kind() == ExprKind::Load) only_constants &= constants.count(x.as<LoadNode>()->buffer.get()) > 0;
    if (x.kind() == ExprKind::Var) only_constants &= allowed.count(x.as<VarNode>()) > 0;
  });
  if (!contains) return Expr();
  if (only_constants) return e;
  Expr found;
  auto try_child = [&](const Expr& c) {
    if (!found.defined() && c.defined()) found = constant_operand(c, shared, allowed, constants);
  };
  switch (e.kind()) {
    case ExprKind::Binary: try_child(e.as<BinaryNode>()->a); try_child(e.as<BinaryNode>()->b); break;
    case ExprKind::Cast: try_child(e.as<CastNode>()->a); break;
    default: break;
  }
  return found.defined() ? found : shared;
}

Panels make_panels(const Nest& n, size_t vi, Range cols, int64_t vj, const BufferSet& constants) {
  Panels p;
  p.shared = packable_load(n, vi);
  if (!p.shared.defined()) return p;
  if (constants.count(p.shared.as<LoadNode>()->buffer.get())) {
    std::set<const VarNode*> allowed{n.axes[vi].as<VarNode>()};
    for (auto& a : n.r->axes) allowed.insert(a.var.as<VarNode>());
    p.shared = constant_operand(n.r->body, p.shared, allowed, constants);
  }
  const ReduceNode* r = n.r;
  p.j0 = Var("J0");
  p.jj = Var("JJ");
  Shape shape{cols.extent() / vj};
  p.index = {p.j0};
  for (auto& a : r->axes) {
    shape.push_back(a.extent);
    p.index.push_back(a.var);
  }
  shape.push_back(vj);
  p.index.push_back(p.jj);
  p.packed = make_buffer(n.dst->name + "_packed", p.shared.dtype(), shape);
  Var pj0("pack_o"), pjj("pack_t");
  std::vector<Expr> at{pj0};
  for (auto& a : r->axes) at.push_back(a.var);
  at.push_back(pjj);
  Expr value = substitute(p.shared, {{n.axes[vi].as<VarNode>(), Expr(pj0) * make_int(vj) + pjj + make_int(cols.lo)}});
  p.fill = loop(pj0, 0, shape.front(), reduce_loops(r, loop(pjj, 0, vj, make_store(p.packed, at, value))));
  return p;
}

// Cache blocking of a tiled reduction: the reduction's first axis runs in blocks of `chunk`,
// so that a panel's block (chunk x vj) is small, and with the innermost axis as vector axis
// the panels run in groups of `panels_per_group` whose blocks stay in L2 while every row tile
// streams through them with its own operand rows in L1. Partial sums go through the
// destination between reduction blocks; each output's terms keep their order.
struct Blocking {
  int64_t chunk = 0;             // of r->axes[0]; 0: the whole reduction at once
  int64_t panels_per_group = 0;  // 0: all panels in one group
};

// A range of rows tiled `tile_rows` at a time (row_segments below).
struct RowSegment {
  Range rows;
  int64_t tile_rows;
};

// A tile whose vector axis is one vector wide (a channel-blocked layout's 16 lanes on AVX-512)
// that spans `count` neighbouring blocks of the outer axis `axis` instead (the output-channel
// blocks of NCHW16c): every row's operand (a pixel's input) is then broadcast once for `count`
// vectors of weights, and the tile holds rows x count accumulators instead of rows x 1.
// The loop over groups of blocks goes outside the row tiles (each group's weights serve every
// row in turn), or inside them (`inside`) when its few iterations would leave a thread idle:
// 9 blocks in 3 groups on 2 threads ran at 1.07x the 1-thread speed, the 522 row tiles split
// evenly instead. Only for weights this small: every row tile then reads all of them (a 1x1
// 960 -> 320 convolution over 7 x 7 pixels, 1.2 MB of weights, went from 0.105 to 0.153 ms).
constexpr int64_t kInsideWeightBytes = int64_t(256) << 10;
struct VectorBlocks {
  size_t axis = 0;
  int64_t count = 0;  // 0: none
  bool inside = false;
};

// Register tiles of `tile_rows` rows of blocked axis `bi` (per segment of its rows) by `vj`
// neighbouring outputs of vector axis `vi`, over ranges whose extent along vi is a multiple
// of vj (each segment's along bi a multiple of its tile rows), reading the shared operand from
// `panels` when they were made. With a vector axis other than the
// innermost (a convolution's output channels), the panel loop goes outermost so that one
// panel serves every other output in turn while it is in cache.
Stmt tiled_reduction(const Nest& n, const std::vector<Range>& ranges, size_t bi, size_t vi,
                     const std::vector<RowSegment>& segments, int64_t vj, int64_t lanes, const Panels& panels,
                     const Blocking& blocking, const VectorBlocks& blocks = {}) {
  const Buffer& dst = n.dst;
  const auto& axes = n.axes;
  const ReduceNode* r = n.r;
  size_t last = axes.size() - 1;
  int64_t panel_count = blocks.count ? 1 : ranges[vi].extent() / vj;
  int64_t first = r->axes[0].extent;
  bool kblocked = blocking.chunk > 0 && blocking.chunk < first;
  int64_t ppg = blocking.panels_per_group > 0 && blocking.panels_per_group < panel_count ? blocking.panels_per_group
                                                                                         : panel_count;
  Var kb(r->axes[0].var.name() + "_b"), jg(axes[vi].name() + "_g");
  Var i0(axes[bi].name() + "_o"), ii(axes[bi].name() + "_t");
  Var j0(axes[vi].name() + "_o"), jv(axes[vi].name() + "_v"), lane(axes[vi].name() + "_l");
  Var bo(blocks.count ? axes[blocks.axis].name() + "_o" : "unused");
  Expr jj = Expr(jv) * make_int(lanes) + lane;  // position in the tile row
  Expr panel = ppg < panel_count ? Expr(jg) * make_int(ppg) + j0 : Expr(j0);
  // With a vector axis other than the innermost (a convolution in the plain layout, its
  // weights in panels of output channels), weights small enough to stay in L2 and more than
  // kStreamedBytes of rows, the rows go in strips of about kStripBytes of their operand, each
  // strip passing under every panel while it is in L2; otherwise each panel in turn streams
  // all rows (plain 1x1 96->96 convolution over 150 x 150 pixels: 43.7 -> 14.0 ms at 1 thread).
  int64_t terms = 1, streamed = 4;  // bytes of the rows' operand that one panel streams
  for (auto& a : r->axes) terms *= a.extent;
  for (size_t d = 0; d <= last; ++d)
    if (d != vi) streamed *= ranges[d].extent();
  streamed *= terms;
  bool strips = vi != last && !kblocked && panel_count * vj * terms * 4 <= kStripPanelsBytes && streamed > kStreamedBytes;
  Var is(axes[bi].name() + "_s");
  // The tiles of one segment of rows, `seg.tile_rows` rows each: loop(i0) over the tile body
  // (over the group's panels and the tile body with `panels_inside`), or with `strips`,
  // loop(strip) over loop(panel) over the strip's tiles.
  auto segment_tiles = [&](const RowSegment& seg, bool panels_inside) {
    int64_t ri = seg.tile_rows, tiles = seg.rows.extent() / ri;
    int64_t strip = 0;  // tiles per strip: the largest divisor of `tiles` within kStripBytes
    if (strips)
      for (int64_t t = std::min(tiles, std::max<int64_t>(1, kStripBytes / (ri * terms * 4))); t >= 1 && !strip; --t)
        if (tiles % t == 0) strip = t;
    Expr tile_at = strip ? Expr(is) * make_int(strip) + i0 : Expr(i0);
    VarMap m;
    m[axes[bi].as<VarNode>()] = tile_at * make_int(ri) + ii + make_int(seg.rows.lo);
    if (blocks.count) {
      m[axes[vi].as<VarNode>()] = Expr(lane) + make_int(ranges[vi].lo);
      m[axes[blocks.axis].as<VarNode>()] = Expr(bo) * make_int(blocks.count) + jv + make_int(ranges[blocks.axis].lo);
    } else {
      m[axes[vi].as<VarNode>()] = panel * make_int(vj) + jj + make_int(ranges[vi].lo);
    }
    Expr body = r->body;
    if (panels.packed) {
      body = rewrite(body, [&](const Expr& e) { return e.same_as(panels.shared) ? load(panels.packed, panels.index) : e; });
      m[panels.j0.as<VarNode>()] = panel;
      m[panels.jj.as<VarNode>()] = jj;
    }
    body = substitute(body, m);
    Expr init = substitute(r->init, m);
    Buffer acc = make_buffer(dst->name + "_tile", r->dtype, {ri, vj});
    // Rows and vectors of the tile unrolled, lanes vectorized: every tile access has a constant
    // offset, so the tile lives in ri * vj / lanes vector registers.
    auto tile = [&](Stmt s) {
      return make_for(ii, make_int(0), make_int(ri), ForKind::Unrolled,
                      make_for(jv, make_int(0), make_int(vj / lanes), ForKind::Unrolled,
                               make_for(lane, make_int(0), make_int(lanes), ForKind::Vectorized, s)));
    };
    std::vector<Expr> idx = n.out;
    for (auto& e : idx) e = substitute(e, m);
    Stmt init_s = tile(make_store(acc, {ii, jj}, init));
    Stmt update = reduce_loops(r, tile(make_store(acc, {ii, jj}, combine(r->op, load(acc, {ii, jj}), body))),
                               kMaxRolledTileLoop, kblocked ? Expr(kb) * make_int(blocking.chunk) : Expr(),
                               blocking.chunk);
    Expr stored = n.stored(load(acc, {ii, jj}));
    Stmt store = tile(make_store(dst, idx, substitute(stored, m)));
    if (kblocked) {
      // Blocks after the first resume from the partial sums; all but the last store them raw.
      Stmt resume = tile(make_store(acc, {ii, jj}, load(dst, idx)));
      Stmt partial = tile(make_store(dst, idx, load(acc, {ii, jj})));
      init_s = make_if(eq(kb, make_int(0)), init_s, resume);
      store = make_if(eq(kb, make_int(first / blocking.chunk - 1)), store, partial);
    }
    Stmt s = make_allocate(acc, make_seq({init_s, update, store}));
    if (strip) return loop(is, 0, tiles / strip, loop(j0, 0, panel_count, loop(i0, 0, strip, s)));
    if (blocks.inside) return loop(i0, 0, tiles, loop(bo, 0, ranges[blocks.axis].extent() / blocks.count, s));
    return loop(i0, 0, tiles, panels_inside ? loop(j0, 0, ppg, s) : s);
  };
  auto kblock = [&](Stmt st) {
    // Rolled: the block loop carries the reduction, so it is neither unrolled nor parallel.
    return kblocked ? loop(kb, 0, first / blocking.chunk, st, ForKind::Rolled) : st;
  };
  auto outer_axes = [&](Stmt s) {
    for (int d = int(last); d >= 0; --d) {
      if (size_t(d) == bi || size_t(d) == vi || (blocks.inside && size_t(d) == blocks.axis)) continue;
      s = blocks.count && size_t(d) == blocks.axis ? loop(bo, 0, ranges[d].extent() / blocks.count, s)
                                                    : loop(axes[d], ranges[d].lo, ranges[d].hi, s);
    }
    return s;
  };
  // Every segment of rows inside one pass over the panels (or panel groups): the rows left
  // over by the full tiles find each panel still in cache instead of reading all of them from
  // memory again (BERT's 128-row products: 120 rows in 6-row tiles, 8 in 4-row ones).
  std::vector<Stmt> parts;
  for (auto& seg : segments) parts.push_back(vi != last ? outer_axes(segment_tiles(seg, false)) : segment_tiles(seg, true));
  Stmt s = make_seq(parts);
  if (strips) return s;
  if (vi != last) return kblock(loop(j0, 0, panel_count, s));
  if (ppg < panel_count) s = loop(jg, 0, panel_count / ppg, s);
  return outer_axes(kblock(s));
}

// Block sizes for a tile of `vj` lanes of 4 bytes. With the innermost vector axis (a GEMM):
// reduction blocks of about 512 terms (a 32 KiB panel block for 16 lanes) when the reduction
// is longer than two of them, and groups of panels whose blocks take at most 256 KiB. Against
// 256-term blocks, which store and reload the partial sums twice as often: GEMM 1024^3
// 28.1 -> 25.2 ms at 1 thread and 16.9 -> 15.2 ms at 2 (medians of 5-6 alternating rounds),
// ResNet-50 and MobileNetV2 unchanged. A reduction too short to block still runs its panels in
// groups when they do not fit in L2 together but the row operand (`rows` rows of the
// reduction's terms) does: each weight panel then comes from memory once, not once per row
// tile, and the rows that every group reads again come from L2. BERT-base's feed-forward
// 128x3072x768 products in the model (weights from DRAM): 12.4-18.7 -> 8.4-8.6 ms each at 1
// thread. With large row operands (GEMM 1024^3) groups were slower (30.1 -> 34.8 ms median at
// 1 thread): their rows then stream from L3 in page-sized runs. With
// another vector axis (a convolution's channels) the partial sums go through gathers and
// scatters, so blocks are larger (about 1024 terms) and taken only for longer reductions.
// Measured on the ResNet-50 layers and GEMM shapes of bench/ (AVX2, 32 KiB L1, 512 KiB L2).
// Tiles that span output blocks (VectorBlocks) take blocks of `block_terms` given by the caller.
// Blocked products whose block of rows exceeds L2 (`l2_bytes`, per core; the rows then stream
// from L3 once per group) take groups of up to a quarter of L2 where that is larger: GEMM
// 2048^3 at 1 thread on AVX-512 with 2 MiB of L2, 512 KiB groups against 256 KiB: 87-93
// against 92-98 ms in four alternating rounds (1024^3 unchanged). Shorter row blocks keep
// 256 KiB (BERT's 128-row products: 512 KiB was 2-4% slower on 128x3072x768).
Blocking plan_blocking(const ReduceNode* r, const Buffer& dst, size_t vi, size_t last, int64_t panels, int64_t vj,
                       int64_t rows, int64_t l2_bytes, int64_t block_terms = 0) {
  constexpr int64_t kGroupBytes = 256 * 1024, kL2Bytes = 512 * 1024;
  if (block_terms == 0) block_terms = vi == last ? 512 : 1024;
  Blocking b;
  int64_t first = r->axes[0].extent, inner = 1;
  for (size_t k = 1; k < r->axes.size(); ++k) inner *= r->axes[k].extent;
  if (!vector_sum(r) || dst->dtype != r->dtype) return b;
  // A GEMM's reduction of exactly two blocks is blocked too: unblocked, each row tile streams
  // every panel (1024 x 64 floats, 256 KiB each) from beyond L2, and 1024^3 ran at 83 GFLOP/s
  // (AVX-512, 1 thread; 26.1 -> 11.8 ms blocked).
  bool kblocked = vi == last ? first * inner >= 2 * block_terms : first * inner > 2 * block_terms;
  if (kblocked)
    for (int64_t c = first; c >= 1; --c)
      if (first % c == 0 && (c * inner <= block_terms || c == 1)) {
        b.chunk = c;
        break;
      }
  if (vi == last) {
    int64_t block_bytes = (kblocked ? b.chunk : first) * inner * vj * 4;
    bool rows_beyond_l2 = rows * (kblocked ? b.chunk : first) * inner * 4 > l2_bytes;
    int64_t group_bytes = kblocked && rows_beyond_l2 ? std::max(kGroupBytes, l2_bytes / 4) : kGroupBytes;
    int64_t max_panels = std::max<int64_t>(1, group_bytes / block_bytes);
    if (!kblocked && (max_panels >= panels || rows * first * inner * 4 > kL2Bytes)) return b;
    for (int64_t p = std::min(panels, max_panels); p >= 1; --p)
      if (panels % p == 0) {
        b.panels_per_group = p;
        break;
      }
  }
  return b;
}

// Rows of a tiled reduction in segments of equal tiles: ri-row tiles, then what is left. A tile
// needs about 8 accumulator vectors to cover the FMA's latency (4 cycles, 2 a cycle), so a
// remainder too short for that takes one ri-row tile with it and the two split evenly: 128
// rows with 2-vector tiles = 20 x 6 + 2 x 4 instead of 21 x 6 + 2 (a 2-row tile at half
// rate); a 7 x 7 convolution output, 49 = 7 x 6 + 4 + 3 instead of 8 x 6 + 1.

std::vector<RowSegment> row_segments(int64_t rows, int64_t ri, int64_t vectors) {
  int64_t full_rate_rows = std::min(ri, (8 + vectors - 1) / vectors);
  int64_t main = rows / ri * ri, rest = rows - main;
  if (rest > 0 && rest < full_rate_rows && main >= ri) {
    main -= ri;
    rest += ri;
  }
  std::vector<RowSegment> segs;
  if (main > 0) segs.push_back({{0, main}, ri});
  int64_t a = rest > ri ? (rest + 1) / 2 : rest, b = rest - a;
  if (a > 0 && a == b) segs.push_back({{main, rows}, a});
  else {
    if (a > 0) segs.push_back({{main, main + a}, a});
    if (b > 0) segs.push_back({{main + a, rows}, b});
  }
  return segs;
}

// Loads of the body that vary along the vector axis `inner` but not along `axis`: blocking
// `axis` lets one vector load of each serve every row of the tile.
int shared_vector_loads(const Expr& body, const Var& axis, const Var& inner) {
  int n = 0;
  visit(body, [&](const Expr& e) {
    if (e.kind() != ExprKind::Load) return;
    bool on_inner = false, on_axis = false;
    for (auto& i : e.as<LoadNode>()->indices)
      visit(i, [&](const Expr& x) {
        if (x.kind() != ExprKind::Var) return;
        on_inner |= x.as<VarNode>() == inner.as<VarNode>();
        on_axis |= x.as<VarNode>() == axis.as<VarNode>();
      });
    n += on_inner && !on_axis;
  });
  return n;
}


// Fuses the two innermost output axes into one (h = f / W, w = f % W) when that gives a
// row of at least two vectors where the innermost axis alone is short, and every load that
// reads the fused positions reads them as that same (f / W, f % W) pair of its own dimensions
// (e.g. a 1x1 convolution's input), so vector accesses along f stay contiguous.
// With `any_reads`, the loads may read the fused positions in any form (a channel-vector
// tile broadcasts each of them, so contiguity does not matter).
bool fuse_inner_axes(Nest* n, const Shape& shape, int64_t lanes, bool any_reads) {
  size_t rank = shape.size();
  if (rank < 2) return false;
  int64_t h = shape[rank - 2], w = shape[rank - 1];
  if (!any_reads && (w >= 2 * lanes || h * w < 2 * lanes)) return false;
  Var f(n->axes[rank - 2].name() + "_fused");
  Expr fe = f;
  Expr hv = floordiv(fe, make_int(w)), wv = floormod(fe, make_int(w));
  VarMap m{{n->axes[rank - 2].as<VarNode>(), hv}, {n->axes[rank - 1].as<VarNode>(), wv}};
  // Simplified so that index arithmetic like (h*1 - 0) + 0 shows the bare (f / W, f % W).
  Expr body = simplify(substitute(n->r->body, m)), init = simplify(substitute(n->r->init, m));
  bool ok = true;
  auto reads_fused = [&](const Expr& e) {
    bool used = false;
    visit(e, [&](const Expr& x) { used |= x.kind() == ExprKind::Var && x.as<VarNode>() == f.as<VarNode>(); });
    return used;
  };
  visit(body, [&](const Expr& e) {
    if (e.kind() != ExprKind::Load) return;
    auto l = e.as<LoadNode>();
    int uses = 0;
    bool paired = false;
    for (size_t d = 0; d < l->indices.size(); ++d) {
      if (!reads_fused(l->indices[d])) continue;
      ++uses;
      paired |= d + 1 < l->indices.size() && l->indices[d].same_as(hv) && l->indices[d + 1].same_as(wv) &&
                l->buffer->shape[d + 1] == w;
    }
    ok &= any_reads || uses == 0 || (uses == 2 && paired);
  });
  if (!ok) return false;
  auto fused = std::make_shared<ReduceNode>(n->r->op, body, n->r->axes, init);
  n->axes.pop_back();
  n->axes.back() = f;
  n->out[rank - 2] = hv;
  n->out[rank - 1] = wv;
  if (n->epilogue.value.defined()) n->epilogue.value = substitute(n->epilogue.value, m);
  n->r = fused.get();
  n->owned = fused;
  return true;
}

// A register-tile layout for a reduction: vector axis, blocked axis, tile size, and the share
// of the peak it is expected to reach (outputs covered by full tiles, partial tiles counted
// at the fraction of the registers they use).
struct TilePlan {
  size_t vi, bi;
  int64_t vj, ri;
  double efficiency;
};

std::optional<TilePlan> plan_tiles(const Nest& n, const Shape& shape, size_t vi, int64_t lanes, int64_t max_vectors,
                                   const BufferSet& constants) {
  const ReduceNode* r = n.r;
  size_t last = n.axes.size() - 1;
  int64_t width = shape[vi];
  int64_t vectors = std::min(max_vectors, width / lanes);
  if (vectors == 0) return std::nullopt;
  if (vi != last) {
    // Another vector axis only with whole vectors, the operand that varies along it packed at
    // compile time, and every other load the same for all lanes or a per-channel parameter
    // indexed by the vector axis alone (a zero point per output channel): no gathers.
    Expr packed = packable_load(n, vi);
    if (width % lanes || !packed.defined() || !constants.count(packed.as<LoadNode>()->buffer.get())) return std::nullopt;
    const VarNode* vec = n.axes[vi].as<VarNode>();
    bool gathers = false;
    visit(r->body, [&](const Expr& e) {
      if (e.kind() != ExprKind::Load || e.same_as(packed)) return;
      auto l = e.as<LoadNode>();
      if (l->indices.size() == 1 && l->indices[0].kind() == ExprKind::Var && l->indices[0].as<VarNode>() == vec) return;
      for (auto& i : l->indices)
        visit(i, [&](const Expr& x) { gathers |= x.kind() == ExprKind::Var && x.as<VarNode>() == vec; });
    });
    if (gathers) return std::nullopt;
  }
  TilePlan p{vi, vi, vectors * lanes, 6, 0};
  // The blocked axis: the one whose rows share the most vector loads, preferring axes long
  // enough for 6 rows; failing those, a shorter one with fewer rows (a batch-1 Gemm's M = 1).
  // With the vector axis innermost the first such axis wins a tie, else the last (rows then
  // read neighbouring elements).
  for (int64_t min_rows : {p.ri, int64_t(1)}) {
    int best = 0;
    for (size_t k = 0; k <= last; ++k) {
      size_t d = vi == last ? k : last - k;
      if (d == vi) continue;
      int shared = shared_vector_loads(r->body, n.axes[d], n.axes[vi]);
      if (shape[d] >= min_rows && shared > best) {
        best = shared;
        p.bi = d;
      }
    }
    if (p.bi != vi) break;
  }
  // No load shared between rows (a depthwise convolution, an average pool): a tile still
  // keeps its sums in registers instead of a row accumulator in memory, when every load
  // along the vector axis is contiguous. Rows from the next outer axis; counted at half.
  double sharing = 1.0;
  if (p.bi == vi && vi == last && last > 0 && shape[last - 1] >= 2 && contiguous_along(r->body, n.axes[vi])) {
    p.bi = last - 1;
    sharing = 0.5;
  }
  if (p.bi == vi) return std::nullopt;
  int64_t rows = shape[p.bi];
  p.ri = std::min(p.ri, rows);
  int64_t full_cols = width / p.vj * p.vj, vec_cols = (width - full_cols) / lanes * lanes;
  double cols = (double(full_cols) + double(vec_cols) / double(vectors)) / double(width);
  int64_t rem = rows % p.ri;
  double row_share = (double(rows - rem) + double(rem) * double(rem) / double(p.ri)) / double(rows);
  p.efficiency = sharing * cols * row_share * double(p.ri) / 6.0 * double(vectors) / double(max_vectors);
  return p;
}

// The outer axis a one-vector tile spans (VectorBlocks), when the tile's vector axis is exactly
// one vector and the target has registers for more: an axis every load along which also varies
// along the vector axis (a vector of weights per block), while some load varies along neither
// (the rows' operand, broadcast once for all the blocks). The innermost such axis, its extent a
// multiple of the block count (4, 3 or 2 vectors with 32 registers).
VectorBlocks vector_blocks(const Nest& n, const Shape& shape, const TilePlan& p, int64_t lanes, int64_t max_vectors,
                           int threads) {
  VectorBlocks b;
  size_t last = n.axes.size() - 1;
  if (p.vi != last || shape[p.vi] != lanes || max_vectors < 2) return b;
  const VarNode* vec = n.axes[p.vi].as<VarNode>();
  int64_t terms = 1;
  for (auto& a : n.r->axes) terms *= a.extent;
  for (size_t d = 0; d < last; ++d) {
    if (d == p.bi || shape[d] < 2) continue;
    const VarNode* axis = n.axes[d].as<VarNode>();
    bool per_block_vectors = true;
    int broadcast = 0;
    visit(n.r->body, [&](const Expr& e) {
      if (e.kind() != ExprKind::Load) return;
      bool on_axis = uses_var(e, axis), on_vector = uses_var(e, vec);
      per_block_vectors &= !on_axis || on_vector;
      broadcast += !on_axis && !on_vector;
    });
    if (!per_block_vectors || broadcast == 0) continue;
    for (int64_t c = max_vectors; c >= 2; --c)
      if (shape[d] % c == 0) {
        b = {d, c, leaves_threads_idle(shape[d] / c, threads) && terms * shape[d] * lanes * 4 <= kInsideWeightBytes};
        break;
      }
  }
  return b;
}

}  // namespace

Stmt schedule_reduction(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                        const VectorTarget& target, const Epilogue& epilogue, const BufferSet& constants) {
  if (Stmt tiles = schedule_tiles(dst, axes, r, target, epilogue, constants)) return tiles;
  Nest n{dst, axes, std::vector<Expr>(axes.begin(), axes.end()), r, nullptr, epilogue};
  Shape shape = dst->shape;
  std::vector<Range> full;
  for (int64_t d : shape) full.push_back({0, d});
  int64_t lanes = target.vector_bytes / 4;
  if (axes.empty()) return rows_or_scalar(n, full, lanes);
  auto fuse = [&](Nest& nest, Shape& s, std::vector<Range>& f, bool any_reads) {
    if (!fuse_inner_axes(&nest, s, lanes, any_reads)) return false;
    int64_t w = s.back();
    s.pop_back();
    s.back() *= w;
    f.pop_back();
    f.back() = {0, s.back()};
    return true;
  };
  if (register_tiled(r)) fuse(n, shape, full, false);
  r = n.r;

  // Register tiles: f32 sums (FMA), i32 sums (quantized products), maxima and minima (pools)
  // over at least a vector of outputs along a vector axis.
  // The tile takes ri * vj / lanes accumulator registers, leaving a few for operands:
  // 6 x 4 vectors with 32 registers (AVX-512), 6 x 2 with 16 (AVX2).
  int64_t terms = 1;
  for (auto& a : r->axes) terms *= a.extent;
  if (!register_tiled(r) || terms < 4) return rows_or_scalar(n, full, lanes);
  int64_t max_vectors = target.vector_registers >= 32 ? 4 : 2;
  auto best_plan = [&](const Nest& nest, const Shape& s, bool innermost_allowed) {
    std::optional<TilePlan> best;
    size_t innermost = nest.axes.size() - 1;
    // The innermost axis first: on a tie it keeps stores contiguous.
    for (size_t vi = innermost + 1; vi-- > 0;) {
      if (vi == innermost && !innermost_allowed) continue;
      std::optional<TilePlan> p = plan_tiles(nest, s, vi, lanes, max_vectors, constants);
      if (p && (!best || p->efficiency > best->efficiency + 1e-9)) best = p;
    }
    return best;
  };
  std::optional<TilePlan> plan = best_plan(n, shape, true);
  // A channel-vector tile reads the two innermost output axes as broadcasts, so they can
  // always fuse into one row axis, which leaves a smaller remainder of rows (a 7 x 7 output:
  // 49 = 8 x 6 + 1 rather than 7 = 6 + 1 per row).
  if (shape.size() >= 3) {
    Nest fn = n;
    Shape fs = shape;
    std::vector<Range> ff = full;
    if (fuse(fn, fs, ff, true)) {
      std::optional<TilePlan> fp = best_plan(fn, fs, false);
      if (fp && (!plan || fp->efficiency > plan->efficiency + 1e-9)) {
        n = fn;
        shape = fs;
        full = ff;
        plan = fp;
        r = n.r;
      }
    }
  }
  size_t last = n.axes.size() - 1;
  if (!plan) return rows_or_scalar(n, full, lanes);
  size_t vi = plan->vi, bi = plan->bi;
  int64_t ri = plan->ri, width = shape[vi], rows = shape[bi];
  int64_t j = 0;
  if (VectorBlocks blocks = vector_blocks(n, shape, *plan, lanes, max_vectors, target.threads); blocks.count) {
    // Reduction blocks whose weights (block_terms x vj floats) fit in a 32 KiB L1, as the 16-wide
    // blocks of 512 terms do on AVX2: with 4 x 16 lanes, 128-term blocks against 512 took
    // ResNet-50 from 43.0 to 37.8-40.2 ms at 1 thread (GEMMs keep 512: 128 was slower there).
    int64_t vj = blocks.count * lanes;
    Blocking blocking = plan_blocking(r, dst, vi, last, 1, vj, rows, target.l2_bytes,
                                      std::max<int64_t>(lanes, kL1PanelBytes / (vj * 4)));
    return tiled_reduction(n, full, bi, vi, row_segments(rows, ri, blocks.count), vj, lanes, Panels{}, blocking, blocks);
  }

  // Column bands: full-width tiles, then one-vector tiles for what is left (28 = 16 + 8 + 4),
  // then plain rows for the last columns. Rows beyond a multiple of ri take shorter tiles.
  std::vector<Stmt> parts;
  for (int64_t band : {plan->vj, lanes}) {
    int64_t j_end = j + (width - j) / band * band;
    if (j_end == j) continue;
    Panels panels = make_panels(n, vi, {j, j_end}, band, constants);
    Blocking blocking = plan_blocking(r, dst, vi, last, (j_end - j) / band, band, rows, target.l2_bytes);
    std::vector<Range> t = full;
    t[vi] = {j, j_end};
    Stmt s = tiled_reduction(n, t, bi, vi, row_segments(rows, ri, band / lanes), band, lanes, panels, blocking);
    parts.push_back(panels.packed ? make_allocate(panels.packed, make_seq({panels.fill, s})) : s);
    j = j_end;
  }
  std::vector<Range> col_tail = full;
  col_tail[vi] = {j, width};
  if (j < width) parts.push_back(rows_or_scalar(n, col_tail, lanes));
  return make_seq(parts);
}

}  // namespace kiln::tir
