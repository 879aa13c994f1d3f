// Loop-IR statements. Like expressions they are immutable and shared. A PrimFunc is one
// generated kernel: buffer parameters plus a body; codegen turns it into one native function.
#pragma once
#include <functional>
#include <set>
#include <unordered_map>

#include "tir/expr.h"

namespace kiln::tir {

enum class StmtKind : uint8_t { For, Store, Seq, IfThenElse, Allocate, TileMatmul };

// How a loop is to be executed. Schedules set these; codegen honours them. Serial loops may
// still be unrolled by LLVM; Rolled ones stay loops (fully unrolling a short reduction loop
// around a register tile lets LLVM merge loads across iterations until the tile spills).
enum class ForKind : uint8_t { Serial, Parallel, Vectorized, Unrolled, Rolled };
const char* forkind_name(ForKind k);

struct StmtNode {
  StmtKind kind;
  explicit StmtNode(StmtKind k) : kind(k) {}
  virtual ~StmtNode() = default;
};
using Stmt = std::shared_ptr<const StmtNode>;

struct ForNode : StmtNode {
  Var var;
  Expr min, extent;  // i64
  ForKind for_kind;
  Stmt body;
  ForNode(Var v, Expr mn, Expr ext, ForKind k, Stmt b)
      : StmtNode(StmtKind::For), var(std::move(v)), min(std::move(mn)), extent(std::move(ext)),
        for_kind(k), body(std::move(b)) {}
};
struct StoreNode : StmtNode {
  Buffer buffer;
  std::vector<Expr> indices;
  Expr value;
  StoreNode(Buffer b, std::vector<Expr> idx, Expr v)
      : StmtNode(StmtKind::Store), buffer(std::move(b)), indices(std::move(idx)), value(std::move(v)) {}
};
struct SeqNode : StmtNode {
  std::vector<Stmt> stmts;
  explicit SeqNode(std::vector<Stmt> s) : StmtNode(StmtKind::Seq), stmts(std::move(s)) {}
};
struct IfThenElseNode : StmtNode {
  Expr cond;
  Stmt then_case, else_case;  // else_case may be null
  IfThenElseNode(Expr c, Stmt t, Stmt e)
      : StmtNode(StmtKind::IfThenElse), cond(std::move(c)), then_case(std::move(t)), else_case(std::move(e)) {}
};
// Scratch memory for `buffer`, live for the duration of `body`.
struct AllocateNode : StmtNode {
  Buffer buffer;
  Stmt body;
  AllocateNode(Buffer b, Stmt s) : StmtNode(StmtKind::Allocate), buffer(std::move(b)), body(std::move(s)) {}
};

// A matrix-tile product over a whole reduction, as one statement (Intel AMX's tensor
// instructions are its target):
//   C[i, j] (+)= sum_k widen(A[i, k]) * widen(B[k / g][j][k % g])   i < rows, j < cols, k < depth
// A is row-major; B is packed in the VNNI layout, g = 4 / (A's element bytes) consecutive k in
// each 32-bit lane (2 for bf16, 4 for int8); C is f32 for bf16 operands, i32 for 8-bit ones.
// Each operand is addressed as a flat element offset of the tile's first element plus a row
// stride in elements (B's rows are the k / g groups). rows and cols are at most 32: on AMX
// targets codegen splits C into up to 2 x 2 tiles of 16 x 16, and per 64 bytes of A's rows
// loads each A and B tile once and issues one tdpbf16ps / tdpbssd / tdpbusd per C tile;
// elsewhere the same sum runs as plain loops (tir/tile.h builds these nodes and the layout).
struct TileOperand {
  Buffer buffer;
  Expr offset;  // i64, in elements
  int64_t row_stride = 0;
};
struct TileMatmulNode : StmtNode {
  TileOperand c, a, b;
  int64_t rows, cols, depth;
  bool accumulate;  // start from C's value rather than 0
  TileMatmulNode(TileOperand c_, TileOperand a_, TileOperand b_, int64_t r, int64_t n, int64_t k, bool acc)
      : StmtNode(StmtKind::TileMatmul), c(std::move(c_)), a(std::move(a_)), b(std::move(b_)), rows(r), cols(n),
        depth(k), accumulate(acc) {}
};

template <typename T> const T* as(const Stmt& s) { return static_cast<const T*>(s.get()); }

Stmt make_for(Var v, Expr min, Expr extent, ForKind k, Stmt body);
Stmt make_store(Buffer b, std::vector<Expr> indices, Expr value);
Stmt make_seq(std::vector<Stmt> stmts);  // flattens nested sequences, drops nulls
Stmt make_if(Expr cond, Stmt then_case, Stmt else_case = nullptr);
Stmt make_allocate(Buffer b, Stmt body);

struct PrimFunc {
  std::string name;
  std::vector<Buffer> params;  // the kernel's arguments, in call order
  Stmt body;
};

// ---- generic traversal -----------------------------------------------------------------
using VarMap = std::unordered_map<const VarNode*, Expr>;
Expr substitute(const Expr& e, const VarMap& vars);
Stmt substitute(const Stmt& s, const VarMap& vars);

// Rebuilds `e` bottom-up, calling `f` on every node after its children were rewritten;
// `f` returns its argument unchanged to keep a node. Unchanged subtrees are shared.
Expr rewrite(const Expr& e, const std::function<Expr(const Expr&)>& f);
// Applies `expr_fn` to every expression in `s` and `stmt_fn` (if given) to every statement
// after its children were rewritten.
Stmt rewrite(const Stmt& s, const std::function<Expr(const Expr&)>& expr_fn,
             const std::function<Stmt(const Stmt&)>& stmt_fn = nullptr);

void visit(const Expr& e, const std::function<void(const Expr&)>& f);  // pre-order
void visit(const Stmt& s, const std::function<void(const Stmt&)>& f);  // pre-order, statements only

// Buffers `s` stores to (allocations count as stores) and loads from.
void buffer_accesses(const Stmt& s, std::set<const BufferNode*>* stored, std::set<const BufferNode*>* loaded);
// Whether `s` stores to or loads from `b`.
bool touches(const Stmt& s, const BufferNode* b);

std::string to_string(const Expr& e);
std::string to_string(const Stmt& s, int indent = 0);
std::string to_string(const PrimFunc& f);

}  // namespace kiln::tir
