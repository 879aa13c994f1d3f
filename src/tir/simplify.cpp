#include "tir/simplify.h"

#include <cmath>

namespace kiln::tir {

namespace {

bool int_like(DType t) { return !dtype_is_float(t); }

Expr fold_binary(const BinaryNode* n, const Expr& self) {
  int64_t a, b;
  bool ca = is_const_int(n->a, &a), cb = is_const_int(n->b, &b);
  DType t = n->a.dtype();
  if (t == DType::I64 && ca && cb) {
    switch (n->op) {
      case BinOp::Add: return make_int(a + b);
      case BinOp::Sub: return make_int(a - b);
      case BinOp::Mul: return make_int(a * b);
      case BinOp::Min: return make_int(std::min(a, b));
      case BinOp::Max: return make_int(std::max(a, b));
      case BinOp::FloorDiv:
        if (b != 0) return make_int(a / b - ((a % b != 0) && ((a < 0) != (b < 0))));
        break;
      case BinOp::FloorMod:
        if (b != 0) return make_int(((a % b) + b) % b);
        break;
      case BinOp::Div: if (b != 0) return make_int(a / b); break;
      case BinOp::Mod: if (b != 0) return make_int(a % b); break;
      case BinOp::LT: return make_int(a < b, DType::Bool);
      case BinOp::LE: return make_int(a <= b, DType::Bool);
      case BinOp::GT: return make_int(a > b, DType::Bool);
      case BinOp::GE: return make_int(a >= b, DType::Bool);
      case BinOp::EQ: return make_int(a == b, DType::Bool);
      case BinOp::NE: return make_int(a != b, DType::Bool);
      default: break;
    }
  }
  if (t == DType::Bool && (ca || cb)) {
    int64_t c = ca ? a : b;
    const Expr& other = ca ? n->b : n->a;
    if (n->op == BinOp::And) return c ? other : make_int(0, DType::Bool);
    if (n->op == BinOp::Or) return c ? make_int(1, DType::Bool) : other;
  }
  if (int_like(t)) {
    if (n->op == BinOp::Add && ca && a == 0) return n->b;
    if ((n->op == BinOp::Add || n->op == BinOp::Sub) && cb && b == 0) return n->a;
    if (n->op == BinOp::Mul && ((ca && a == 0) || (cb && b == 0)) && t == DType::I64) return make_int(0);
    if (n->op == BinOp::Mul && ca && a == 1) return n->b;
    if (n->op == BinOp::Mul && cb && b == 1) return n->a;
    if ((n->op == BinOp::FloorDiv || n->op == BinOp::Div) && cb && b == 1) return n->a;
    if ((n->op == BinOp::FloorMod || n->op == BinOp::Mod) && cb && b == 1 && t == DType::I64) return make_int(0);
  }
  return self;
}

// An f32 value that is always an integer (or NaN): a rounding, an integer converted, a
// constant, and sums, differences, products, minima and maxima of those (a result beyond 2^24
// is rounded to a float that is an integer too).
bool integral_f32(const Expr& e) {
  if (e.dtype() != DType::F32) return false;
  double v;
  switch (e.kind()) {
    case ExprKind::FloatImm: return is_const_float(e, &v) && v == std::floor(v);
    case ExprKind::Cast: return !dtype_is_float(e.as<CastNode>()->a.dtype());
    case ExprKind::Unary: {
      auto op = e.as<UnaryNode>()->op;
      return op == UnOp::Round || op == UnOp::Floor || op == UnOp::Ceil;
    }
    case ExprKind::Binary: {
      auto n = e.as<BinaryNode>();
      bool closed = n->op == BinOp::Add || n->op == BinOp::Sub || n->op == BinOp::Mul || n->op == BinOp::Min ||
                    n->op == BinOp::Max;
      return closed && integral_f32(n->a) && integral_f32(n->b);
    }
    default: return false;
  }
}

// `x` clamped by constant bounds into [lo, hi] on its outermost two operations:
// max(lo, min(hi, y)) or min(hi, max(lo, y)), either operand order.
bool clamped_within(const Expr& x, double lo, double hi) {
  auto bound = [](const Expr& e, BinOp op, double* c, Expr* rest) {
    if (e.kind() != ExprKind::Binary || e.as<BinaryNode>()->op != op) return false;
    auto n = e.as<BinaryNode>();
    if (is_const_float(n->a, c)) *rest = n->b;
    else if (is_const_float(n->b, c)) *rest = n->a;
    else return false;
    return true;
  };
  double c1, c2;
  Expr inner, rest;
  if (bound(x, BinOp::Max, &c1, &inner)) return c1 >= lo && bound(inner, BinOp::Min, &c2, &rest) && c2 <= hi;
  if (bound(x, BinOp::Min, &c1, &inner)) return c1 <= hi && bound(inner, BinOp::Max, &c2, &rest) && c2 >= lo;
  return false;
}

Expr simplify_node(const Expr& e) {
  switch (e.kind()) {
    case ExprKind::Binary: return fold_binary(e.as<BinaryNode>(), e);
    case ExprKind::Select: {
      auto n = e.as<SelectNode>();
      int64_t c;
      if (is_const_int(n->cond, &c)) return c ? n->t : n->f;
      if (n->t.same_as(n->f)) return n->t;
      return e;
    }
    case ExprKind::Cast: {
      auto n = e.as<CastNode>();
      int64_t v;
      if (is_const_int(n->a, &v) && dtype_is_int(e.dtype()) && dtype_is_int(n->a.dtype()) &&
          dtype_bytes(e.dtype()) == 8)
        return make_int(v, e.dtype());
      if (n->a.kind() == ExprKind::Cast && n->a.dtype() == DType::I64 && e.dtype() == DType::I64)
        return n->a;
      // An integer constant converted to f32 (a zero point's bounds: f32(u8(255))).
      if (e.dtype() == DType::F32 && is_const_int(n->a, &v) && std::abs(double(v)) < 16777216.0)
        return make_const(DType::F32, double(v));
      // f32(u8(x)) for an integer x already clamped into u8's range (a quantized value
      // dequantized in the same kernel: QuantizeLinear then DequantizeLinear) is x itself; for
      // a NaN x the conversion to u8 was undefined anyway.
      if (e.dtype() == DType::F32 && n->a.kind() == ExprKind::Cast) {
        auto inner = n->a.as<CastNode>();
        DType t = n->a.dtype();
        double lo = t == DType::U8 ? 0 : t == DType::I8 ? -128 : t == DType::U16 ? 0 : -32768;
        double hi = t == DType::U8 ? 255 : t == DType::I8 ? 127 : t == DType::U16 ? 65535 : 32767;
        bool small = t == DType::U8 || t == DType::I8 || t == DType::U16 || t == DType::I16;
        if (small && integral_f32(inner->a) && clamped_within(inner->a, lo, hi)) return inner->a;
      }
      return e;
    }
    case ExprKind::Unary: {
      auto n = e.as<UnaryNode>();
      int64_t v;
      if (n->op == UnOp::Not && n->a.dtype() == DType::Bool && is_const_int(n->a, &v))
        return make_int(!v, DType::Bool);
      // Rounding an integer (round(round(x / s) + zero point)) changes nothing.
      if ((n->op == UnOp::Round || n->op == UnOp::Floor || n->op == UnOp::Ceil) && integral_f32(n->a)) return n->a;
      return e;
    }
    default: return e;
  }
}

}  // namespace

Expr simplify(const Expr& e) { return rewrite(e, simplify_node); }

Stmt simplify(const Stmt& s) {
  return rewrite(s, simplify_node, [](const Stmt& st) -> Stmt {
    if (!st) return st;
    if (st->kind == StmtKind::For) {
      auto n = as<ForNode>(st);
      int64_t ext;
      if (is_const_int(n->extent, &ext)) {
        if (ext <= 0) return make_seq({});
        if (ext == 1 && n->for_kind != ForKind::Parallel)  // the body again, with the variable a constant
          return simplify(substitute(n->body, VarMap{{n->var.as<VarNode>(), n->min}}));
      }
    }
    if (st->kind == StmtKind::IfThenElse) {
      auto n = as<IfThenElseNode>(st);
      int64_t c;
      if (is_const_int(n->cond, &c)) return c ? n->then_case : n->else_case;
    }
    return st;
  });
}

}  // namespace kiln::tir
