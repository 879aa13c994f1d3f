#include "tir/cost.h"

namespace kiln::tir {

namespace {

// Arithmetic on data: float operations, and the i32 operations of quantized products (index
// arithmetic is i64, so it does not count).
int64_t data_ops(const Expr& e) {
  int64_t n = 0;
  visit(e, [&](const Expr& x) {
    if (x.kind() != ExprKind::Binary || !(dtype_is_float(x.dtype()) || x.dtype() == DType::I32)) return;
    switch (x.as<BinaryNode>()->op) {
      case BinOp::Add: case BinOp::Sub: case BinOp::Mul: case BinOp::Div: case BinOp::Min: case BinOp::Max: ++n; break;
      default: break;
    }
  });
  return n;
}

}  // namespace

int64_t sum_over_stores(const Stmt& s, const std::function<int64_t(const StoreNode*)>& per_store,
                        const std::function<int64_t(const TileMatmulNode*)>& per_tile) {
  if (!s) return 0;
  switch (s->kind) {
    case StmtKind::For: {
      auto n = as<ForNode>(s);
      int64_t ext = 1;
      is_const_int(n->extent, &ext);
      return ext * sum_over_stores(n->body, per_store, per_tile);
    }
    case StmtKind::Seq: {
      int64_t total = 0;
      for (auto& c : as<SeqNode>(s)->stmts) total += sum_over_stores(c, per_store, per_tile);
      return total;
    }
    case StmtKind::IfThenElse: {
      auto n = as<IfThenElseNode>(s);
      return std::max(sum_over_stores(n->then_case, per_store, per_tile), sum_over_stores(n->else_case, per_store, per_tile));
    }
    case StmtKind::Allocate: return sum_over_stores(as<AllocateNode>(s)->body, per_store, per_tile);
    case StmtKind::Store: return per_store(as<StoreNode>(s));
    case StmtKind::TileMatmul: return per_tile ? per_tile(as<TileMatmulNode>(s)) : 0;
  }
  return 0;
}

int64_t estimate_work(const Stmt& s) {
  return sum_over_stores(s, [](const StoreNode*) { return int64_t(1); },
                         [](const TileMatmulNode* t) { return t->rows * t->cols * t->depth; });
}

KernelCost estimate_cost(const PrimFunc& f) {
  KernelCost c;
  c.flops = sum_over_stores(f.body, [](const StoreNode* st) { return data_ops(st->value); },
                            [](const TileMatmulNode* t) { return 2 * t->rows * t->cols * t->depth; });
  for (auto& b : f.params) c.bytes += shape_numel(b->shape) * dtype_bytes(b->dtype);
  return c;
}

}  // namespace kiln::tir
