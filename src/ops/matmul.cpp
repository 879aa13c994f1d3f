// Matrix products: MatMul (numpy semantics), Gemm, MatMulInteger, QLinearMatMul and Einsum.
// Each is one reduction stage (the contraction) plus, where needed, an elementwise epilogue
// stage (scaling, bias, requantization, cast back from the accumulation type).
#include <map>

#include "ops/nn_common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

// Product of two operand elements as the summand of the contraction (e.g. widened and with
// zero points subtracted); `m` and `n` are the row/column the elements belong to.
using Summand = std::function<Expr(Expr a, Expr b, Expr m, Expr n)>;

// numpy.matmul: a 1-D first operand is a row vector, a 1-D second operand a column vector
// (their unit dimension is dropped from the result); leading batch dimensions broadcast.
Tensor batched_matmul(const OpContext& ctx, const Tensor& a, const Tensor& b, const Summand& summand,
                      const std::string& name, const Tensor* column_init = nullptr) {
  if (a.ndim() == 0 || b.ndim() == 0) ctx.error("MatMul operands must have rank >= 1");
  bool a_vec = a.ndim() == 1, b_vec = b.ndim() == 1;
  int64_t k_extent = a.dim(-1);
  if (b.dim(b_vec ? 0 : -2) != k_extent)
    ctx.error("inner dimensions differ: ", shape_str(a.shape()), " x ", shape_str(b.shape()));
  Shape a_batch(a.shape().begin(), a.shape().end() - (a_vec ? 1 : 2));
  Shape b_batch(b.shape().begin(), b.shape().end() - (b_vec ? 1 : 2));
  Shape out = broadcast_shapes(ctx, {a_batch, b_batch});
  size_t nb = out.size();
  if (!a_vec) out.push_back(a.dim(-2));
  if (!b_vec) out.push_back(b.dim(-1));

  // Batch indices of an operand whose batch dims are right-aligned to the output's.
  auto batch_index = [&](const Tensor& t, size_t t_batch, const std::vector<Var>& i) {
    std::vector<Expr> idx;
    for (size_t d = 0; d < t_batch; ++d) {
      size_t od = nb - t_batch + d;
      idx.push_back(t.dim(int(d)) == 1 ? Expr(0) : Expr(i[od]));
    }
    return idx;
  };
  return tir::compute(out, [&](const std::vector<Var>& i) {
    tir::IterVar k = tir::reduce_axis(k_extent, name + "_k");
    Expr m = a_vec ? Expr(0) : Expr(i[nb]);
    Expr n = b_vec ? Expr(0) : Expr(i.back());
    std::vector<Expr> ai = batch_index(a, a_batch.size(), i), bi = batch_index(b, b_batch.size(), i);
    if (!a_vec) ai.push_back(m);
    ai.push_back(k.var);
    bi.push_back(k.var);
    if (!b_vec) bi.push_back(n);
    Expr term = summand(a(ai), b(bi), m, n);
    // A column's initial value (a bias) starts the sum, so it stays one reduction.
    Expr init = column_init ? (*column_init)(n) : tir::make_const(term.dtype(), 0);
    return tir::reduce(tir::ReduceOp::Sum, term, {k}, init);
  }, name);
}

// Summand of a floating/integer product accumulated in `acc`.
Summand widened_product(DType acc) {
  return [acc](Expr x, Expr y, Expr, Expr) { return cast_if_needed(acc, x) * cast_if_needed(acc, y); };
}

std::vector<Tensor> matmul(OpContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != b.dtype()) ctx.error("operands have different types");
  DType acc = accum_dtype(a.dtype()), result = product_dtype(ctx, a.dtype());
  Tensor prod = batched_matmul(ctx, a, b, widened_product(acc), ctx.out_name() + (acc == result ? "" : "_acc"));
  return {cast_stage(prod, result, ctx.out_name())};
}

// Integer matrix product with zero points: a's zero point is per row (or per tensor), b's per
// column; int32 accumulation.
Summand zero_point_product(OpContext& ctx, int a_zp, int b_zp) {
  return [&ctx, a_zp, b_zp](Expr x, Expr y, Expr m, Expr n) {
    return subtract_zero_point(tir::cast(DType::I32, x), zero_point_i32(ctx, a_zp, m)) *
           subtract_zero_point(tir::cast(DType::I32, y), zero_point_i32(ctx, b_zp, n));
  };
}

std::vector<Tensor> matmul_integer(OpContext& ctx) {
  return {batched_matmul(ctx, ctx.input(0), ctx.input(1), zero_point_product(ctx, 2, 3), ctx.out_name())};
}

