#include "tir/tile_schedule.h"

#include <algorithm>
#include <functional>
#include <optional>

#include "tir/affine.h"
#include "tir/simplify.h"
#include "tir/tile.h"

namespace kiln::tir {

namespace {

bool is_var(const Expr& e, const Var& v) { return e.kind() == ExprKind::Var && e.as<VarNode>() == v.as<VarNode>(); }

bool is_zero(const Expr& e) {
  if (!e.defined()) return true;
  int64_t i;
  if (is_const_int(e, &i)) return i == 0;
  return e.kind() == ExprKind::FloatImm && e.as<FloatImmNode>()->value == 0;
}

// The load of type `from` under a widening cast to `to`, or null.
const LoadNode* widened_load(const Expr& e, DType to, std::initializer_list<DType> from) {
  if (e.kind() != ExprKind::Cast || e.dtype() != to) return nullptr;
  const Expr& x = e.as<CastNode>()->a;
  if (x.kind() != ExprKind::Load) return nullptr;
  for (DType t : from)
    if (x.dtype() == t) return x.as<LoadNode>();
  return nullptr;
}

// Row-major flat offset of `index` in a buffer of `shape`.
Expr flat_offset(const std::vector<Expr>& index, const Shape& shape) {
  Expr off = make_int(0);
  for (size_t d = 0; d < index.size(); ++d) off = off * make_int(shape[d]) + index[d];
  return off;
}

// Whether `e` (undefined counts) uses no variable other than `v`.
bool uses_only(const Expr& e, const Var& v) {
  bool only = true;
  if (e.defined())
    visit(e, [&](const Expr& x) { only &= x.kind() != ExprKind::Var || is_var(x, v); });
  return only;
}

// sums[i] = sum over k < depth of i32(element(i, k)), for i < count: the zero-point
// corrections' operand sums (a fill reading only the operand, so hoisted when it is constant).
Stmt operand_sums(const Buffer& sums, int64_t count, int64_t depth, const std::function<Expr(Expr, Expr)>& element) {
  Var i(sums->name + "_i"), k(sums->name + "_k");
  return make_for(i, make_int(0), make_int(count), ForKind::Serial,
                  make_seq({make_store(sums, {Expr(i)}, make_int(0, DType::I32)),
                            make_for(k, make_int(0), make_int(depth), ForKind::Serial,
                                     make_store(sums, {Expr(i)}, load(sums, {Expr(i)}) + cast(DType::I32, element(i, k))))}));
}

// The value stored for one output from its tile product `product`: plus the reduction's initial
// value, minus the zero-point correction (when defined), through the stage's epilogue.
Expr finish(Expr product, const ReduceNode* r, const Expr& correction, const Epilogue& epilogue, DType dst_type) {
  if (r->init.defined() && !is_zero(r->init)) product = r->init + product;
  if (correction.defined()) product = product - correction;
  return epilogue.value.defined() ? substitute(epilogue.value, {{epilogue.result.as<VarNode>(), product}})
                                  : cast(dst_type, product);
}

// The BlockFinish of a stage whose products go to `block` (a 32 x 32 buffer): each result
// (i, j) of a block at (row0, col0) is finished (initial value, zero-point correction,
// epilogue) and stored to dst at the output axes `place` maps (row0 + i, col0 + j) to.
BlockFinish finish_blocks(const Buffer& dst, const std::vector<Var>& axes, const Buffer& block, const ReduceNode* r,
                          const Expr& correction, const Epilogue& epilogue,
                          std::function<VarMap(const Expr& row, const Expr& col)> place) {
  return [=](const Expr& row0, int64_t rows, const Expr& col0, int64_t cols, int band) {
    Var i(dst->name + "_block_i" + std::to_string(band)), j(dst->name + "_block_j" + std::to_string(band));
    Expr value = finish(load(block, {Expr(i) * make_int(kTileBlock * kTileRows) + j}), r, correction, epilogue, dst->dtype);
    VarMap at = place(row0 + i, col0 + j);
    std::vector<Expr> index;
    for (const Var& a : axes) {
      auto it = at.find(a.as<VarNode>());
      index.push_back(it == at.end() ? Expr(a) : simplify(it->second));
    }
    Stmt store = make_store(dst, index, simplify(substitute(value, at)));
    return make_for(i, make_int(0), make_int(rows), ForKind::Serial,
                    make_for(j, make_int(0), make_int(cols), ForKind::Serial, store));
  };
}

// value(k, n) for k in [0, k_extent), n in [0, n_extent) stored at packed[index(k, n)], a VNNI
// packing: g consecutive k of one n next to each other, and the columns of one k group
// contiguous in runs of 8 at least. Runs of 8 columns are one vector store each, of a vector
// that interleaves g rows (the code generator loads each row's 8 values and shuffles them:
// codegen's interleaved_load); the columns past the last run of 8 go one by one.
Stmt vnni_pack(const Buffer& packed, int64_t k_extent, int64_t n_extent, int64_t g,
               const std::function<Expr(const Expr&, const Expr&)>& index,
               const std::function<Expr(const Expr&, const Expr&)>& value) {
  constexpr int64_t kRun = 8;
  Var kg("vnni_kg"), c("vnni_run"), l("vnni_lane"), k("vnni_k"), n("vnni_n");
  int64_t runs = n_extent / kRun;
  std::vector<Stmt> parts;
  if (runs > 0) {
    Expr row = Expr(kg) * make_int(g) + floormod(l, make_int(g)), col = Expr(c) * make_int(kRun) + floordiv(l, make_int(g));
    Stmt store = make_store(packed, {simplify(index(Expr(kg) * make_int(g), Expr(c) * make_int(kRun))) + l}, value(row, col));
    parts.push_back(make_for(kg, make_int(0), make_int(k_extent / g), ForKind::Serial,
                             make_for(c, make_int(0), make_int(runs), ForKind::Serial,
                                      make_for(l, make_int(0), make_int(kRun * g), ForKind::Vectorized, store))));
  }
  if (runs * kRun < n_extent)
    parts.push_back(make_for(k, make_int(0), make_int(k_extent), ForKind::Serial,
                             make_for(n, make_int(runs * kRun), make_int(n_extent - runs * kRun), ForKind::Serial,
                                      make_store(packed, {index(k, n)}, value(k, n)))));
  return make_seq(parts);
}

// The two operands of a tile-shaped product term, A's zero point for the int8 form.
struct Product {
  const LoadNode* a = nullptr;
  const LoadNode* b = nullptr;
  Expr a_zero_point;  // int8: subtracted from A (undefined when 0)
};

std::optional<Product> match_term(const Expr& body, DType acc, const BufferSet& constants) {
  if (body.kind() != ExprKind::Binary || body.as<BinaryNode>()->op != BinOp::Mul) return std::nullopt;
  Expr x = body.as<BinaryNode>()->a, y = body.as<BinaryNode>()->b;
  Product p;
  if (acc == DType::F32) {
    p.a = widened_load(x, acc, {DType::BF16});
    p.b = widened_load(y, acc, {DType::BF16});
    if (p.a && p.b && constants.count(p.a->buffer.get())) std::swap(p.a, p.b);
  } else {
    // (i32(A) - za) * i32(B): the zero point a value the same for every element (no loads
    // that vary over the product's axes; a scalar parameter).
    if (x.kind() == ExprKind::Binary && x.as<BinaryNode>()->op == BinOp::Sub) {
      p.a_zero_point = x.as<BinaryNode>()->b;
      x = x.as<BinaryNode>()->a;
      bool scalar = true;
      visit(p.a_zero_point, [&](const Expr& e) {
        scalar &= e.kind() != ExprKind::Var && (e.kind() != ExprKind::Load || e.as<LoadNode>()->indices.empty());
      });
      if (!scalar) return std::nullopt;
    }
    p.a = widened_load(x, acc, {DType::U8, DType::I8});
    p.b = widened_load(y, acc, {DType::I8});
  }
  if (!p.a || !p.b || constants.count(p.a->buffer.get())) return std::nullopt;
  return p;
}

// The pointwise-convolution form, NCHW: dst[n, m, s...] = init(m) + sum_k W[m, k, 0...] *
// (X[n, k, s...] - zx): per image a product C[M x P] = W[M x K] x X[n][K x P] over the P
// spatial positions, with the weights as the tiles' A (constant, row-major already) and the
// image packed into the VNNI layout as B on every run; zx comes out as zx times W's row sums.
Stmt conv_tiles(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r, const Product& p,
                const Epilogue& epilogue, const BufferSet& constants, int64_t group_bytes) {
  size_t rank = axes.size();
  const LoadNode* x = p.a;  // the activation
  const LoadNode* w = p.b;  // the constant
  const Var& k = r->axes[0].var;
  if (rank < 3 || x->indices.size() < rank || !constants.count(w->buffer.get()) || w->indices.size() < 2) return nullptr;
  if (!is_var(x->indices[0], axes[0]) || !is_var(x->indices[1], k) || x->buffer->shape[0] != dst->shape[0]) return nullptr;
  // Spatial indices: the output position, or any affine map of it alone (a strided 1x1
  // convolution reads every s-th input position; the packing below gathers them), besides
  // window dimensions of extent 1 at 0 (an im2col copy of a 1x1 window).
  size_t d_out = 2;
  for (size_t d = 2; d < x->indices.size(); ++d) {
    if (is_zero(x->indices[d]) && x->buffer->shape[d] == 1 && x->indices.size() - d > rank - d_out) continue;
    if (d_out >= rank || !uses_only(x->indices[d], axes[d_out]) || !coefficient(x->indices[d], axes[d_out].as<VarNode>()))
      return nullptr;
    ++d_out;
  }
  if (d_out != rank) return nullptr;
  if (!is_var(w->indices[0], axes[1]) || !is_var(w->indices[1], k)) return nullptr;
  for (size_t d = 2; d < w->indices.size(); ++d)
    if (!is_zero(w->indices[d]) || w->buffer->shape[d] != 1) return nullptr;
  DType a_type = w->buffer->dtype, b_type = x->buffer->dtype;
  int64_t m = dst->shape[1], kk = r->axes[0].extent, pixels = 1;
  for (size_t d = 2; d < rank; ++d) pixels *= dst->shape[d];
  if (!uses_only(r->init, axes[1]) || !tile_types_supported(a_type, b_type) || kk % (kTileRowBytes / dtype_bytes(a_type))) return nullptr;

  // Spatial indices of flat position `q` (row-major over dst's spatial dims), the outermost
  // without a modulo (q is in range): the code generator then merges each (q / W, q % W) pair
  // of a plain read or write back into q, which keeps it contiguous.
  auto spatial = [&](const Expr& q) {
    std::vector<Expr> idx(rank - 2);
    Expr rest = q;
    for (size_t d = rank; d-- > 2;) {
      idx[d - 2] = d == 2 ? rest : floormod(rest, make_int(dst->shape[d]));
      rest = floordiv(rest, make_int(dst->shape[d]));
    }
    return idx;
  };
  Buffer packed = make_buffer(dst->name + "_vnni", b_type, {vnni_panel_elements(kk, pixels)});
  Var pk("vnni_k"), pq("vnni_p");
  VarMap at_position{{k.as<VarNode>(), Expr(pk)}};
  std::vector<Expr> position = spatial(pq);
  for (size_t d = 2; d < rank; ++d) at_position[axes[d].as<VarNode>()] = position[d - 2];
  std::vector<Expr> x_at;
  for (auto& e : x->indices) x_at.push_back(simplify(substitute(e, at_position)));
  int64_t g = vnni_group(a_type);
  Stmt pack = vnni_pack(packed, kk, pixels, g, [&](const Expr& kx, const Expr& q) { return vnni_panel_index(kx, q, kk, g); },
                        [&](const Expr& kx, const Expr& q) {
                          return substitute(load(x->buffer, x_at), {{pk.as<VarNode>(), kx}, {pq.as<VarNode>(), q}});
                        });
  Buffer rowsum;
  Stmt sums;
  if (!is_zero(p.a_zero_point)) {
    rowsum = make_buffer(dst->name + "_rowsum", DType::I32, {m});
    sums = operand_sums(rowsum, m, kk, [&](Expr row, Expr kx) {
      std::vector<Expr> w_at{row, kx};
      w_at.resize(w->indices.size(), make_int(0));
      return load(w->buffer, w_at);
    });
  }
  Expr image = Expr(axes[0]) * make_int(m * pixels);
  bool direct = !epilogue.value.defined() && dst->dtype == r->dtype && is_zero(r->init) && !rowsum;
  Stmt per_image;
  if (direct) {
    per_image = tiled_matmul(dst, w->buffer, packed, m, pixels, kk, false, image, make_int(0), make_int(0), 0, true,
                             group_bytes);
  } else {
    // Each 32 x 32 block of products is finished (initial value, zero-point correction,
    // epilogue) while in L1: output channel row0 + i, flat position col0 + j.
    Buffer block = make_buffer(dst->name + "_block", r->dtype, {kBlockElements});
    Expr correction = rowsum ? cast(DType::I32, p.a_zero_point) * load(rowsum, {Expr(axes[1])}) : Expr();
    auto place = [&](const Expr& channel, const Expr& position) {
      VarMap at{{axes[1].as<VarNode>(), channel}};
      std::vector<Expr> spatial_at = spatial(position);
      for (size_t d = 2; d < rank; ++d) at[axes[d].as<VarNode>()] = spatial_at[d - 2];
      return at;
    };
    per_image = tiled_matmul(block, w->buffer, packed, m, pixels, kk, false, make_int(0), make_int(0), make_int(0), 0, true,
                             group_bytes, finish_blocks(dst, axes, block, r, correction, epilogue, place));
  }
  // Each image packs into its own buffer (the image loop may run in parallel).
  Stmt body = make_for(axes[0], make_int(0), make_int(dst->shape[0]), ForKind::Serial,
                       make_allocate(packed, make_seq({pack, per_image})));
  return rowsum ? make_allocate(rowsum, make_seq({sums, body})) : body;
}

// Whether `e` is exactly `a` + `b` (in any arrangement of sums, no constant offset).
bool is_sum_of(const Expr& e, const Var& a, const Var& b) {
  bool others = false;
  visit(e, [&](const Expr& x) { others |= x.kind() == ExprKind::Var && !is_var(x, a) && !is_var(x, b); });
  std::optional<int64_t> ca = coefficient(e, a.as<VarNode>()), cb = coefficient(e, b.as<VarNode>());
  int64_t c;
  bool no_offset = is_const_int(simplify(substitute(e, {{a.as<VarNode>(), make_int(0)}, {b.as<VarNode>(), make_int(0)}})), &c) && c == 0;
  return !others && ca == 1 && cb == 1 && no_offset;
}

// Output rows per block of a window convolution, at most `max_rows`. The blocks are the
// kernel's parallel loop and a remainder block runs after it on one thread, so with several
// threads the tallest height that divides the rows into blocks that spread evenly over them
// (28 rows on 2 threads: 14 blocks of 2, not 7 of 4 that run as 4 + 3); `max_rows` when none
// does, or on one thread.
int64_t row_block_height(int64_t h, int64_t max_rows, int threads) {
  if (threads > 1)
    for (int64_t rows = max_rows; rows >= 1; --rows)
      if (h % rows == 0 && (h / rows) % threads == 0) return rows;
  return max_rows;
}

// The windowed-convolution form, stride 1, NCHW, over an already padded input:
//   dst[n, m, h, w] = init(m) + sum_{c, i, j} W[m, c, i, j] * (X[n, c, h + i, w + j] - zx)
// With the padded image flattened (row length Wp) and output positions counted in the same
// flat space (q = h * Wp + w; the Wp - W extra columns per row are computed and dropped),
// each window offset (i, j) is a pointwise product over a shifted view of one packed image:
//   C[m, q] += W_ij[m, c] x Xflat[c, q + i * Wp + j]
// so the convolution is KH * KW accumulating tile products on one VNNI packing of the image,
// with the weights as A, repacked once per offset at compile time. Rows of outputs go in
// blocks whose C stays in L2 (and the blocks may run in parallel).
Stmt window_conv_tiles(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r, const Product& p,
                       const Epilogue& epilogue, const BufferSet& constants, int threads) {
  const LoadNode* x = p.a;
  const LoadNode* w = p.b;
  if (axes.size() != 4 || r->axes.size() != 3 || x->indices.size() != 4 || w->indices.size() != 4 ||
      !constants.count(w->buffer.get()))
    return nullptr;
  const Var &c = r->axes[0].var, &i = r->axes[1].var, &j = r->axes[2].var;
  bool batch_ok = is_var(x->indices[0], axes[0]) || (is_zero(x->indices[0]) && dst->shape[0] == 1);
  if (!batch_ok || !is_var(x->indices[1], c) || !is_sum_of(x->indices[2], axes[2], i) ||
      !is_sum_of(x->indices[3], axes[3], j))
    return nullptr;
  if (!is_var(w->indices[0], axes[1]) || !is_var(w->indices[1], c) || !is_var(w->indices[2], i) || !is_var(w->indices[3], j))
    return nullptr;
  int64_t n_images = dst->shape[0], m = dst->shape[1], h = dst->shape[2], wd = dst->shape[3];
  int64_t channels = r->axes[0].extent, kh = r->axes[1].extent, kw = r->axes[2].extent;
  int64_t hp = x->buffer->shape[2], wp = x->buffer->shape[3];
  DType a_type = w->buffer->dtype, b_type = x->buffer->dtype;
  if (hp != h + kh - 1 || wp != wd + kw - 1 || x->buffer->shape[1] != channels || !uses_only(r->init, axes[1]) ||
      !tile_types_supported(a_type, b_type) || channels % (kTileRowBytes / dtype_bytes(a_type)))
    return nullptr;
  int64_t g = vnni_group(a_type), offsets = kh * kw;

  // The image, flat, in the VNNI layout; columns past the image (read only for dropped
  // outputs) are zero.
  int64_t cols = vnni_columns(hp * wp + kw);
  Buffer packed = make_buffer(dst->name + "_vnni", b_type, {channels * cols});
  Var pk("vnni_k"), pq("vnni_p");
  Stmt pack = make_seq(
      {vnni_pack(packed, channels, hp * wp, g, [&](const Expr& kx, const Expr& q) { return vnni_index(kx, q, cols, g); },
                 [&](const Expr& kx, const Expr& q) {
                   return load(x->buffer, {x->indices[0], kx, floordiv(q, make_int(wp)), floormod(q, make_int(wp))});
                 }),
       make_for(pk, make_int(0), make_int(channels), ForKind::Serial,
                make_for(pq, make_int(hp * wp), make_int(cols - hp * wp), ForKind::Serial,
                         make_store(packed, {vnni_index(pk, pq, cols, g)}, make_const(b_type, 0))))});
  // The weights per window offset, each an M x C row-major A.
  Buffer weights = make_buffer(dst->name + "_offsets", a_type, {offsets * m * channels}, w->buffer->max_abs);
  Var wt("offset"), wm("offset_m"), wc("offset_c");
  Stmt weights_fill = make_for(
      wt, make_int(0), make_int(offsets), ForKind::Serial,
      make_for(wm, make_int(0), make_int(m), ForKind::Serial,
               make_for(wc, make_int(0), make_int(channels), ForKind::Serial,
                        make_store(weights, {(Expr(wt) * make_int(m) + wm) * make_int(channels) + wc},
                                   load(w->buffer, {wm, wc, Expr(wt) / make_int(kw), Expr(wt) % make_int(kw)})))));
  Buffer rowsum;
  Stmt sums;
  if (!is_zero(p.a_zero_point)) {
    rowsum = make_buffer(dst->name + "_rowsum", DType::I32, {m});
    sums = operand_sums(rowsum, m, channels * offsets, [&](Expr row, Expr k) {
      return load(w->buffer, {row, k / make_int(offsets), (k / make_int(kw)) % make_int(kh), k % make_int(kw)});
    });
  }

  // C in blocks within 64 KiB, either of output rows (all channels: each block reads every
  // weight again) or, where that re-reads more bytes, of output channels over all rows (each
  // block reads the packed image again): a 7 x 7 image of 512 channels has 2.4 MB of 8-bit
  // weights but a 45 KB image, and 3 row blocks of 27 columns plus one of 9 would read the
  // weights 3 times over in narrow products.
  constexpr int64_t kBlockBytes = 64 * 1024;
  int64_t acc_bytes = dtype_bytes(r->dtype);
  int64_t rows = std::clamp<int64_t>(kBlockBytes / (m * wp * acc_bytes), 1, h);
  int64_t channel_block = 0;  // 0: blocks of rows
  for (int64_t mb = m; mb >= kPanelColumns; mb -= kPanelColumns)
    if (m % mb == 0 && mb * h * wp * acc_bytes <= kBlockBytes) {
      int64_t weight_reads = (h + rows - 1) / rows * offsets * m * channels;
      int64_t image_reads = m / mb * channels * cols;
      if (image_reads < weight_reads) channel_block = mb;
      break;
    }
  Expr correction = rowsum ? cast(DType::I32, p.a_zero_point) * load(rowsum, {Expr(axes[1])}) : Expr();
  // Outputs [m0, m0 + m_count) x rows [h0, h0 + count).
  auto block = [&](const Expr& m0, int64_t m_count, const Expr& h0, int64_t count) {
    int64_t n = count * wp;
    Buffer acc = make_buffer(dst->name + "_tiles", r->dtype, {m_count * n});
    std::vector<Stmt> steps;
    for (int64_t t = 0; t < offsets; ++t) {
      Expr shift = (h0 + make_int(t / kw)) * make_int(wp) + make_int(t % kw);
      steps.push_back(tiled_matmul(acc, weights, packed, m_count, n, channels, t > 0, make_int(0),
                                   (make_int(t * m) + m0) * make_int(channels), shift * make_int(g), cols));
    }
    Expr at = ((Expr(axes[1]) - m0) * make_int(count) + (Expr(axes[2]) - h0)) * make_int(wp) + axes[3];
    Stmt apply = make_store(dst, std::vector<Expr>(axes.begin(), axes.end()),
                            finish(load(acc, {at}), r, correction, epilogue, dst->dtype));
    apply = make_for(axes[1], m0, make_int(m_count), ForKind::Serial,
                     make_for(axes[2], h0, make_int(count), ForKind::Serial,
                              make_for(axes[3], make_int(0), make_int(wd), ForKind::Serial, apply)));
    steps.push_back(apply);
    return make_allocate(acc, make_seq(steps));
  };
  std::vector<Stmt> blocks;
  if (channel_block) {
    Var mblk(dst->name + "_channel_block");
    blocks.push_back(make_for(mblk, make_int(0), make_int(m / channel_block), ForKind::Serial,
                              block(Expr(mblk) * make_int(channel_block), channel_block, make_int(0), h)));
  } else {
    rows = row_block_height(h, rows, threads);
    Var hb(dst->name + "_row_block");
    blocks.push_back(make_for(hb, make_int(0), make_int(h / rows), ForKind::Serial,
                              block(make_int(0), m, Expr(hb) * make_int(rows), rows)));
    if (h % rows) blocks.push_back(block(make_int(0), m, make_int(h / rows * rows), h % rows));
  }
  Stmt body = make_for(axes[0], make_int(0), make_int(n_images), ForKind::Serial,
                       make_allocate(packed, make_seq({pack, make_seq(blocks)})));
  if (rowsum) body = make_allocate(rowsum, make_seq({sums, body}));
  return make_allocate(weights, make_seq({weights_fill, body}));
}

}  // namespace

Stmt schedule_tiles(const Buffer& dst, const std::vector<Var>& axes, const ReduceNode* r, const VectorTarget& target,
                    const Epilogue& epilogue, const BufferSet& constants) {
  size_t rank = axes.size();
  bool bf16 = r->dtype == DType::F32 && target.tiles_bf16, int8 = r->dtype == DType::I32 && target.tiles_int8;
  if (r->op != ReduceOp::Sum || !(bf16 || int8) || rank < 2 || dst->shape.size() != rank) return nullptr;
  std::optional<Product> p = match_term(r->body, r->dtype, constants);
  if (!p) return nullptr;
  if (r->axes.size() == 3) return window_conv_tiles(dst, axes, r, *p, epilogue, constants, target.threads);
  if (r->axes.size() != 1) return nullptr;
  // Groups of B's panels held in L2 take half of it (A's rows and the C tiles use the rest).
  int64_t group_bytes = target.l2_bytes / 2;
  if (Stmt conv = conv_tiles(dst, axes, r, *p, epilogue, constants, group_bytes)) return conv;
  const LoadNode* a = p->a;
  const LoadNode* b = p->b;
  const Var& k = r->axes[0].var;
  size_t b_rank = b->indices.size();
  if (b_rank < 2 || b_rank > rank) return nullptr;
  // B[..., k, n], or B[..., n, k] (a Gemm with transB, attention's K^T): either way packed
  // into one layout below. Its leading dimensions align with dst's last ones before m, n.
  bool b_transposed = is_var(b->indices[b_rank - 2], axes[rank - 1]) && is_var(b->indices[b_rank - 1], k);
  if (!b_transposed && !(is_var(b->indices[b_rank - 2], k) && is_var(b->indices[b_rank - 1], axes[rank - 1])))
    return nullptr;
  bool b_per_batch = false;
  for (size_t d = 0; d + 2 < b_rank; ++d) {
    const Var& axis = axes[rank - b_rank + d];
    if (is_var(b->indices[d], axis)) b_per_batch = true;
    else if (!is_zero(b->indices[d])) return nullptr;
  }
  if (a->indices.size() != rank || !is_var(a->indices[rank - 1], k) || !is_var(a->indices[rank - 2], axes[rank - 2]) ||
      a->buffer->shape[rank - 2] != dst->shape[rank - 2])
    return nullptr;
  // Leading (batch) dimensions: A's own, or 0 where A broadcasts over them.
  for (size_t d = 0; d + 2 < rank; ++d)
    if (!is_var(a->indices[d], axes[d]) && !is_zero(a->indices[d])) return nullptr;
  // The initial value may depend on the column only (a bias).
  if (!uses_only(r->init, axes[rank - 1])) return nullptr;
  int64_t m = dst->shape[rank - 2], n = dst->shape[rank - 1], kk = r->axes[0].extent;
  DType b_type = b->buffer->dtype;
  if (!tile_types_supported(a->buffer->dtype, b_type) || kk % (kTileRowBytes / dtype_bytes(a->buffer->dtype)))
    return nullptr;

  // B in the VNNI layout (and, with a zero point, its column sums). For a constant B the
  // fills read the constant only and are hoisted out of the kernel, to run at compile time;
  // an activation B (attention) is packed on every run, per batch index when it has them.
  auto b_at = [&](const Expr& kx, const Expr& nx) {
    std::vector<Expr> idx(b->indices.begin(), b->indices.end() - 2);
    idx.push_back(b_transposed ? nx : kx);
    idx.push_back(b_transposed ? kx : nx);
    return load(b->buffer, idx);
  };
  Buffer packed = make_buffer(dst->name + "_vnni", b_type, {vnni_panel_elements(kk, n)}, b->buffer->max_abs);
  Var pk("vnni_k"), pn("vnni_n");
  int64_t g = vnni_group(b_type);
  // A transposed B's 8 columns of one k group are 8 runs of g bytes far apart, which the vector
  // form would gather byte by byte: it keeps the plain loop.
  Stmt pack = b_transposed ? make_for(pk, make_int(0), make_int(kk), ForKind::Serial,
                                      make_for(pn, make_int(0), make_int(n), ForKind::Serial,
                                               make_store(packed, {vnni_panel_index(pk, pn, kk, g)}, b_at(pk, pn))))
                           : vnni_pack(packed, kk, n, g, [&](const Expr& kx, const Expr& nx) { return vnni_panel_index(kx, nx, kk, g); },
                                       b_at);
  Buffer colsum;
  Stmt sums;
  if (!is_zero(p->a_zero_point)) {
    colsum = make_buffer(dst->name + "_colsum", DType::I32, {n});
    sums = operand_sums(colsum, n, kk, [&](Expr column, Expr kx) { return b_at(kx, column); });
  }

  // One m x n product per index of the leading (batch) dimensions.
  std::vector<Expr> batch(axes.begin(), axes.end() - 2);
  std::vector<Expr> a_start(a->indices.begin(), a->indices.end() - 2), dst_start = batch;
  for (auto* v : {&a_start, &dst_start}) v->insert(v->end(), {make_int(0), make_int(0)});
  Expr a_base = flat_offset(a_start, a->buffer->shape);
  Expr row = axes[rank - 2], col = axes[rank - 1];
  bool direct = !epilogue.value.defined() && dst->dtype == r->dtype && is_zero(r->init) && !colsum;
  Stmt body;
  if (direct) {
    body = tiled_matmul(dst, a->buffer, packed, m, n, kk, false, flat_offset(dst_start, dst->shape), a_base, make_int(0), 0,
                        true, group_bytes);
  } else {
    // Each 32 x 32 block of products is finished (initial value, zero-point correction,
    // epilogue) while in L1: row row0 + i, column col0 + j.
    Buffer block = make_buffer(dst->name + "_block", r->dtype, {kBlockElements});
    Expr correction = colsum ? cast(DType::I32, p->a_zero_point) * load(colsum, {col}) : Expr();
    auto place = [&](const Expr& row_at, const Expr& col_at) {
      return VarMap{{axes[rank - 2].as<VarNode>(), row_at}, {axes[rank - 1].as<VarNode>(), col_at}};
    };
    body = tiled_matmul(block, a->buffer, packed, m, n, kk, false, make_int(0), a_base, make_int(0), 0, true, group_bytes,
                        finish_blocks(dst, axes, block, r, correction, epilogue, place));
  }
  // A B that differs per batch index is packed inside the batch loops, into buffers of each
  // iteration's own (the outer loop may run in parallel); otherwise once, before them.
  auto with_packing = [&](Stmt s) {
    if (colsum) s = make_allocate(colsum, make_seq({sums, s}));
    return make_allocate(packed, make_seq({pack, s}));
  };
  if (b_per_batch) body = with_packing(body);
  for (size_t d = batch.size(); d-- > 0;)
    body = make_for(axes[d], make_int(0), make_int(dst->shape[d]), ForKind::Serial, body);
  return b_per_batch ? body : with_packing(body);
}

}  // namespace kiln::tir
