#include "tir/stmt.h"

#include "kiln/error.h"

namespace kiln::tir {

const char* forkind_name(ForKind k) {
  static const char* names[] = {"for", "parallel", "vectorized", "unrolled", "rolled"};
  return names[int(k)];
}

Stmt make_for(Var v, Expr min, Expr extent, ForKind k, Stmt body) {
  return std::make_shared<ForNode>(std::move(v), std::move(min), std::move(extent), k, std::move(body));
}

Stmt make_store(Buffer b, std::vector<Expr> indices, Expr value) {
  KILN_CHECK(indices.size() == b->shape.size(), "store to ", b->name, " rank mismatch");
  KILN_CHECK(value.dtype() == b->dtype, "store of ", dtype_name(value.dtype()), " into ",
             dtype_name(b->dtype), " buffer ", b->name);
  for (auto& i : indices)
    if (i.dtype() != DType::I64) i = cast(DType::I64, i);
  return std::make_shared<StoreNode>(std::move(b), std::move(indices), std::move(value));
}

Stmt make_seq(std::vector<Stmt> stmts) {
  std::vector<Stmt> flat;
  for (auto& s : stmts) {
    if (!s) continue;
    if (s->kind == StmtKind::Seq) {
      for (auto& c : as<SeqNode>(s)->stmts) flat.push_back(c);
    } else {
      flat.push_back(s);
    }
  }
  if (flat.size() == 1) return flat[0];
  return std::make_shared<SeqNode>(std::move(flat));
}

Stmt make_if(Expr cond, Stmt then_case, Stmt else_case) {
  return std::make_shared<IfThenElseNode>(std::move(cond), std::move(then_case), std::move(else_case));
}

Stmt make_allocate(Buffer b, Stmt body) {
  return std::make_shared<AllocateNode>(std::move(b), std::move(body));
}

Expr rewrite(const Expr& e, const std::function<Expr(const Expr&)>& f) {
  auto r = [&](const Expr& x) { return rewrite(x, f); };
  Expr out = e;
  switch (e.kind()) {
    case ExprKind::IntImm: case ExprKind::FloatImm: case ExprKind::Var: break;
    case ExprKind::Binary: {
      auto n = e.as<BinaryNode>();
      Expr a = r(n->a), b = r(n->b);
      if (!a.same_as(n->a) || !b.same_as(n->b))
        out = Expr(std::make_shared<BinaryNode>(n->op, a, b, n->dtype));
      break;
    }
    case ExprKind::Unary: {
      auto n = e.as<UnaryNode>();
      Expr a = r(n->a);
      if (!a.same_as(n->a)) out = Expr(std::make_shared<UnaryNode>(n->op, a, n->dtype));
      break;
    }
    case ExprKind::Select: {
      auto n = e.as<SelectNode>();
      Expr c = r(n->cond), t = r(n->t), fl = r(n->f);
      if (!c.same_as(n->cond) || !t.same_as(n->t) || !fl.same_as(n->f))
        out = Expr(std::make_shared<SelectNode>(c, t, fl));
      break;
    }
    case ExprKind::Cast: {
      auto n = e.as<CastNode>();
      Expr a = r(n->a);
      if (!a.same_as(n->a)) out = Expr(std::make_shared<CastNode>(n->dtype, a));
      break;
    }
    case ExprKind::Load: {
      auto n = e.as<LoadNode>();
      std::vector<Expr> idx;
      bool changed = false;
      for (auto& i : n->indices) {
        idx.push_back(r(i));
        changed |= !idx.back().same_as(i);
      }
      if (changed) out = Expr(std::make_shared<LoadNode>(n->buffer, std::move(idx)));
      break;
    }
    case ExprKind::Reduce: {
      auto n = e.as<ReduceNode>();
      Expr b = r(n->body), i = r(n->init);
      if (!b.same_as(n->body) || !i.same_as(n->init))
        out = Expr(std::make_shared<ReduceNode>(n->op, b, n->axes, i));
      break;
    }
  }
  return f(out);
}

Stmt rewrite(const Stmt& s, const std::function<Expr(const Expr&)>& ef,
             const std::function<Stmt(const Stmt&)>& sf) {
  if (!s) return s;
  auto re = [&](const Expr& e) { return rewrite(e, ef); };
  auto rs = [&](const Stmt& x) { return rewrite(x, ef, sf); };
  Stmt out = s;
  switch (s->kind) {
    case StmtKind::For: {
      auto n = as<ForNode>(s);
      Expr mn = re(n->min), ext = re(n->extent);
      Stmt b = rs(n->body);
      if (!mn.same_as(n->min) || !ext.same_as(n->extent) || b != n->body)
        out = make_for(n->var, mn, ext, n->for_kind, b);
      break;
    }
    case StmtKind::Store: {
      auto n = as<StoreNode>(s);
      std::vector<Expr> idx;
      bool changed = false;
      for (auto& i : n->indices) {
        idx.push_back(re(i));
        changed |= !idx.back().same_as(i);
      }
      Expr v = re(n->value);
      if (changed || !v.same_as(n->value))
        out = std::make_shared<StoreNode>(n->buffer, std::move(idx), v);
      break;
    }
    case StmtKind::Seq: {
      auto n = as<SeqNode>(s);
      std::vector<Stmt> v;
      bool changed = false;
      for (auto& c : n->stmts) {
        v.push_back(rs(c));
        changed |= v.back() != c;
      }
      if (changed) out = make_seq(std::move(v));
      break;
    }
    case StmtKind::IfThenElse: {
      auto n = as<IfThenElseNode>(s);
      Expr c = re(n->cond);
      Stmt t = rs(n->then_case), e = rs(n->else_case);
      if (!c.same_as(n->cond) || t != n->then_case || e != n->else_case) out = make_if(c, t, e);
      break;
    }
    case StmtKind::Allocate: {
      auto n = as<AllocateNode>(s);
      Stmt b = rs(n->body);
      if (b != n->body) out = make_allocate(n->buffer, b);
      break;
    }
    case StmtKind::TileMatmul: {
      auto n = as<TileMatmulNode>(s);
      TileOperand c = n->c, a = n->a, b = n->b;
      c.offset = re(c.offset);
      a.offset = re(a.offset);
      b.offset = re(b.offset);
      if (!c.offset.same_as(n->c.offset) || !a.offset.same_as(n->a.offset) || !b.offset.same_as(n->b.offset))
        out = std::make_shared<TileMatmulNode>(c, a, b, n->rows, n->cols, n->depth, n->accumulate);
      break;
    }
  }
  return sf ? sf(out) : out;
}

Expr substitute(const Expr& e, const VarMap& vars) {
  if (vars.empty()) return e;
  return rewrite(e, [&](const Expr& x) -> Expr {
    if (x.kind() == ExprKind::Var) {
      auto it = vars.find(x.as<VarNode>());
      if (it != vars.end()) return it->second;
    }
    return x;
  });
}

Stmt substitute(const Stmt& s, const VarMap& vars) {
  if (vars.empty()) return s;
  return rewrite(s, [&](const Expr& x) -> Expr {
    if (x.kind() == ExprKind::Var) {
      auto it = vars.find(x.as<VarNode>());
      if (it != vars.end()) return it->second;
    }
    return x;
  });
}

void visit(const Expr& e, const std::function<void(const Expr&)>& f) {
  f(e);
  switch (e.kind()) {
    case ExprKind::Binary: visit(e.as<BinaryNode>()->a, f); visit(e.as<BinaryNode>()->b, f); break;
    case ExprKind::Unary: visit(e.as<UnaryNode>()->a, f); break;
    case ExprKind::Select: {
      auto n = e.as<SelectNode>();
      visit(n->cond, f); visit(n->t, f); visit(n->f, f);
      break;
    }
    case ExprKind::Cast: visit(e.as<CastNode>()->a, f); break;
    case ExprKind::Load: for (auto& i : e.as<LoadNode>()->indices) visit(i, f); break;
    case ExprKind::Reduce: visit(e.as<ReduceNode>()->body, f); visit(e.as<ReduceNode>()->init, f); break;
    default: break;
  }
}

void visit(const Stmt& s, const std::function<void(const Stmt&)>& f) {
  if (!s) return;
  f(s);
  switch (s->kind) {
    case StmtKind::For: visit(as<ForNode>(s)->body, f); break;
    case StmtKind::Seq:
      for (auto& c : as<SeqNode>(s)->stmts) visit(c, f);
      break;
    case StmtKind::IfThenElse:
      visit(as<IfThenElseNode>(s)->then_case, f);
      visit(as<IfThenElseNode>(s)->else_case, f);
      break;
    case StmtKind::Allocate: visit(as<AllocateNode>(s)->body, f); break;
    case StmtKind::Store: case StmtKind::TileMatmul: break;
  }
}

void buffer_accesses(const Stmt& s, std::set<const BufferNode*>* stored, std::set<const BufferNode*>* loaded) {
  auto note_loads = [&](const Expr& e) {
    visit(e, [&](const Expr& x) {
      if (x.kind() == ExprKind::Load) loaded->insert(x.as<LoadNode>()->buffer.get());
    });
    return e;
  };
  rewrite(s, note_loads, [&](const Stmt& st) {
    if (st && st->kind == StmtKind::Store) stored->insert(as<StoreNode>(st)->buffer.get());
    if (st && st->kind == StmtKind::Allocate) stored->insert(as<AllocateNode>(st)->buffer.get());
    if (st && st->kind == StmtKind::TileMatmul) {
      auto n = as<TileMatmulNode>(st);
      stored->insert(n->c.buffer.get());
      if (n->accumulate) loaded->insert(n->c.buffer.get());
      loaded->insert(n->a.buffer.get());
      loaded->insert(n->b.buffer.get());
    }
    return st;
  });
}

bool touches(const Stmt& s, const BufferNode* b) {
  std::set<const BufferNode*> stored, loaded;
  buffer_accesses(s, &stored, &loaded);
  return stored.count(b) || loaded.count(b);
}

}  // namespace kiln::tir
