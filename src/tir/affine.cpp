#include "tir/affine.h"

#include "tir/stmt.h"

namespace kiln::tir {

bool uses_var(const Expr& e, const VarNode* v) {
  bool used = false;
  visit(e, [&](const Expr& x) { used |= x.kind() == ExprKind::Var && x.as<VarNode>() == v; });
  return used;
}

std::optional<int64_t> coefficient(const Expr& e, const VarNode* v) {
  if (!uses_var(e, v)) return 0;
  if (e.kind() == ExprKind::Var) return 1;
  if (e.kind() != ExprKind::Binary) return std::nullopt;
  auto b = e.as<BinaryNode>();
  std::optional<int64_t> ca = coefficient(b->a, v), cb = coefficient(b->b, v);
  int64_t k;
  if (!ca || !cb) return std::nullopt;
  if (b->op == BinOp::Add) return *ca + *cb;
  if (b->op == BinOp::Sub) return *ca - *cb;
  if (b->op == BinOp::Mul && is_const_int(b->a, &k)) return k * *cb;
  if (b->op == BinOp::Mul && is_const_int(b->b, &k)) return *ca * k;
  return std::nullopt;
}

std::vector<Expr> merge_index_pairs(const std::vector<Expr>& in, const Shape& shape, Shape* merged_shape) {
  std::vector<Expr> out;
  Shape merged;
  for (size_t d = 0; d < in.size(); ++d) {
    int64_t ka, kb;
    if (d + 1 < in.size() && in[d].kind() == ExprKind::Binary && in[d + 1].kind() == ExprKind::Binary) {
      auto a = in[d].as<BinaryNode>(), b = in[d + 1].as<BinaryNode>();
      if (a->op == BinOp::FloorDiv && b->op == BinOp::FloorMod && a->a.equals(b->a) && is_const_int(a->b, &ka) &&
          is_const_int(b->b, &kb) && ka == kb && ka == shape[d + 1]) {
        out.push_back(a->a);
        merged.push_back(shape[d] * shape[d + 1]);
        ++d;
        continue;
      }
    }
    out.push_back(in[d]);
    merged.push_back(shape[d]);
  }
  if (merged_shape) *merged_shape = merged;
  return out;
}

}  // namespace kiln::tir
