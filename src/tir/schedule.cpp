#include "tir/schedule.h"

#include <set>

#include "kiln/error.h"
#include "tir/cost.h"
#include "tir/schedule_steps.h"

namespace kiln::tir {

bool leaves_threads_idle(int64_t n, int threads) {
  int64_t per = (n + threads - 1) / threads;
  return double(n) / double(per * threads) < 0.95;
}

namespace {

// The nest `s` (outer loop `n`, serial from 0) with its outer loop fused with the loops
// directly inside it until its iterations spread evenly over `threads` (3 panel groups on 2
// threads: 3 x 21 row tiles instead), as far as the nest is perfect.
Stmt fuse_for_balance(Stmt s, int threads) {
  for (;;) {
    auto n = as<ForNode>(s);
    int64_t ext, inner_ext, inner_min;
    if (!is_const_int(n->extent, &ext) || !leaves_threads_idle(ext, threads)) return s;
    if (!n->body || n->body->kind != StmtKind::For) return s;
    auto inner = as<ForNode>(n->body);
    if (inner->for_kind != ForKind::Serial || !is_const_int(inner->extent, &inner_ext) ||
        !is_const_int(inner->min, &inner_min) || inner_ext < 2)
      return s;
    try {
      s = apply_schedule(s, {{ScheduleStep::Kind::Fuse, {n->var.name(), inner->var.name()}}});
    } catch (const Error&) {
      return s;
    }
  }
}

// Whether iterations of loop `n` may write the same element of a buffer that lives outside
// it: some store's index depends on neither the loop's variable nor a loop inside whose bounds
// do (a reduction loop accumulating into a tile allocated around it, the only loop of a
// one-tile remainder). Such a loop must stay serial: run in parallel, each thread summed part
// of the terms and one part was lost (a 1x1 convolution's last 4 pixels at 2 threads).
// Looser than the parallel step's check (schedule_steps.cpp, `dependence`), which also wants
// every store affine in the loop and no tile products: that one would leave ResNet-50 with
// 58 of its 92 parallel loops at 2 threads (MobileNetV2 35 of 60), AMX tile kernels serial.
bool writes_across_iterations(const ForNode* n) {
  std::set<const VarNode*> varying{n->var.as<VarNode>()};
  std::set<const BufferNode*> local;
  auto depends = [&](const Expr& e) {
    bool d = false;
    if (e.defined()) visit(e, [&](const Expr& x) { d |= x.kind() == ExprKind::Var && varying.count(x.as<VarNode>()); });
    return d;
  };
  bool shared = false;
  visit(n->body, [&](const Stmt& s) {
    switch (s->kind) {
      case StmtKind::For: {
        auto f = as<ForNode>(s);
        if (depends(f->min) || depends(f->extent)) varying.insert(f->var.as<VarNode>());
        break;
      }
      case StmtKind::Allocate: local.insert(as<AllocateNode>(s)->buffer.get()); break;
      case StmtKind::Store: {
        auto st = as<StoreNode>(s);
        if (local.count(st->buffer.get())) break;
        bool d = false;
        for (auto& i : st->indices) d |= depends(i);
        shared |= !d;
        break;
      }
      case StmtKind::TileMatmul: {
        auto t = as<TileMatmulNode>(s);
        shared |= !local.count(t->c.buffer.get()) && !depends(t->c.offset);
        break;
      }
      default: break;
    }
  });
  return shared;
}

}  // namespace

Stmt parallelize_outer_loops(const Stmt& s, int64_t min_work, int threads) {
  if (!s) return s;
  switch (s->kind) {
    case StmtKind::For: {
      auto n = as<ForNode>(s);
      int64_t ext, mn;
      // A rolled loop at the top carries a reduction across its iterations (a cache block
      // loop): the parallel loop is found inside it.
      if (n->for_kind == ForKind::Rolled)
        return make_for(n->var, n->min, n->extent, n->for_kind, parallelize_outer_loops(n->body, min_work, threads));
      if (n->for_kind != ForKind::Serial || !is_const_int(n->extent, &ext) || ext < 2) return s;
      if (!is_const_int(n->min, &mn) || mn != 0) return s;  // remainder nests stay serial
      if (estimate_work(s) < min_work || writes_across_iterations(n)) return s;
      Stmt nest = threads > 1 ? fuse_for_balance(s, threads) : s;
      auto f = as<ForNode>(nest);
      return make_for(f->var, f->min, f->extent, ForKind::Parallel, f->body);
    }
    case StmtKind::Seq: {
      std::vector<Stmt> v;
      for (auto& c : as<SeqNode>(s)->stmts) v.push_back(parallelize_outer_loops(c, min_work, threads));
      return make_seq(v);
    }
    case StmtKind::Allocate: {
      auto n = as<AllocateNode>(s);
      return make_allocate(n->buffer, parallelize_outer_loops(n->body, min_work, threads));
    }
    default: return s;
  }
}

}  // namespace kiln::tir

