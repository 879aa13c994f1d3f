// Text form of the loop IR, used by --dump-ir and by "IR in, expected text out" tests.
#include <sstream>

#include "tir/stmt.h"

namespace kiln::tir {

static void print(std::ostream& os, const Expr& e) {
  switch (e.kind()) {
    case ExprKind::IntImm: {
      int64_t v = e.as<IntImmNode>()->value;
      if (e.dtype() == DType::I64) os << v;
      else os << dtype_name(e.dtype()) << "(" << v << ")";
      break;
    }
    case ExprKind::FloatImm:
      os << e.as<FloatImmNode>()->value;
      if (e.dtype() != DType::F32) os << dtype_name(e.dtype());
      else os << "f";
      break;
    case ExprKind::Var: os << e.as<VarNode>()->name; break;
    case ExprKind::Binary: {
      auto n = e.as<BinaryNode>();
      const char* sym = nullptr;
      switch (n->op) {
        case BinOp::Add: sym = " + "; break;
        case BinOp::Sub: sym = " - "; break;
        case BinOp::Mul: sym = "*"; break;
        case BinOp::Div: sym = "/"; break;
        case BinOp::Mod: sym = " % "; break;
        case BinOp::LT: sym = " < "; break;
        case BinOp::LE: sym = " <= "; break;
        case BinOp::GT: sym = " > "; break;
        case BinOp::GE: sym = " >= "; break;
        case BinOp::EQ: sym = " == "; break;
        case BinOp::NE: sym = " != "; break;
        case BinOp::And: sym = " && "; break;
        case BinOp::Or: sym = " || "; break;
        default: break;
      }
      if (sym) {
        os << "(";
        print(os, n->a);
        os << sym;
        print(os, n->b);
        os << ")";
      } else {
        os << binop_name(n->op) << "(";
        print(os, n->a);
        os << ", ";
        print(os, n->b);
        os << ")";
      }
      break;
    }
    case ExprKind::Unary:
      os << unop_name(e.as<UnaryNode>()->op) << "(";
      print(os, e.as<UnaryNode>()->a);
      os << ")";
      break;
    case ExprKind::Select: {
      auto n = e.as<SelectNode>();
      os << "select(";
      print(os, n->cond);
      os << ", ";
      print(os, n->t);
      os << ", ";
      print(os, n->f);
      os << ")";
      break;
    }
    case ExprKind::Cast:
      os << dtype_name(e.dtype()) << "(";
      print(os, e.as<CastNode>()->a);
      os << ")";
      break;
    case ExprKind::Load: {
      auto n = e.as<LoadNode>();
      os << n->buffer->name << "[";
      for (size_t i = 0; i < n->indices.size(); ++i) {
        if (i) os << ", ";
        print(os, n->indices[i]);
      }
      os << "]";
      break;
    }
    case ExprKind::Reduce: {
      auto n = e.as<ReduceNode>();
      os << reduceop_name(n->op) << "(";
      print(os, n->body);
      os << ", axes=[";
      for (size_t i = 0; i < n->axes.size(); ++i)
        os << (i ? ", " : "") << n->axes[i].var.name() << ":" << n->axes[i].extent;
      os << "])";
      break;
    }
  }
}

std::string to_string(const Expr& e) {
  std::ostringstream os;
  print(os, e);
  return os.str();
}

static void print(std::ostream& os, const Stmt& s, int ind) {
  std::string pad(ind * 2, ' ');
  if (!s) return;
  switch (s->kind) {
    case StmtKind::For: {
      auto n = as<ForNode>(s);
      os << pad << forkind_name(n->for_kind) << " " << n->var.name() << " in [" << to_string(n->min)
         << ", " << to_string(n->min) << " + " << to_string(n->extent) << "):\n";
      print(os, n->body, ind + 1);
      break;
    }
    case StmtKind::Store: {
      auto n = as<StoreNode>(s);
      os << pad << n->buffer->name << "[";
      for (size_t i = 0; i < n->indices.size(); ++i) os << (i ? ", " : "") << to_string(n->indices[i]);
      os << "] = " << to_string(n->value) << "\n";
      break;
    }
    case StmtKind::Seq:
      for (auto& c : as<SeqNode>(s)->stmts) print(os, c, ind);
      break;
    case StmtKind::IfThenElse: {
      auto n = as<IfThenElseNode>(s);
      os << pad << "if " << to_string(n->cond) << ":\n";
      print(os, n->then_case, ind + 1);
      if (n->else_case) {
        os << pad << "else:\n";
        print(os, n->else_case, ind + 1);
      }
      break;
    }
    case StmtKind::Allocate: {
      auto n = as<AllocateNode>(s);
      os << pad << "allocate " << n->buffer->name << ": " << dtype_name(n->buffer->dtype)
         << shape_str(n->buffer->shape) << "\n";
      print(os, n->body, ind);
      break;
    }
    case StmtKind::TileMatmul: {
      auto n = as<TileMatmulNode>(s);
      auto operand = [](const TileOperand& o) {
        return o.buffer->name + "@" + to_string(o.offset) + "/" + std::to_string(o.row_stride);
      };
      os << pad << "tile_matmul " << n->rows << "x" << n->cols << "x" << n->depth << " " << operand(n->c)
         << (n->accumulate ? " += " : " = ") << operand(n->a) << " * vnni " << operand(n->b) << "\n";
      break;
    }
  }
}

std::string to_string(const Stmt& s, int indent) {
  std::ostringstream os;
  print(os, s, indent);
  return os.str();
}

std::string to_string(const PrimFunc& f) {
  std::ostringstream os;
  os << "func " << f.name << "(";
  for (size_t i = 0; i < f.params.size(); ++i)
    os << (i ? ", " : "") << f.params[i]->name << ": " << dtype_name(f.params[i]->dtype)
       << shape_str(f.params[i]->shape);
  os << "):\n";
  print(os, f.body, 1);
  return os.str();
}

}  // namespace kiln::tir
