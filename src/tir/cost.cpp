#include "tir/cost.h"

namespace kiln::tir {

namespace {

int64_t float_ops(const Expr& e) {
  int64_t n = 0;
  visit(e, [&](const Expr& x) {
    if (x.kind() != ExprKind::Binary || !dtype_is_float(x.dtype())) return;
    switch (x.as<BinaryNode>()->op) {
      case BinOp::Add: case BinOp::Sub: case BinOp::Mul: case BinOp::Div: case BinOp::Min: case BinOp::Max: ++n; break;
      default: break;
    }
  });
  return n;
}

int64_t flops(const Stmt& s) {
  if (!s) return 0;
  switch (s->kind) {
    case StmtKind::For: {
      auto n = as<ForNode>(s);
      int64_t ext = 1;
      is_const_int(n->extent, &ext);
      return ext * flops(n->body);
    }
    case StmtKind::Seq: {
      int64_t total = 0;
      for (auto& c : as<SeqNode>(s)->stmts) total += flops(c);
      return total;
    }
    case StmtKind::IfThenElse: {
      auto n = as<IfThenElseNode>(s);
      return std::max(flops(n->then_case), flops(n->else_case));
    }
    case StmtKind::Allocate: return flops(as<AllocateNode>(s)->body);
    case StmtKind::Store: return float_ops(as<StoreNode>(s)->value);
  }
  return 0;
}

}  // namespace

KernelCost estimate_cost(const PrimFunc& f) {
  KernelCost c;
  c.flops = flops(f.body);
  for (auto& b : f.params) c.bytes += shape_numel(b->shape) * dtype_bytes(b->dtype);
  return c;
}

}  // namespace kiln::tir
