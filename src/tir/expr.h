// Loop-IR expressions: small immutable nodes shared through reference-counted handles.
// An Expr never changes after construction, so a rewrite that changes nothing can return the
// same handle, and "did anything change?" is a pointer comparison (as in Halide's IRMutator).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/tensor.h"
#include "tir/dtype.h"

namespace kiln::tir {

enum class ExprKind : uint8_t { IntImm, FloatImm, Var, Binary, Unary, Select, Cast, Load, Reduce };

enum class BinOp : uint8_t {
  Add, Sub, Mul,
  Div,       // float division; integer division truncating toward zero (C semantics)
  Mod,       // float fmod; integer remainder with the dividend's sign (C semantics)
  FloorDiv,  // integer division rounding toward -inf
  FloorMod,  // integer remainder with the divisor's sign (Python semantics); float too
  Min, Max, Pow, Atan2,
  And, Or, Xor,  // bitwise on integers, logical on bool
  Shl, Shr,      // Shr is logical on unsigned, arithmetic on signed
  EQ, NE, LT, LE, GT, GE  // comparisons produce Bool
};

enum class UnOp : uint8_t {
  Neg, Not, Abs, Sign, Exp, Log, Sqrt, Sin, Cos, Tan, Asin, Acos, Atan, Sinh, Cosh, Tanh,
  Asinh, Acosh, Atanh, Erf, Floor, Ceil, Round /* half to even */, IsNaN, IsInf, IsPosInf,
  IsNegInf
};

enum class ReduceOp : uint8_t { Sum, Prod, Max, Min };

const char* binop_name(BinOp op);
const char* unop_name(UnOp op);
const char* reduceop_name(ReduceOp op);
inline bool binop_is_compare(BinOp op) { return op >= BinOp::EQ; }

struct ExprNode {
  ExprKind kind;
  DType dtype;
  ExprNode(ExprKind k, DType t) : kind(k), dtype(t) {}
  virtual ~ExprNode() = default;
};

class Expr {
 public:
  Expr() = default;
  explicit Expr(std::shared_ptr<const ExprNode> n) : node_(std::move(n)) {}
  // Implicit literals; an int literal is i64 and a double literal f32 until matched to the
  // other operand's type by the arithmetic helpers below.
  Expr(int v);
  Expr(int64_t v);
  Expr(double v);

  bool defined() const { return node_ != nullptr; }
  const ExprNode* get() const { return node_.get(); }
  ExprKind kind() const { return node_->kind; }
  DType dtype() const { return node_->dtype; }
  template <typename T> const T* as() const { return static_cast<const T*>(node_.get()); }
  bool same_as(const Expr& o) const { return node_ == o.node_; }
  // Same structure: same kinds, types, operators, constants, variables (by identity) and
  // buffers (by identity), all the way down. Rewrites build new nodes for equal indices.
  bool equals(const Expr& o) const;