// QLinearMatMul(a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp [, bias]): integer product
// rescaled by a_scale * b_scale / y_scale and requantized to y_zp's type. The int32 bias per
// column (scale a_scale * b_scale) is kiln's own input, which graph/qdq.cpp gives the
// quantized Gemm it fuses; ONNX models cannot pass it (the checker refuses a 9th input).
std::vector<Tensor> qlinear_matmul(OpContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  Summand product = zero_point_product(ctx, 2, 5);
  if (ctx.has_input(8)) {
    const Tensor& bias = ctx.input(8);
    if (bias.ndim() != 1 || bias.dtype() != DType::I32 || bias.dim(0) != b.dim(-1))
      ctx.error("bias must be i32[", b.dim(-1), "], got ", dtype_name(bias.dtype()), shape_str(bias.shape()));
  }
  Tensor acc = batched_matmul(ctx, a, b, product, ctx.out_name() + "_acc", ctx.has_input(8) ? &ctx.input(8) : nullptr);
  const Tensor& y_zp = ctx.input(7);
  int rows = acc.ndim() - (b.ndim() == 1 ? 1 : 2), last = acc.ndim() - 1;
  return {tir::compute(acc.shape(), [&](const std::vector<Var>& i) {
    Expr m = a.ndim() == 1 ? Expr(0) : Expr(i[rows]);
    Expr n = b.ndim() == 1 ? Expr(0) : Expr(i[last]);
    Expr scale = cast_if_needed(DType::F32, quant_param(ctx, ctx.input(1), m)) *
                 cast_if_needed(DType::F32, quant_param(ctx, ctx.input(4), n)) /
                 cast_if_needed(DType::F32, quant_param(ctx, ctx.input(6), n));
    return quantize(tir::cast(DType::F32, acc(i)) * scale, quant_param(ctx, y_zp, n), y_zp.dtype());
  }, ctx.out_name())};
}

// Gemm: Y = alpha * A' * B' + beta * C, A' = transA ? A^T : A, B' likewise; C (optional since
// opset 11) broadcasts unidirectionally to Y.
std::vector<Tensor> gemm(OpContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  bool trans_a = ctx.attr_int("transA", 0) != 0, trans_b = ctx.attr_int("transB", 0) != 0;
  if (a.ndim() != 2 || b.ndim() != 2) ctx.error("A and B must be 2-D");
  int64_t m_extent = a.dim(trans_a ? 1 : 0), k_extent = a.dim(trans_a ? 0 : 1);
  int64_t n_extent = b.dim(trans_b ? 0 : 1);
  if (b.dim(trans_b ? 1 : 0) != k_extent) ctx.error("inner dimensions differ: ", shape_str(a.shape()), " x ", shape_str(b.shape()));
  DType t = product_dtype(ctx, a.dtype()), acc = accum_dtype(a.dtype());
  Tensor prod = tir::compute({m_extent, n_extent}, [&](const std::vector<Var>& i) {
    tir::IterVar k = tir::reduce_axis(k_extent, ctx.out_name() + "_k");
    Expr x = trans_a ? a(k.var, i[0]) : a(i[0], k.var);
    Expr y = trans_b ? b(i[1], k.var) : b(k.var, i[1]);
    return tir::sum(cast_if_needed(acc, x) * cast_if_needed(acc, y), {k});
  }, ctx.out_name() + "_prod");

  double alpha = ctx.attr_float("alpha", 1.0), beta = ctx.attr_float("beta", 1.0);
  bool has_c = ctx.has_input(2) && beta != 0;
  if (has_c) {
    Shape c_shape = ctx.input(2).shape();
    if (c_shape.size() > 2 || broadcast_shapes(ctx, {c_shape, {m_extent, n_extent}}) != Shape{m_extent, n_extent})
      ctx.error("C of shape ", shape_str(c_shape), " does not broadcast to ", shape_str({m_extent, n_extent}));
  }
  if (alpha == 1.0 && !has_c) return {cast_stage(prod, t, ctx.out_name())};
  return {tir::compute({m_extent, n_extent}, [&](const std::vector<Var>& i) {
    Expr y = prod(i);
    if (alpha != 1.0) y = y * tir::make_const(acc, alpha);
    if (has_c) {
      Expr c = cast_if_needed(acc, broadcast_read(ctx.input(2), i));
      y = y + (beta == 1.0 ? c : c * tir::make_const(acc, beta));
    }
    return cast_if_needed(t, y);
  }, ctx.out_name())};
}

// ---- Einsum ------------------------------------------------------------------------------

// One operand's subscripts with the ellipsis expanded: labels are letters, the broadcast
// dimensions covered by "..." get labels counting down from -1 (rightmost) so that they align
// across operands by position from the right.
using Labels = std::vector<int>;