namespace kiln::tir {

namespace {

struct Hoister {
  const std::set<const BufferNode*>& constants;
  const std::vector<Buffer>& params;
  std::vector<ConstantFill> fills;
  std::string name;

  Stmt visit_stmt(const Stmt& s) {
    if (!s) return s;
    if (s->kind == StmtKind::Seq) {
      std::vector<Stmt> v;
      for (auto& c : as<SeqNode>(s)->stmts) v.push_back(visit_stmt(c));
      return make_seq(v);
    }
    if (s->kind != StmtKind::Allocate) return s;
    auto a = as<AllocateNode>(s);
    Stmt body = visit_stmt(a->body);
    // The kernel's scratch allocations nest around one sequence of nests: look through the
    // ones inside this one to it.
    std::vector<Buffer> inner;
    Stmt seq = body;
    while (seq && seq->kind == StmtKind::Allocate) {
      inner.push_back(as<AllocateNode>(seq)->buffer);
      seq = as<AllocateNode>(seq)->body;
    }
    if (!seq || seq->kind != StmtKind::Seq) return make_allocate(a->buffer, body);
    const auto& stmts = as<SeqNode>(seq)->stmts;
    // The fill: the first nest that touches the buffer (nests before it fill other scratch).
    size_t at = 0;
    while (at < stmts.size() && !touches(stmts[at], a->buffer.get())) ++at;
    if (at == stmts.size()) return make_allocate(a->buffer, body);
    std::set<const BufferNode*> stored, loaded;
    buffer_accesses(stmts[at], &stored, &loaded);
    bool from_constants = stored == std::set<const BufferNode*>{a->buffer.get()} && !loaded.empty();
    // (The fill may read what it wrote so far: a sum accumulated in place.)
    for (auto* b : loaded) from_constants &= constants.count(b) > 0 || b == a->buffer.get();
    // Only a buffer the rest only reads: a register tile initialized from a constant (a conv
    // bias) is then accumulated into, and must start afresh on every run.
    std::set<const BufferNode*> later_stored, later_loaded;
    for (size_t i = at + 1; i < stmts.size(); ++i) buffer_accesses(stmts[i], &later_stored, &later_loaded);
    from_constants &= !later_stored.count(a->buffer.get());
    if (!from_constants) return make_allocate(a->buffer, body);
    PrimFunc fill;
    fill.name = name + "_fill" + std::to_string(fills.size());
    for (auto& p : params)
      if (loaded.count(p.get())) fill.params.push_back(p);
    fill.params.push_back(a->buffer);
    fill.body = stmts[at];
    fills.push_back({a->buffer, fill});
    std::vector<Stmt> kept(stmts.begin(), stmts.end());
    kept.erase(kept.begin() + long(at));
    Stmt rest = make_seq(kept);
    for (auto it = inner.rbegin(); it != inner.rend(); ++it) rest = make_allocate(*it, rest);
    return rest;
  }
};

}  // namespace

std::vector<ConstantFill> hoist_constant_fills(PrimFunc* f, size_t num_inputs,
                                               const std::set<const BufferNode*>& constants) {
  if (constants.empty()) return {};
  Hoister h{constants, f->params, {}, f->name};
  f->body = h.visit_stmt(f->body);
  std::vector<Buffer> params(f->params.begin(), f->params.begin() + num_inputs);
  for (auto& fl : h.fills) params.push_back(fl.buffer);
  params.insert(params.end(), f->params.begin() + num_inputs, f->params.end());
  f->params = params;
  return h.fills;
}

}  // namespace kiln::tir
