#include "tir/expr.h"

#include <cmath>
#include <limits>

#include "kiln/error.h"

namespace kiln::tir {

const char* binop_name(BinOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "mod", "floordiv", "floormod",
                                "min", "max", "pow", "atan2", "and", "or", "xor", "shl", "shr",
                                "eq", "ne", "lt", "le", "gt", "ge"};
  return names[int(op)];
}

const char* unop_name(UnOp op) {
  static const char* names[] = {"neg", "not", "abs", "sign", "exp", "log", "sqrt", "sin", "cos",
                                "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh",
                                "acosh", "atanh", "erf", "floor", "ceil", "round", "isnan",
                                "isinf", "isposinf", "isneginf"};
  return names[int(op)];
}

const char* reduceop_name(ReduceOp op) {
  static const char* names[] = {"sum", "prod", "max", "min"};
  return names[int(op)];
}

Expr::Expr(int v) : Expr(make_int(v)) {}
Expr::Expr(int64_t v) : Expr(make_int(v)) {}
Expr::Expr(double v) : Expr(make_const(DType::F32, v)) {}

Var::Var(std::string name, DType t) : Expr(std::make_shared<VarNode>(std::move(name), t)) {}

Buffer make_buffer(std::string name, DType dtype, Shape shape, int64_t max_abs) {
  return std::make_shared<BufferNode>(BufferNode{std::move(name), dtype, std::move(shape), max_abs});
}

Expr make_const(DType t, double v) {
  if (dtype_is_float(t)) return Expr(std::make_shared<FloatImmNode>(v, t));
  if (t == DType::Bool) return Expr(std::make_shared<IntImmNode>(v != 0 ? 1 : 0, t));
  return Expr(std::make_shared<IntImmNode>(int64_t(v), t));
}

Expr make_int(int64_t v, DType t) {
  if (dtype_is_float(t)) return Expr(std::make_shared<FloatImmNode>(double(v), t));
  return Expr(std::make_shared<IntImmNode>(v, t));
}

bool is_const_int(const Expr& e, int64_t* v) {
  if (!e.defined() || e.kind() != ExprKind::IntImm) return false;
  if (v) *v = e.as<IntImmNode>()->value;
  return true;
}

bool is_const_float(const Expr& e, double* v) {
  if (!e.defined() || e.kind() != ExprKind::FloatImm) return false;
  if (v) *v = e.as<FloatImmNode>()->value;
  return true;
}

static bool is_imm(const Expr& e) {
  return e.kind() == ExprKind::IntImm || e.kind() == ExprKind::FloatImm;
}

static Expr retype_imm(const Expr& e, DType t) {
  if (e.kind() == ExprKind::IntImm) return make_int(e.as<IntImmNode>()->value, t);
  return make_const(t, e.as<FloatImmNode>()->value);
}

Expr binary(BinOp op, Expr a, Expr b) {
  KILN_CHECK(a.defined() && b.defined(), "binary ", binop_name(op), " on undefined expr");
  bool shift = op == BinOp::Shl || op == BinOp::Shr;
  if (a.dtype() != b.dtype()) {
    if (is_imm(b)) b = retype_imm(b, a.dtype());
    else if (is_imm(a)) a = retype_imm(a, b.dtype());
    else if (!shift)
      KILN_CHECK(false, "type mismatch in ", binop_name(op), ": ", dtype_name(a.dtype()), " vs ",
                 dtype_name(b.dtype()));
  }
  DType t = binop_is_compare(op) ? DType::Bool : a.dtype();
  return Expr(std::make_shared<BinaryNode>(op, std::move(a), std::move(b), t));
}

Expr unary(UnOp op, Expr a) {
  DType t = (op == UnOp::IsNaN || op == UnOp::IsInf || op == UnOp::IsPosInf || op == UnOp::IsNegInf)
                ? DType::Bool
                : a.dtype();
  return Expr(std::make_shared<UnaryNode>(op, std::move(a), t));
}

Expr select(Expr cond, Expr t, Expr f) {
  if (cond.dtype() != DType::Bool) cond = ne(cond, make_const(cond.dtype(), 0));
  if (t.dtype() != f.dtype()) {
    if (is_imm(f)) f = retype_imm(f, t.dtype());
    else if (is_imm(t)) t = retype_imm(t, f.dtype());
    KILN_CHECK(t.dtype() == f.dtype(), "select branches differ in type");
  }
  return Expr(std::make_shared<SelectNode>(std::move(cond), std::move(t), std::move(f)));
}

