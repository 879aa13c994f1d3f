#include "tir/fuse_nests.h"

#include <algorithm>
#include <set>

namespace kiln::tir {

namespace {

// The outermost loop of a nest when it is serial from 0 with a constant extent.
const ForNode* outer_loop(const Stmt& s, int64_t* extent) {
  if (!s || s->kind != StmtKind::For) return nullptr;
  auto n = as<ForNode>(s);
  int64_t mn;
  if (n->for_kind != ForKind::Serial || !is_const_int(n->min, &mn) || mn != 0 || !is_const_int(n->extent, extent))
    return nullptr;
  return n;
}

// Whether every access to `b` in `s` indexes dimension `*dim` with exactly `v`; a negative
// `*dim` is set from the first access. Tile products address buffers by offsets: never.
bool sliced(const Stmt& s, const BufferNode* b, const VarNode* v, int* dim) {
  bool ok = true;
  auto check = [&](const std::vector<Expr>& idx) {
    auto is_v = [&](size_t d) { return idx[d].kind() == ExprKind::Var && idx[d].as<VarNode>() == v; };
    if (*dim < 0)
      for (size_t d = 0; d < idx.size() && *dim < 0; ++d)
        if (is_v(d)) *dim = int(d);
    ok &= *dim >= 0 && size_t(*dim) < idx.size() && is_v(size_t(*dim));
  };
  visit(s, [&](const Stmt& st) {
    if (st->kind == StmtKind::Store && as<StoreNode>(st)->buffer.get() == b) check(as<StoreNode>(st)->indices);
    if (st->kind == StmtKind::TileMatmul) {
      auto t = as<TileMatmulNode>(st);
      ok &= t->a.buffer.get() != b && t->b.buffer.get() != b && t->c.buffer.get() != b;
    }
  });
  rewrite(s, [&](const Expr& e) {
    if (e.kind() == ExprKind::Load && e.as<LoadNode>()->buffer.get() == b) check(e.as<LoadNode>()->indices);
    return e;
  });
  return ok;
}

// Nests [first, last] as one loop over their common outer range, with `scratch` folded to
// one slice along `dim` and allocated inside it; null when some nest does not work on one
// slice per iteration of every buffer the group writes.
Stmt fuse_group(const std::vector<Stmt>& nests, size_t first, size_t last, const Buffer& scratch) {
  int64_t extent = 0;
  std::vector<const ForNode*> loops;
  for (size_t i = first; i <= last; ++i) {
    int64_t e;
    const ForNode* l = outer_loop(nests[i], &e);
    if (!l || (i > first && e != extent)) return nullptr;
    extent = e;
    loops.push_back(l);
  }
  // Buffers the group writes (scratch made inside a nest is private to its iteration).
  std::set<const BufferNode*> written, local;
  for (size_t i = first; i <= last; ++i) {
    std::set<const BufferNode*> loaded;
    buffer_accesses(nests[i], &written, &loaded);
    visit(nests[i], [&](const Stmt& st) {
      if (st->kind == StmtKind::Allocate) local.insert(as<AllocateNode>(st)->buffer.get());
    });
  }
  int scratch_dim = -1;
  for (const BufferNode* b : written) {
    if (local.count(b)) continue;
    int dim = -1;
    for (auto* l : loops)
      if (!sliced(l->body, b, l->var.as<VarNode>(), &dim)) return nullptr;
    if (b == scratch.get()) scratch_dim = dim;
  }
  if (scratch_dim < 0) return nullptr;

  Shape shape = scratch->shape;
  shape[scratch_dim] = 1;
  Buffer slice = make_buffer(scratch->name, scratch->dtype, shape);
  auto fold = [&](std::vector<Expr> idx) {
    idx[scratch_dim] = make_int(0);
    return idx;
  };
  const Var& v = loops.back()->var;  // named after the last nest (the stage's output)
  std::vector<Stmt> bodies;
  for (auto* l : loops) {
    Stmt b = substitute(l->body, VarMap{{l->var.as<VarNode>(), Expr(v)}});
    b = rewrite(
        b,
        [&](const Expr& e) {
          if (e.kind() != ExprKind::Load || e.as<LoadNode>()->buffer != scratch) return e;
          return load(slice, fold(e.as<LoadNode>()->indices));
        },
        [&](const Stmt& st) {
          if (st->kind != StmtKind::Store || as<StoreNode>(st)->buffer != scratch) return st;
          return make_store(slice, fold(as<StoreNode>(st)->indices), as<StoreNode>(st)->value);
        });
    bodies.push_back(b);
  }
  return make_for(v, make_int(0), make_int(extent), ForKind::Serial, make_allocate(slice, make_seq(bodies)));
}

}  // namespace

Stmt fuse_slice_nests(const Stmt& body, const BufferSet& constants) {
  // The kernel's scratch allocations wrap its sequence of nests.
  std::vector<Buffer> scratch;
  Stmt s = body;
  while (s && s->kind == StmtKind::Allocate) {
    scratch.push_back(as<AllocateNode>(s)->buffer);
    s = as<AllocateNode>(s)->body;
  }
  if (!s || s->kind != StmtKind::Seq) return body;
  std::vector<Stmt> nests = as<SeqNode>(s)->stmts;
  std::vector<Buffer> kept;
  for (const Buffer& b : scratch) {
    size_t first = nests.size(), last = 0;
    for (size_t i = 0; i < nests.size(); ++i)
      if (touches(nests[i], b.get())) {
        first = std::min(first, i);
        last = i;
      }
    std::set<const BufferNode*> stored, loaded;
    if (first < last) buffer_accesses(nests[first], &stored, &loaded);
    // As hoist_constant_fills decides: a fill reading something, and constants only.
    bool constant_fill = !loaded.empty() &&
                         std::all_of(loaded.begin(), loaded.end(), [&](const BufferNode* l) { return constants.count(l) > 0; });
    Stmt fused = first < last && stored.count(b.get()) && !constant_fill ? fuse_group(nests, first, last, b) : nullptr;
    if (!fused) {
      kept.push_back(b);
      continue;
    }
    nests.erase(nests.begin() + long(first), nests.begin() + long(last) + 1);
    nests.insert(nests.begin() + long(first), fused);
  }
  Stmt out = make_seq(nests);
  for (auto it = kept.rbegin(); it != kept.rend(); ++it) out = make_allocate(*it, out);
  return out;
}

}  // namespace kiln::tir
