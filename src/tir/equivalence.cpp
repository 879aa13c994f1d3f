#include "tir/equivalence.h"

#include <unordered_map>

namespace kiln::tir {

namespace {

struct Matcher {
  std::unordered_map<const VarNode*, const VarNode*> vars;
  std::unordered_map<const BufferNode*, const BufferNode*> bufs;

  bool bind(const Buffer& a, const Buffer& b) {
    if (a->dtype != b->dtype || a->shape != b->shape || a->max_abs != b->max_abs) return false;
    auto [it, fresh] = bufs.emplace(a.get(), b.get());
    return fresh ? true : it->second == b.get();
  }
  bool buffer(const Buffer& a, const Buffer& b) {
    auto it = bufs.find(a.get());
    return it != bufs.end() && it->second == b.get();
  }

  bool expr(const Expr& a, const Expr& b) {
    if (a.defined() != b.defined()) return false;
    if (!a.defined()) return true;
    if (a.kind() != b.kind() || a.dtype() != b.dtype()) return false;
    switch (a.kind()) {
      case ExprKind::IntImm: return a.as<IntImmNode>()->value == b.as<IntImmNode>()->value;
      case ExprKind::FloatImm: {
        double x = a.as<FloatImmNode>()->value, y = b.as<FloatImmNode>()->value;
        return x == y || (x != x && y != y);
      }
      case ExprKind::Var: {
        auto it = vars.find(a.as<VarNode>());
        return it != vars.end() && it->second == b.as<VarNode>();
      }
      case ExprKind::Binary: {
        auto x = a.as<BinaryNode>(), y = b.as<BinaryNode>();
        return x->op == y->op && expr(x->a, y->a) && expr(x->b, y->b);
      }
      case ExprKind::Unary:
        return a.as<UnaryNode>()->op == b.as<UnaryNode>()->op && expr(a.as<UnaryNode>()->a, b.as<UnaryNode>()->a);
      case ExprKind::Select: {
        auto x = a.as<SelectNode>(), y = b.as<SelectNode>();
        return expr(x->cond, y->cond) && expr(x->t, y->t) && expr(x->f, y->f);
      }
      case ExprKind::Cast: return expr(a.as<CastNode>()->a, b.as<CastNode>()->a);
      case ExprKind::Load: {
        auto x = a.as<LoadNode>(), y = b.as<LoadNode>();
        return buffer(x->buffer, y->buffer) && exprs(x->indices, y->indices);
      }
      case ExprKind::Reduce: return false;  // not in lowered kernels
    }
    return false;
  }
  bool exprs(const std::vector<Expr>& a, const std::vector<Expr>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!expr(a[i], b[i])) return false;
    return true;
  }

  bool stmt(const Stmt& a, const Stmt& b) {
    if (!a || !b) return !a && !b;
    if (a->kind != b->kind) return false;
    switch (a->kind) {
      case StmtKind::For: {
        auto x = as<ForNode>(a), y = as<ForNode>(b);
        if (x->for_kind != y->for_kind || !expr(x->min, y->min) || !expr(x->extent, y->extent)) return false;
        vars[x->var.as<VarNode>()] = y->var.as<VarNode>();
        return stmt(x->body, y->body);
      }
      case StmtKind::Store: {
        auto x = as<StoreNode>(a), y = as<StoreNode>(b);
        return buffer(x->buffer, y->buffer) && exprs(x->indices, y->indices) && expr(x->value, y->value);
      }
      case StmtKind::Seq: {
        auto& x = as<SeqNode>(a)->stmts;
        auto& y = as<SeqNode>(b)->stmts;
        if (x.size() != y.size()) return false;
        for (size_t i = 0; i < x.size(); ++i)
          if (!stmt(x[i], y[i])) return false;
        return true;
      }
      case StmtKind::IfThenElse: {
        auto x = as<IfThenElseNode>(a), y = as<IfThenElseNode>(b);
        return expr(x->cond, y->cond) && stmt(x->then_case, y->then_case) && stmt(x->else_case, y->else_case);
      }
      case StmtKind::Allocate: {
        auto x = as<AllocateNode>(a), y = as<AllocateNode>(b);
        return bind(x->buffer, y->buffer) && stmt(x->body, y->body);
      }
      case StmtKind::TileMatmul: {
        auto x = as<TileMatmulNode>(a), y = as<TileMatmulNode>(b);
        auto same = [&](const TileOperand& p, const TileOperand& q) {
          return buffer(p.buffer, q.buffer) && expr(p.offset, q.offset) && p.row_stride == q.row_stride;
        };
        return x->rows == y->rows && x->cols == y->cols && x->depth == y->depth && x->accumulate == y->accumulate &&
               same(x->c, y->c) && same(x->a, y->a) && same(x->b, y->b);
      }
    }
    return false;
  }
};

int64_t count(const Stmt& s) {
  if (!s) return 0;
  switch (s->kind) {
    case StmtKind::For: return 1 + count(as<ForNode>(s)->body);
    case StmtKind::Seq: {
      int64_t n = 1;
      for (auto& c : as<SeqNode>(s)->stmts) n += count(c);
      return n;
    }
    case StmtKind::IfThenElse: return 1 + count(as<IfThenElseNode>(s)->then_case) + count(as<IfThenElseNode>(s)->else_case);
    case StmtKind::Allocate: return 1 + count(as<AllocateNode>(s)->body);
    case StmtKind::Store: case StmtKind::TileMatmul: return 1;
  }
  return 0;
}

}  // namespace

bool equivalent(const PrimFunc& a, const PrimFunc& b) {
  if (a.params.size() != b.params.size()) return false;
  Matcher m;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (!m.bind(a.params[i], b.params[i])) return false;
  return m.stmt(a.body, b.body);
}

std::string equivalence_key(const PrimFunc& f) {
  std::string k = std::to_string(count(f.body));
  for (auto& p : f.params) k += "|" + std::string(dtype_name(p->dtype)) + shape_str(p->shape) + "~" + std::to_string(p->max_abs);
  return k;
}

}  // namespace kiln::tir
