#include "tir/reduction_schedule.h"

#include <set>

#include "kiln/error.h"
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

Stmt reduce_loops(const ReduceNode* r, Stmt body) {
  for (int i = int(r->axes.size()) - 1; i >= 0; --i) body = loop(r->axes[i].var, 0, r->axes[i].extent, body);
  return body;
}

// Plain nest: one scalar accumulator per output element.
// The stage being scheduled: `axes` are the loop axes (the output axes, or with the two
// innermost fused into one), `out` the destination index in terms of them.
struct Nest {
  const Buffer& dst;
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

Stmt rows_or_scalar(const Nest& n, const std::vector<Range>& ranges) {
  const ReduceNode* r = n.r;
  if (ranges.empty() || ranges.back().extent() <= 0) return nullptr;
  for (auto& rg : ranges)
    if (rg.extent() <= 0) return nullptr;
  int64_t width = ranges.back().extent(), terms = 1;
  for (auto& a : r->axes) terms *= a.extent;
  if (width >= 4 && terms >= 2 && width * dtype_bytes(r->dtype) <= kMaxRowAccumulatorBytes)
    return row_reduction(n, ranges);
  return scalar_reduction(n, ranges);
}

// The register tile of `ri` rows of blocked axis `bi` by `vj` neighbouring outputs of the
// innermost axis, over ranges whose extents along bi and the innermost axis are multiples
// of ri and vj.
// Packs larger than this stay unpacked (the copy would not pay for itself in cache).
constexpr int64_t kMaxPackedBytes = int64_t(64) << 20;

// A load the tile can pack: it varies along the innermost output axis and the reduction only
// (so one copy serves every other output), is f32, and the copy is not too large.
Expr packable_load(const Nest& n, size_t last) {
  Expr found;
  std::set<const VarNode*> allowed{n.axes[last].as<VarNode>()};
  for (auto& a : n.r->axes) allowed.insert(a.var.as<VarNode>());
  visit(n.r->body, [&](const Expr& e) {
    if (found.defined() || e.kind() != ExprKind::Load) return;
    auto l = e.as<LoadNode>();
    bool ok = l->dtype == DType::F32, inner = false, reduce = false;
    for (auto& i : l->indices)
      visit(i, [&](const Expr& x) {
        if (x.kind() != ExprKind::Var) return;
        const VarNode* v = x.as<VarNode>();
        ok &= allowed.count(v) > 0;
        inner |= v == n.axes[last].as<VarNode>();
        reduce |= v != n.axes[last].as<VarNode>();
      });
    int64_t bytes = shape_numel(l->buffer->shape) * 4;
    if (ok && inner && reduce && bytes <= kMaxPackedBytes) found = e;
  });
  return found;
}

Stmt tiled_reduction(const Nest& n, const std::vector<Range>& ranges, size_t bi, int64_t ri, int64_t vj,
                     int64_t lanes) {
  const Buffer& dst = n.dst;
  const auto& axes = n.axes;
  const ReduceNode* r = n.r;
  size_t last = axes.size() - 1;
  Var i0(axes[bi].name() + "_o"), ii(axes[bi].name() + "_t");
  Var j0(axes[last].name() + "_o"), jv(axes[last].name() + "_v"), lane(axes[last].name() + "_l");
  Expr jj = Expr(jv) * make_int(lanes) + lane;  // position in the tile row
  VarMap m;
  m[axes[bi].as<VarNode>()] = Expr(i0) * make_int(ri) + ii + make_int(ranges[bi].lo);
  m[axes[last].as<VarNode>()] = Expr(j0) * make_int(vj) + jj + make_int(ranges[last].lo);
  Expr body = r->body;
  Stmt pack;
  Buffer packed;
  if (Expr shared = packable_load(n, last); shared.defined()) {
    // The operand every row of the tile shares (a matmul's B) copied into panels of vj
    // neighbouring outputs, contiguous along the reduction: the reduction loop then streams
    // one panel instead of striding across rows. Placeholders J0 / JJ stand for the panel and
    // the position in it until the tile's variables replace them.
    Shape pshape{ranges[last].extent() / vj};
    std::vector<Expr> pidx{Var("J0")};
    for (auto& a : r->axes) {
      pshape.push_back(a.extent);
      pidx.push_back(a.var);
    }
    pshape.push_back(vj);
    pidx.push_back(Var("JJ"));
    packed = make_buffer(dst->name + "_packed", shared.dtype(), pshape);
    body = rewrite(body, [&](const Expr& e) { return e.same_as(shared) ? load(packed, pidx) : e; });
    m[pidx.front().as<VarNode>()] = j0;
    m[pidx.back().as<VarNode>()] = jj;
    Var pj0("pack_o"), pjj("pack_t");
    std::vector<Expr> at{pj0};
    for (auto& a : r->axes) at.push_back(a.var);
    at.push_back(pjj);
    Expr value = substitute(shared, {{axes[last].as<VarNode>(), Expr(pj0) * make_int(vj) + pjj + make_int(ranges[last].lo)}});
    pack = reduce_loops(r, loop(pjj, 0, vj, make_store(packed, at, value)));
    pack = loop(pj0, 0, pshape.front(), pack);
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
  Stmt init_s = tile(make_store(acc, {ii, jj}, init));
  Stmt update = reduce_loops(r, tile(make_store(acc, {ii, jj}, combine(r->op, load(acc, {ii, jj}), body))));
  std::vector<Expr> idx = n.out;
  for (auto& e : idx) e = substitute(e, m);
  Expr stored = n.stored(load(acc, {ii, jj}));
  Stmt store = tile(make_store(dst, idx, substitute(stored, m)));
  Stmt s = make_allocate(acc, make_seq({init_s, update, store}));
  s = loop(j0, 0, ranges[last].extent() / vj, s);
  s = loop(i0, 0, ranges[bi].extent() / ri, s);
  for (int d = int(last) - 1; d >= 0; --d)
    if (size_t(d) != bi) s = loop(axes[d], ranges[d].lo, ranges[d].hi, s);
  return packed ? make_allocate(packed, make_seq({pack, s})) : s;
}

// Loads of the body that vary along the innermost axis but not along `axis`: blocking `axis`
// lets one vector load of each serve every row of the tile.
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
bool fuse_inner_axes(Nest* n, const Shape& shape, int64_t lanes) {
  size_t rank = shape.size();
  if (rank < 2) return false;
  int64_t h = shape[rank - 2], w = shape[rank - 1];
  if (w >= 2 * lanes || h * w < 2 * lanes) return false;
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
    ok &= uses == 0 || (uses == 2 && paired);
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

}  // namespace

Stmt schedule_reduction(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                        const VectorTarget& target, const Epilogue& epilogue) {
  Nest n{dst, axes, std::vector<Expr>(axes.begin(), axes.end()), r, nullptr, epilogue};
  Shape shape = dst->shape;
  std::vector<Range> full;
  for (int64_t d : shape) full.push_back({0, d});
  if (axes.empty()) return scalar_reduction(n, full);
  int64_t lanes = target.vector_bytes / 4;
  if (r->op == ReduceOp::Sum && r->dtype == DType::F32 && fuse_inner_axes(&n, shape, lanes)) {
    int64_t w = shape.back();
    shape.pop_back();
    shape.back() *= w;
    full.pop_back();
    full.back() = {0, shape.back()};
  }
  r = n.r;

  // Register tiles: f32 sums (FMA) over at least a vector of outputs along the innermost axis.
  // The tile takes ri * vj / lanes accumulator registers, leaving a few for operands:
  // 6 x 4 vectors with 32 registers (AVX-512), 6 x 2 with 16 (AVX2).
  size_t last = n.axes.size() - 1;
  int64_t width = shape[last], terms = 1;
  for (auto& a : r->axes) terms *= a.extent;
  int64_t max_vectors = target.vector_registers >= 32 ? 4 : 2;
  int64_t vectors = std::min<int64_t>(max_vectors, width / lanes);
  int64_t vj = vectors * lanes, ri = 6;
  // The blocked axis: the one whose rows share the most vector loads, preferring axes long
  // enough for 6 rows; failing those, a shorter one with fewer rows (a batch-1 Gemm's M = 1).
  size_t bi = last;
  for (int64_t min_rows : {ri, int64_t(1)}) {
    int best = 0;
    for (size_t d = 0; d < last; ++d) {
      int shared = shared_vector_loads(r->body, n.axes[d], n.axes[last]);
      if (shape[d] >= min_rows && shared > best) {
        best = shared;
        bi = d;
      }
    }
    if (bi != last) break;
  }
  if (bi != last) ri = std::min(ri, shape[bi]);
  if (r->op != ReduceOp::Sum || r->dtype != DType::F32 || vj == 0 || bi == last || terms < 4)
    return rows_or_scalar(n, full);

  // Column bands: full-width tiles, then one-vector tiles for what is left (28 = 16 + 8 + 4),
  // then plain rows for the last columns; rows beyond a multiple of ri in each band go plain.
  int64_t i_main = shape[bi] / ri * ri, j = 0;
  std::vector<Stmt> parts;
  for (int64_t band : {vj, lanes}) {
    int64_t j_end = j + (width - j) / band * band;
    if (j_end == j) continue;
    std::vector<Range> tile = full, row_tail = full;
    tile[bi] = {0, i_main};
    tile[last] = row_tail[last] = {j, j_end};
    row_tail[bi] = {i_main, shape[bi]};
    parts.push_back(tiled_reduction(n, tile, bi, ri, band, lanes));
    parts.push_back(rows_or_scalar(n, row_tail));
    j = j_end;
  }
  std::vector<Range> col_tail = full;
  col_tail[last] = {j, width};
  parts.push_back(rows_or_scalar(n, col_tail));
  return make_seq(parts);
}

}  // namespace kiln::tir