Labels parse_term(const OpContext& ctx, const std::string& term, int rank, int* ellipsis_rank) {
  Labels labels;
  size_t dots = term.find("...");
  int letters = 0;
  for (char ch : term)
    if (std::isalpha(static_cast<unsigned char>(ch))) ++letters;
  int ell = dots == std::string::npos ? 0 : rank - letters;
  if (ell < 0 || (dots == std::string::npos && letters != rank))
    ctx.error("subscripts '", term, "' do not match an operand of rank ", rank);
  if (ellipsis_rank) *ellipsis_rank = std::max(*ellipsis_rank, ell);
  for (size_t p = 0; p < term.size(); ++p) {
    char ch = term[p];
    if (p == dots) {
      for (int e = ell; e >= 1; --e) labels.push_back(-e);
      p += 2;
    } else if (std::isalpha(static_cast<unsigned char>(ch))) {
      labels.push_back(ch);
    } else if (ch != ' ') {
      ctx.error("invalid character '", ch, "' in equation");
    }
  }
  return labels;
}

std::vector<Tensor> einsum(OpContext& ctx) {
  std::string eq;
  for (char ch : ctx.attr_string("equation", "")) if (ch != ' ') eq += ch;
  size_t arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (int(terms.size()) != ctx.num_inputs()) ctx.error("equation has ", terms.size(), " operands, the node ", ctx.num_inputs());

  std::vector<Tensor> ins;
  std::vector<Labels> in_labels;
  std::map<int, int64_t> extent;  // label -> extent (broadcast over 1 for ellipsis dims)
  std::map<int, int> count;       // label -> occurrences on the left-hand side
  Labels order;                   // labels by first appearance
  int ellipsis_rank = 0;
  for (size_t t = 0; t < terms.size(); ++t) {
    ins.push_back(ctx.input(int(t)));
    in_labels.push_back(parse_term(ctx, terms[t], ins[t].ndim(), &ellipsis_rank));
    for (size_t d = 0; d < in_labels[t].size(); ++d) {
      int l = in_labels[t][d];
      int64_t e = ins[t].dim(int(d));
      if (!count[l]++) order.push_back(l);
      auto [it, fresh] = extent.emplace(l, e);
      if (fresh || it->second == e) continue;
      if (l < 0 && (it->second == 1 || e == 1)) it->second = std::max(it->second, e);
      else ctx.error("label '", char(l > 0 ? l : '.'), "' has extents ", it->second, " and ", e);
    }
  }

  Labels out_labels;
  if (arrow != std::string::npos) {
    int unused = 0;
    std::string rhs = eq.substr(arrow + 2);
    size_t dots = rhs.find("...");
    int letters = int(rhs.size()) - (dots == std::string::npos ? 0 : 3);
    out_labels = parse_term(ctx, rhs, letters + ellipsis_rank, &unused);
  } else {
    // Implicit output: the broadcast dimensions, then labels used once in alphabetical order.
    for (int e = ellipsis_rank; e >= 1; --e) out_labels.push_back(-e);
    for (auto& [l, n] : count)
      if (l > 0 && n == 1) out_labels.push_back(l);
  }
  Shape out_shape;
  for (int l : out_labels) {
    if (!extent.count(l)) ctx.error("output label '", char(l), "' does not appear in the inputs");
    out_shape.push_back(extent[l]);
  }

  DType t = ins[0].dtype(), acc = accum_dtype(t);
  Labels summed;
  for (int l : order)
    if (std::find(out_labels.begin(), out_labels.end(), l) == out_labels.end()) summed.push_back(l);
  Tensor result = tir::compute(out_shape, [&](const std::vector<Var>& i) {
    std::map<int, Expr> index;
    for (size_t d = 0; d < out_labels.size(); ++d) index[out_labels[d]] = i[d];
    std::vector<tir::IterVar> axes;
    for (int l : summed) {
      axes.push_back(tir::reduce_axis(extent[l], ctx.out_name() + "_r" + std::to_string(axes.size())));
      index[l] = axes.back().var;
    }
    Expr prod;
    for (size_t k = 0; k < ins.size(); ++k) {
      std::vector<Expr> idx;
      for (size_t d = 0; d < in_labels[k].size(); ++d)
        idx.push_back(ins[k].dim(int(d)) == 1 ? Expr(0) : index[in_labels[k][d]]);
      Expr v = cast_if_needed(acc, ins[k](idx));
      prod = prod.defined() ? prod * v : v;
    }
    return axes.empty() ? prod : tir::sum(prod, axes);
  }, ctx.out_name() + (acc == t ? "" : "_acc"));
  return {cast_stage(result, t, ctx.out_name())};
}

}  // namespace

void register_matmul(Registry& r) {
  r.add("MatMul", matmul);
  r.add("MatMulInteger", matmul_integer);
  r.add("QLinearMatMul", qlinear_matmul);
  r.add("Gemm", gemm);
  r.add("Einsum", einsum);
}

}  // namespace kiln::ops