 private:
  std::shared_ptr<const ExprNode> node_;
};

// A buffer: a named, typed, row-major array. Identity is the node's address.
struct BufferNode {
  std::string name;
  DType dtype;
  Shape shape;
  // For an integer buffer of constants: a bound on |element| known at compile time (a
  // quantized weight's range decides which 8-bit multiply instructions are exact); -1: none.
  int64_t max_abs = -1;
};
using Buffer = std::shared_ptr<const BufferNode>;
Buffer make_buffer(std::string name, DType dtype, Shape shape, int64_t max_abs = -1);

struct IntImmNode : ExprNode {
  int64_t value;
  IntImmNode(int64_t v, DType t) : ExprNode(ExprKind::IntImm, t), value(v) {}
};
struct FloatImmNode : ExprNode {
  double value;
  FloatImmNode(double v, DType t) : ExprNode(ExprKind::FloatImm, t), value(v) {}
};
struct VarNode : ExprNode {
  std::string name;
  VarNode(std::string n, DType t) : ExprNode(ExprKind::Var, t), name(std::move(n)) {}
};
struct BinaryNode : ExprNode {
  BinOp op;
  Expr a, b;
  BinaryNode(BinOp o, Expr x, Expr y, DType t)
      : ExprNode(ExprKind::Binary, t), op(o), a(std::move(x)), b(std::move(y)) {}
};
struct UnaryNode : ExprNode {
  UnOp op;
  Expr a;
  UnaryNode(UnOp o, Expr x, DType t) : ExprNode(ExprKind::Unary, t), op(o), a(std::move(x)) {}
};
struct SelectNode : ExprNode {
  Expr cond, t, f;
  SelectNode(Expr c, Expr x, Expr y)
      : ExprNode(ExprKind::Select, x.dtype()), cond(std::move(c)), t(std::move(x)), f(std::move(y)) {}
};
struct CastNode : ExprNode {
  Expr a;
  CastNode(DType t, Expr x) : ExprNode(ExprKind::Cast, t), a(std::move(x)) {}
};
struct LoadNode : ExprNode {
  Buffer buffer;
  std::vector<Expr> indices;  // one per buffer dimension, i64
  LoadNode(Buffer b, std::vector<Expr> idx)
      : ExprNode(ExprKind::Load, b->dtype), buffer(std::move(b)), indices(std::move(idx)) {}
};

// A handle that is known to hold a VarNode. Variables are compared by identity.
class Var : public Expr {
 public:
  Var() = default;
  explicit Var(std::string name, DType t = DType::I64);
  const std::string& name() const { return as<VarNode>()->name; }
};

struct IterVar {
  Var var;
  int64_t extent;
};

// Reduction over `axes` of `body`; only allowed as the whole body of a compute stage.
struct ReduceNode : ExprNode {
  ReduceOp op;
  Expr body;
  std::vector<IterVar> axes;
  Expr init;  // identity of `op` for body's type unless given
  ReduceNode(ReduceOp o, Expr b, std::vector<IterVar> ax, Expr i)
      : ExprNode(ExprKind::Reduce, b.dtype()), op(o), body(std::move(b)), axes(std::move(ax)),
        init(std::move(i)) {}
};

// ---- constructors ---------------------------------------------------------------------
Expr make_const(DType t, double v);
Expr make_int(int64_t v, DType t = DType::I64);
Expr binary(BinOp op, Expr a, Expr b);  // literals adopt the other side's type
Expr unary(UnOp op, Expr a);
Expr select(Expr cond, Expr t, Expr f);
Expr cast(DType t, Expr a);
Expr load(Buffer b, std::vector<Expr> indices);
Expr reduce(ReduceOp op, Expr body, std::vector<IterVar> axes, Expr init = Expr());
Expr reduce_identity(ReduceOp op, DType t);
Expr max_value(DType t);
Expr min_value(DType t);  // lowest finite value (or -inf for floats)

inline Expr operator+(Expr a, Expr b) { return binary(BinOp::Add, std::move(a), std::move(b)); }
inline Expr operator-(Expr a, Expr b) { return binary(BinOp::Sub, std::move(a), std::move(b)); }
inline Expr operator*(Expr a, Expr b) { return binary(BinOp::Mul, std::move(a), std::move(b)); }
inline Expr operator/(Expr a, Expr b) { return binary(BinOp::Div, std::move(a), std::move(b)); }
inline Expr operator%(Expr a, Expr b) { return binary(BinOp::Mod, std::move(a), std::move(b)); }
inline Expr operator-(Expr a) { return unary(UnOp::Neg, std::move(a)); }
inline Expr operator&&(Expr a, Expr b) { return binary(BinOp::And, std::move(a), std::move(b)); }
inline Expr operator||(Expr a, Expr b) { return binary(BinOp::Or, std::move(a), std::move(b)); }
inline Expr operator!(Expr a) { return unary(UnOp::Not, std::move(a)); }
inline Expr floordiv(Expr a, Expr b) { return binary(BinOp::FloorDiv, std::move(a), std::move(b)); }
inline Expr floormod(Expr a, Expr b) { return binary(BinOp::FloorMod, std::move(a), std::move(b)); }
inline Expr min(Expr a, Expr b) { return binary(BinOp::Min, std::move(a), std::move(b)); }
inline Expr max(Expr a, Expr b) { return binary(BinOp::Max, std::move(a), std::move(b)); }
inline Expr pow(Expr a, Expr b) { return binary(BinOp::Pow, std::move(a), std::move(b)); }
inline Expr eq(Expr a, Expr b) { return binary(BinOp::EQ, std::move(a), std::move(b)); }
inline Expr ne(Expr a, Expr b) { return binary(BinOp::NE, std::move(a), std::move(b)); }
inline Expr lt(Expr a, Expr b) { return binary(BinOp::LT, std::move(a), std::move(b)); }
inline Expr le(Expr a, Expr b) { return binary(BinOp::LE, std::move(a), std::move(b)); }
inline Expr gt(Expr a, Expr b) { return binary(BinOp::GT, std::move(a), std::move(b)); }
inline Expr ge(Expr a, Expr b) { return binary(BinOp::GE, std::move(a), std::move(b)); }
inline Expr exp(Expr a) { return unary(UnOp::Exp, std::move(a)); }
inline Expr log(Expr a) { return unary(UnOp::Log, std::move(a)); }
inline Expr sqrt(Expr a) { return unary(UnOp::Sqrt, std::move(a)); }
inline Expr tanh(Expr a) { return unary(UnOp::Tanh, std::move(a)); }
inline Expr abs(Expr a) { return unary(UnOp::Abs, std::move(a)); }
inline Expr erf(Expr a) { return unary(UnOp::Erf, std::move(a)); }
inline Expr floor(Expr a) { return unary(UnOp::Floor, std::move(a)); }
inline Expr ceil(Expr a) { return unary(UnOp::Ceil, std::move(a)); }

// Returns true and the value when `e` is an integer constant.
bool is_const_int(const Expr& e, int64_t* v = nullptr);
bool is_const_float(const Expr& e, double* v = nullptr);

}  // namespace kiln::tir