Expr cast(DType t, Expr a) {
  if (a.dtype() == t) return a;
  return Expr(std::make_shared<CastNode>(t, std::move(a)));
}

Expr load(Buffer b, std::vector<Expr> indices) {
  KILN_CHECK(indices.size() == b->shape.size(), "load of ", b->name, " with ", indices.size(),
             " indices for rank ", b->shape.size());
  for (auto& i : indices)
    if (i.dtype() != DType::I64) i = cast(DType::I64, i);
  return Expr(std::make_shared<LoadNode>(std::move(b), std::move(indices)));
}

Expr max_value(DType t) {
  switch (t) {
    case DType::Bool: return make_int(1, t);
    case DType::I8: return make_int(127, t);
    case DType::I16: return make_int(32767, t);
    case DType::I32: return make_int(std::numeric_limits<int32_t>::max(), t);
    case DType::I64: return make_int(std::numeric_limits<int64_t>::max(), t);
    case DType::U8: return make_int(255, t);
    case DType::U16: return make_int(65535, t);
    case DType::U32: return make_int(std::numeric_limits<uint32_t>::max(), t);
    case DType::U64: return make_int(-1, t);  // all bits set
    default: return make_const(t, std::numeric_limits<double>::infinity());
  }
}

Expr min_value(DType t) {
  switch (t) {
    case DType::Bool: case DType::U8: case DType::U16: case DType::U32: case DType::U64:
      return make_int(0, t);
    case DType::I8: return make_int(-128, t);
    case DType::I16: return make_int(-32768, t);
    case DType::I32: return make_int(std::numeric_limits<int32_t>::min(), t);
    case DType::I64: return make_int(std::numeric_limits<int64_t>::min(), t);
    default: return make_const(t, -std::numeric_limits<double>::infinity());
  }
}

Expr reduce_identity(ReduceOp op, DType t) {
  switch (op) {
    case ReduceOp::Sum: return make_const(t, 0);
    case ReduceOp::Prod: return make_const(t, 1);
    case ReduceOp::Max: return min_value(t);
    case ReduceOp::Min: return max_value(t);
  }
  return Expr();
}

Expr reduce(ReduceOp op, Expr body, std::vector<IterVar> axes, Expr init) {
  if (!init.defined()) init = reduce_identity(op, body.dtype());
  if (init.dtype() != body.dtype()) init = cast(body.dtype(), init);
  return Expr(std::make_shared<ReduceNode>(op, std::move(body), std::move(axes), std::move(init)));
}

}  // namespace kiln::tir

namespace kiln::tir {

bool Expr::equals(const Expr& o) const {
  if (same_as(o)) return true;
  if (!defined() || !o.defined() || kind() != o.kind() || dtype() != o.dtype()) return false;
  auto all_equal = [](const std::vector<Expr>& a, const std::vector<Expr>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!a[i].equals(b[i])) return false;
    return true;
  };
  switch (kind()) {
    case ExprKind::IntImm: return as<IntImmNode>()->value == o.as<IntImmNode>()->value;
    case ExprKind::FloatImm: return as<FloatImmNode>()->value == o.as<FloatImmNode>()->value;
    case ExprKind::Var: return false;  // identity, checked above
    case ExprKind::Binary: {
      auto x = as<BinaryNode>(), y = o.as<BinaryNode>();
      return x->op == y->op && x->a.equals(y->a) && x->b.equals(y->b);
    }
    case ExprKind::Unary: return as<UnaryNode>()->op == o.as<UnaryNode>()->op && as<UnaryNode>()->a.equals(o.as<UnaryNode>()->a);
    case ExprKind::Select: {
      auto x = as<SelectNode>(), y = o.as<SelectNode>();
      return x->cond.equals(y->cond) && x->t.equals(y->t) && x->f.equals(y->f);
    }
    case ExprKind::Cast: return as<CastNode>()->a.equals(o.as<CastNode>()->a);
    case ExprKind::Load:
      return as<LoadNode>()->buffer == o.as<LoadNode>()->buffer && all_equal(as<LoadNode>()->indices, o.as<LoadNode>()->indices);
    case ExprKind::Reduce: return false;
  }
  return false;
}

}  // namespace kiln::tir
