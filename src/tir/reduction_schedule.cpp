#include "tir/reduction_schedule.h"

#include "kiln/error.h"

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
Stmt scalar_reduction(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                      const std::vector<Range>& ranges) {
  Buffer acc = make_buffer(dst->name + "_acc", r->dtype, {});
  Stmt update = reduce_loops(r, make_store(acc, {}, combine(r->op, load(acc, {}), r->body)));
  std::vector<Expr> idx(axes.begin(), axes.end());
  Stmt s = make_allocate(acc, make_seq({make_store(acc, {}, r->init), update, make_store(dst, idx, load(acc, {}))}));
  for (int d = int(axes.size()) - 1; d >= 0; --d) s = loop(axes[d], ranges[d].lo, ranges[d].hi, s);
  return s;
}

// Row accumulation over the innermost axis.
Stmt row_reduction(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                   const std::vector<Range>& ranges) {
  size_t last = axes.size() - 1;
  const Var& j = axes[last];
  Range jr = ranges[last];
  Buffer acc = make_buffer(dst->name + "_rowacc", r->dtype, {jr.extent()});
  Expr slot = Expr(j) - make_int(jr.lo);
  auto over_row = [&](Stmt s) { return loop(j, jr.lo, jr.hi, s); };
  Stmt init = over_row(make_store(acc, {slot}, r->init));
  Stmt update = reduce_loops(r, over_row(make_store(acc, {slot}, combine(r->op, load(acc, {slot}), r->body))));
  std::vector<Expr> idx(axes.begin(), axes.end());
  Stmt s = make_allocate(acc, make_seq({init, update, over_row(make_store(dst, idx, load(acc, {slot})))}));
  for (int d = int(last) - 1; d >= 0; --d) s = loop(axes[d], ranges[d].lo, ranges[d].hi, s);
  return s;
}

Stmt rows_or_scalar(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                    const std::vector<Range>& ranges) {
  if (ranges.empty() || ranges.back().extent() <= 0) return nullptr;
  for (auto& rg : ranges)
    if (rg.extent() <= 0) return nullptr;
  int64_t width = ranges.back().extent(), terms = 1;
  for (auto& a : r->axes) terms *= a.extent;
  if (width >= 4 && terms >= 2 && width * dtype_bytes(r->dtype) <= kMaxRowAccumulatorBytes)
    return row_reduction(dst, axes, r, ranges);
  return scalar_reduction(dst, axes, r, ranges);
}

// The register tile of `ri` rows of blocked axis `bi` by `vj` neighbouring outputs of the
// innermost axis, over ranges whose extents along bi and the innermost axis are multiples
// of ri and vj.
Stmt tiled_reduction(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                     const std::vector<Range>& ranges, size_t bi, int64_t ri, int64_t vj, int64_t lanes) {
  size_t last = axes.size() - 1;
  Var i0(axes[bi].name() + "_o"), ii(axes[bi].name() + "_t");
  Var j0(axes[last].name() + "_o"), jv(axes[last].name() + "_v"), lane(axes[last].name() + "_l");
  Expr jj = Expr(jv) * make_int(lanes) + lane;  // position in the tile row
  VarMap m;
  m[axes[bi].as<VarNode>()] = Expr(i0) * make_int(ri) + ii + make_int(ranges[bi].lo);
  m[axes[last].as<VarNode>()] = Expr(j0) * make_int(vj) + jj + make_int(ranges[last].lo);
  Expr body = substitute(r->body, m), init = substitute(r->init, m);
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
  std::vector<Expr> idx(axes.begin(), axes.end());
  for (auto& e : idx) e = substitute(e, m);
  Stmt store = tile(make_store(dst, idx, load(acc, {ii, jj})));
  Stmt s = make_allocate(acc, make_seq({init_s, update, store}));
  s = loop(j0, 0, ranges[last].extent() / vj, s);
  s = loop(i0, 0, ranges[bi].extent() / ri, s);
  for (int d = int(last) - 1; d >= 0; --d)
    if (size_t(d) != bi) s = loop(axes[d], ranges[d].lo, ranges[d].hi, s);
  return s;
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

}  // namespace

Stmt schedule_reduction(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                        const VectorTarget& target) {
  std::vector<Range> full;
  for (int64_t d : dst->shape) full.push_back({0, d});
  if (axes.empty()) return scalar_reduction(dst, axes, r, full);

  // Register tiles: f32 sums (FMA) over at least a vector of outputs along the innermost axis.
  // The tile takes ri * vj / lanes accumulator registers, leaving a few for operands:
  // 6 x 4 vectors with 32 registers (AVX-512), 6 x 2 with 16 (AVX2).
  size_t last = axes.size() - 1;
  int64_t lanes = target.vector_bytes / 4, width = dst->shape[last], terms = 1;
  for (auto& a : r->axes) terms *= a.extent;
  int64_t max_vectors = target.vector_registers >= 32 ? 4 : 2;
  int64_t vectors = std::min<int64_t>(max_vectors, width / lanes);
  int64_t vj = vectors * lanes, ri = 6;
  size_t bi = last;
  int best = 0;
  for (size_t d = 0; d < last; ++d) {
    int shared = shared_vector_loads(r->body, axes[d], axes[last]);
    if (dst->shape[d] >= ri && shared > best) {
      best = shared;
      bi = d;
    }
  }
  if (r->op != ReduceOp::Sum || r->dtype != DType::F32 || vj == 0 || bi == last || terms < 4)
    return rows_or_scalar(dst, axes, r, full);

  int64_t i_main = dst->shape[bi] / ri * ri, j_main = width / vj * vj;
  std::vector<Range> main = full, row_tail = full, col_tail = full;
  main[bi] = {0, i_main};
  main[last] = {0, j_main};
  row_tail[bi] = {i_main, dst->shape[bi]};
  row_tail[last] = {0, j_main};
  col_tail[last] = {j_main, width};
  return make_seq({tiled_reduction(dst, axes, r, main, bi, ri, vj, lanes), rows_or_scalar(dst, axes, r, row_tail),
                   rows_or_scalar(dst, axes, r, col_tail)});
}

}  // namespace kiln::tir
