#include "tir/tile_schedule.h"

#include "tir/tile.h"

namespace kiln::tir {

namespace {

// The bf16 load under a widening cast to f32, or null.
const LoadNode* widened_bf16_load(const Expr& e) {
  if (e.kind() != ExprKind::Cast || e.dtype() != DType::F32) return nullptr;
  const Expr& x = e.as<CastNode>()->a;
  if (x.kind() != ExprKind::Load || x.dtype() != DType::BF16) return nullptr;
  return x.as<LoadNode>();
}

bool is_var(const Expr& e, const Var& v) { return e.kind() == ExprKind::Var && e.as<VarNode>() == v.as<VarNode>(); }

bool is_zero(const Expr& e) {
  if (!e.defined()) return true;
  int64_t i;
  if (is_const_int(e, &i)) return i == 0;
  return e.kind() == ExprKind::FloatImm && e.as<FloatImmNode>()->value == 0;
}

// Row-major flat offset of `index` in a buffer of `shape`.
Expr flat_offset(const std::vector<Expr>& index, const Shape& shape) {
  Expr off = make_int(0);
  for (size_t d = 0; d < index.size(); ++d) off = off * make_int(shape[d]) + index[d];
  return off;
}

}  // namespace

Stmt schedule_bf16_tiles(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r,
                         const Epilogue& epilogue, const BufferSet& constants) {
  size_t rank = axes.size();
  if (r->op != ReduceOp::Sum || r->dtype != DType::F32 || r->axes.size() != 1 || rank < 2 || !is_zero(r->init))
    return nullptr;
  if (r->body.kind() != ExprKind::Binary || r->body.as<BinaryNode>()->op != BinOp::Mul) return nullptr;
  const Var& k = r->axes[0].var;
  const LoadNode* a = widened_bf16_load(r->body.as<BinaryNode>()->a);
  const LoadNode* b = widened_bf16_load(r->body.as<BinaryNode>()->b);
  if (a && b && constants.count(a->buffer.get())) std::swap(a, b);
  if (!a || !b || !constants.count(b->buffer.get()) || b->indices.size() != 2) return nullptr;
  // B[k, n], or B[n, k] (a Gemm with transB): either way packed into one layout below.
  bool b_transposed = is_var(b->indices[0], axes[rank - 1]) && is_var(b->indices[1], k);
  if (!b_transposed && !(is_var(b->indices[0], k) && is_var(b->indices[1], axes[rank - 1]))) return nullptr;
  if (dst->shape.size() != rank || a->indices.size() != rank || !is_var(a->indices[rank - 1], k) ||
      !is_var(a->indices[rank - 2], axes[rank - 2]) || a->buffer->shape[rank - 2] != dst->shape[rank - 2])
    return nullptr;
  // Leading (batch) dimensions: A's own, or 0 where A broadcasts over them.
  for (size_t d = 0; d + 2 < rank; ++d)
    if (!is_var(a->indices[d], axes[d]) && !is_zero(a->indices[d])) return nullptr;
  int64_t m = dst->shape[rank - 2], n = dst->shape[rank - 1], kk = r->axes[0].extent;
  if (kk % (kTileRowBytes / 2)) return nullptr;

  // B in the VNNI layout, filled from the constant only: hoisted and run at compile time.
  Buffer packed = make_buffer(dst->name + "_vnni", DType::BF16, {kk * n});
  Var pk("vnni_k"), pn("vnni_n");
  Stmt pack = make_for(pk, make_int(0), make_int(kk), ForKind::Serial,
                       make_for(pn, make_int(0), make_int(n), ForKind::Serial,
                                make_store(packed, {vnni_index(pk, pn, n, vnni_group(DType::BF16))},
                                           load(b->buffer, b_transposed ? std::vector<Expr>{pn, pk}
                                                                        : std::vector<Expr>{pk, pn}))));
  // One m x n product per index of the leading (batch) dimensions.
  std::vector<Expr> batch;
  for (size_t d = 0; d + 2 < rank; ++d) batch.push_back(axes[d]);
  auto at = [&](const Shape& shape, const Expr& last2, const Expr& last) {
    std::vector<Expr> idx = batch;
    idx.push_back(last2);
    idx.push_back(last);
    return flat_offset(idx, shape);
  };
  std::vector<Expr> a_start(a->indices.begin(), a->indices.end() - 2);
  a_start.push_back(make_int(0));
  a_start.push_back(make_int(0));
  Expr a_base = flat_offset(a_start, a->buffer->shape);
  bool direct = !epilogue.value.defined() && dst->dtype == DType::F32;
  Stmt body;
  if (direct) {
    body = tiled_matmul(dst, a->buffer, packed, m, n, kk, false, at(dst->shape, make_int(0), make_int(0)), a_base);
  } else {
    // The products into an f32 scratch of one m x n block, then the epilogue per element.
    Buffer c = make_buffer(dst->name + "_tiles", DType::F32, {m * n});
    std::vector<Expr> out(axes.begin(), axes.end());
    Expr result = load(c, {Expr(axes[rank - 2]) * make_int(n) + axes[rank - 1]});
    Expr value = substitute(epilogue.value, {{epilogue.result.as<VarNode>(), result}});
    Stmt apply = make_for(axes[rank - 2], make_int(0), make_int(m), ForKind::Serial,
                          make_for(axes[rank - 1], make_int(0), make_int(n), ForKind::Serial, make_store(dst, out, value)));
    body = make_allocate(c, make_seq({tiled_matmul(c, a->buffer, packed, m, n, kk, false, make_int(0), a_base), apply}));
  }
  for (size_t d = batch.size(); d-- > 0;)
    body = make_for(axes[d], make_int(0), make_int(dst->shape[d]), ForKind::Serial, body);
  return make_allocate(packed, make_seq({pack, body}));
}

}  // namespace kiln::tir
