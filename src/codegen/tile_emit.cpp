// Tile products (tir::TileMatmulNode): AMX tile instructions where the target has them for the
// operand types, 8-bit products with vpmaddubsw / vpmaddwd on AVX2, plain loops otherwise.
// Each distinct product becomes one function of the module, called from every kernel using it.
#include <llvm/IR/IntrinsicsX86.h>

#include "codegen/emitter.h"
#include "kiln/error.h"

namespace kiln::codegen {

namespace {
// The AVX2 8-bit tile kernel's widened copy of 4 rows of A lives on the stack up to this size.
constexpr int64_t kMaxWidenedBytes = 32 * 1024;
}  // namespace

bool Emitter::has_amx_for(DType a) const { return a == DType::BF16 ? target_.has_amx_bf16 : target_.has_amx_int8; }

void Emitter::emit_amx_tile(const TileMatmulNode* n) {
  std::string key = tile_key("kiln_tile_", n);
  llvm::Function*& fn = tile_fns_[key];
  if (!fn) fn = amx_tile_function(key, n);
  call_tile(fn, n);
}

std::string Emitter::tile_key(const std::string& prefix, const TileMatmulNode* n) {
  return prefix + std::string(dtype_name(n->a.buffer->dtype)) + dtype_name(n->b.buffer->dtype) + "_" +
         std::to_string(n->rows) + "x" + std::to_string(n->cols) + "x" + std::to_string(n->depth) +
         (n->accumulate ? "_acc" : "") + "_s" + std::to_string(n->c.row_stride) + "_" +
         std::to_string(n->a.row_stride) + "_" + std::to_string(n->b.row_stride);
}

void Emitter::call_tile(llvm::Function* fn, const TileMatmulNode* n) {
  auto at = [&](const TileOperand& o) {
    return b_.CreateInBoundsGEP(mem_type(o.buffer->dtype), bufs_.at(o.buffer.get()), expr(o.offset));
  };
  b_.CreateCall(fn, {at(n->c), at(n->a), at(n->b)});
}

llvm::Function* Emitter::amx_tile_function(const std::string& name, const TileMatmulNode* n) {
  auto* ptr = llvm::PointerType::get(ctx_, 0);
  auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr, ptr, ptr}, false);
  auto* f = llvm::Function::Create(fty, llvm::Function::InternalLinkage, name, mod_);
  f->addFnAttr(llvm::Attribute::NoUnwind);
  f->addFnAttr(llvm::Attribute::NoInline);
  auto ip = b_.saveIP();
  b_.SetInsertPoint(llvm::BasicBlock::Create(ctx_, "entry", f));
  DType at = n->a.buffer->dtype;
  int64_t esize = dtype_bytes(at), step = kTileRowBytes / esize, group = vnni_group(at);
  int64_t tile_cols = kTileRowBytes / 4;
  auto i16 = [&](int64_t v) { return b_.getInt16(uint16_t(v)); };
  auto call = [&](llvm::Intrinsic::ID id, std::vector<llvm::Value*> args) {
    return b_.CreateCall(llvm::Intrinsic::getDeclaration(&mod_, id), args);
  };
  auto address = [&](int arg, const TileOperand& o, int64_t elements) {
    return b_.CreateConstInBoundsGEP1_64(mem_type(o.buffer->dtype), f->getArg(arg), uint64_t(elements));
  };
  auto stride = [&](const TileOperand& o) { return b_.getInt64(o.row_stride * dtype_bytes(o.buffer->dtype)); };
  std::vector<int64_t> row_sizes, col_sizes;  // sub-tiles: rows [r * 16, ...), columns [q * 16, ...)
  for (int64_t r = 0; r < n->rows; r += kTileRows) row_sizes.push_back(std::min(kTileRows, n->rows - r));
  for (int64_t c = 0; c < n->cols; c += tile_cols) col_sizes.push_back(std::min(tile_cols, n->cols - c));
  KILN_CHECK(row_sizes.size() <= size_t(kTileBlock) && col_sizes.size() <= size_t(kTileBlock),
             "tile product larger than 2 x 2 tiles");
  llvm::Value* k_bytes = i16(kTileRowBytes);
  auto c_at = [&](size_t r, size_t q) {
    return address(0, n->c, int64_t(r) * kTileRows * n->c.row_stride + int64_t(q) * tile_cols);
  };
  std::vector<std::vector<llvm::Value*>> c(row_sizes.size(), std::vector<llvm::Value*>(col_sizes.size()));
  for (size_t r = 0; r < row_sizes.size(); ++r)
    for (size_t q = 0; q < col_sizes.size(); ++q)
      c[r][q] = n->accumulate
                    ? call(llvm::Intrinsic::x86_tileloadd64_internal,
                           {i16(row_sizes[r]), i16(col_sizes[q] * 4), c_at(r, q), stride(n->c)})
                    : call(llvm::Intrinsic::x86_tilezero_internal, {i16(row_sizes[r]), i16(col_sizes[q] * 4)});
  bool b_unsigned = n->b.buffer->dtype == DType::U8;
  llvm::Intrinsic::ID dot =
      at == DType::BF16 ? llvm::Intrinsic::x86_tdpbf16ps_internal
      : at == DType::U8 ? (b_unsigned ? llvm::Intrinsic::x86_tdpbuud_internal : llvm::Intrinsic::x86_tdpbusd_internal)
                        : (b_unsigned ? llvm::Intrinsic::x86_tdpbsud_internal : llvm::Intrinsic::x86_tdpbssd_internal);
  for (int64_t s = 0; s < n->depth / step; ++s) {
    std::vector<llvm::Value*> a, b;
    for (size_t r = 0; r < row_sizes.size(); ++r)
      a.push_back(call(llvm::Intrinsic::x86_tileloadd64_internal,
                       {i16(row_sizes[r]), k_bytes,
                        address(1, n->a, int64_t(r) * kTileRows * n->a.row_stride + s * step), stride(n->a)}));
    for (size_t q = 0; q < col_sizes.size(); ++q)
      b.push_back(call(
          llvm::Intrinsic::x86_tileloadd64_internal,
          {i16(step / group), i16(col_sizes[q] * 4),
           address(2, n->b, s * (step / group) * n->b.row_stride + int64_t(q) * tile_cols * group), stride(n->b)}));
    for (size_t r = 0; r < row_sizes.size(); ++r)
      for (size_t q = 0; q < col_sizes.size(); ++q)
        c[r][q] = call(dot, {i16(row_sizes[r]), i16(col_sizes[q] * 4), k_bytes, c[r][q], a[r], b[q]});
  }
  for (size_t r = 0; r < row_sizes.size(); ++r)
    for (size_t q = 0; q < col_sizes.size(); ++q)
      call(llvm::Intrinsic::x86_tilestored64_internal,
           {i16(row_sizes[r]), i16(col_sizes[q] * 4), c_at(r, q), stride(n->c), c[r][q]});
  b_.CreateRetVoid();
  b_.restoreIP(ip);
  return f;
}

Emitter::CountedLoop Emitter::open_loop(const char* name) {
  CountedLoop l{nullptr, b_.GetInsertBlock(), llvm::BasicBlock::Create(ctx_, name, fn_),
                llvm::BasicBlock::Create(ctx_, std::string(name) + ".done", fn_)};
  b_.CreateBr(l.head);
  b_.SetInsertPoint(l.head);
  l.i = b_.CreatePHI(b_.getInt64Ty(), 2, "i");
  l.i->addIncoming(b_.getInt64(0), l.pre);
  return l;
}

void Emitter::close_loop(const CountedLoop& l, int64_t count) {
  llvm::Value* next = b_.CreateAdd(l.i, b_.getInt64(1));
  l.i->addIncoming(next, b_.GetInsertBlock());
  b_.CreateCondBr(b_.CreateICmpSLT(next, b_.getInt64(count)), l.head, l.exit);
  b_.SetInsertPoint(l.exit);
}

bool Emitter::avx2_int8_tile(const TileMatmulNode* n) const {
  DType at = n->a.buffer->dtype;
  // Partial 8-column groups read B's padding columns (tir::vnni_columns), never stored.
  return target_.vector_bits >= 256 && (at == DType::U8 || at == DType::I8) && n->b.buffer->dtype != DType::BF16 &&
         n->b.row_stride % 32 == 0 && n->depth % 4 == 0;
}

std::pair<const TileOperand*, const TileOperand*> Emitter::byte_pairs_exact(const TileMatmulNode* n) const {
  auto small_signed = [](const TileOperand& o) {
    return o.buffer->dtype == DType::I8 && o.buffer->max_abs >= 0 && o.buffer->max_abs <= 64;
  };
  if (n->a.buffer->dtype == DType::U8 && small_signed(n->b)) return {&n->a, &n->b};
  if (n->b.buffer->dtype == DType::U8 && small_signed(n->a)) return {&n->b, &n->a};
  return {nullptr, nullptr};
}

void Emitter::emit_avx2_int8_tile(const TileMatmulNode* n) {
  bool byte_pairs = byte_pairs_exact(n).first != nullptr;
  std::string key = tile_key(byte_pairs ? "kiln_i8pairs_" : "kiln_i8words_", n);
  llvm::Function*& fn = tile_fns_[key];
  if (!fn) {
    auto* ptr = llvm::PointerType::get(ctx_, 0);
    auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr, ptr, ptr}, false);
    fn = llvm::Function::Create(fty, llvm::Function::InternalLinkage, key, mod_);
    fn->addFnAttr(llvm::Attribute::NoUnwind);
    fn->addFnAttr(llvm::Attribute::NoInline);
    auto ip = b_.saveIP();
    llvm::Function* outer_fn = fn_;
    llvm::BasicBlock* outer_entry = entry_;
    fn_ = fn;
    entry_ = llvm::BasicBlock::Create(ctx_, "entry", fn);
    auto* body = llvm::BasicBlock::Create(ctx_, "body", fn);
    b_.SetInsertPoint(body);
    avx2_int8_tile_body(n, byte_pairs, fn->getArg(0), fn->getArg(1), fn->getArg(2));
    b_.CreateRetVoid();
    b_.SetInsertPoint(entry_);
    b_.CreateBr(body);
    fn_ = outer_fn;
    entry_ = outer_entry;
    b_.restoreIP(ip);
  }
  call_tile(fn, n);
}

void Emitter::avx2_int8_tile_body(const TileMatmulNode* n, bool byte_pairs, llvm::Value* c0, llvm::Value* a0,
                                  llvm::Value* b0) {
  constexpr int64_t kRows = 4, kCols = 8;
  bool a_signed = n->a.buffer->dtype == DType::I8;
  auto* i8 = b_.getInt8Ty();
  auto* i32 = b_.getInt32Ty();
  auto* v16i16 = llvm::FixedVectorType::get(b_.getInt16Ty(), 16);
  auto* v8i32 = llvm::FixedVectorType::get(i32, 8);
  // With several column blocks, each block of A rows is widened to i16 once (16 values per
  // step), so the k loop broadcasts a row's 4 values with one load instead of a load, a
  // widening and a shuffle per column block.
  bool widen_a = !byte_pairs && n->cols > kCols && n->depth % 16 == 0 && kRows * n->depth * 2 <= kMaxWidenedBytes;
  llvm::Value* aw = nullptr;
  if (widen_a) {
    llvm::IRBuilder<> eb(entry_, entry_->begin());
    aw = eb.CreateAlloca(b_.getInt16Ty(), eb.getInt64(kRows * n->depth), "a_i16");
  }
  for (int64_t r0 = 0; r0 < n->rows; r0 += kRows) {
    int64_t rows = std::min(kRows, n->rows - r0);
    if (widen_a) {
      auto* v16i8w = llvm::FixedVectorType::get(i8, 16);
      for (int64_t r = 0; r < rows; ++r) {
        CountedLoop q = open_loop("i8widen");
        llvm::Value* from = b_.CreateAdd(b_.getInt64((r0 + r) * n->a.row_stride), b_.CreateMul(q.i, b_.getInt64(16)));
        llvm::Value* raw = b_.CreateAlignedLoad(v16i8w, b_.CreateInBoundsGEP(i8, a0, from), llvm::Align(1));
        llvm::Value* wide = a_signed ? b_.CreateSExt(raw, v16i16) : b_.CreateZExt(raw, v16i16);
        llvm::Value* to = b_.CreateAdd(b_.getInt64(r * n->depth), b_.CreateMul(q.i, b_.getInt64(16)));
        b_.CreateAlignedStore(wide, b_.CreateInBoundsGEP(b_.getInt16Ty(), aw, to), llvm::Align(2));
        close_loop(q, n->depth / 16);
      }
    }
    for (int64_t j0 = 0; j0 < n->cols;) {
      // Byte pairs take two groups of 8 columns at a time while more than 8 remain (B's
      // columns are padded to whole groups of 8, tir::vnni_columns).
      int64_t groups = byte_pairs && n->cols - j0 > kCols ? 2 : 1;
      std::vector<llvm::Value*> sums = byte_pairs ? byte_pair_block(n, a0, b0, r0, rows, j0, groups)
                                                  : word_pair_block(n, a0, b0, aw, widen_a, r0, rows, j0);
      for (int64_t i = 0; i < rows * groups; ++i) {
        int64_t r = i / groups, jg = j0 + i % groups * kCols;
        llvm::Value* sum = sums[size_t(i)];
        llvm::Value* ptr = b_.CreateInBoundsGEP(i32, c0, b_.getInt64((r0 + r) * n->c.row_stride + jg));
        int64_t width = std::min(kCols, n->cols - jg);
        if (width == kCols) {
          if (n->accumulate) sum = b_.CreateAdd(sum, b_.CreateAlignedLoad(v8i32, ptr, llvm::Align(4)));
          b_.CreateAlignedStore(sum, ptr, llvm::Align(4));
          continue;
        }
        for (int64_t j = 0; j < width; ++j) {  // the valid columns of a partial group
          llvm::Value* at = b_.CreateConstInBoundsGEP1_64(i32, ptr, uint64_t(j));
          llvm::Value* v = b_.CreateExtractElement(sum, uint64_t(j));
          if (n->accumulate) v = b_.CreateAdd(v, b_.CreateAlignedLoad(i32, at, llvm::Align(4)));
          b_.CreateAlignedStore(v, at, llvm::Align(4));
        }
      }
      j0 += groups * kCols;
    }
  }
}

std::vector<llvm::Value*> Emitter::word_pair_block(const TileMatmulNode* n, llvm::Value* a0, llvm::Value* b0,
                                                   llvm::Value* aw, bool widen_a, int64_t r0, int64_t rows,
                                                   int64_t j0) {
  bool a_signed = n->a.buffer->dtype == DType::I8, b_unsigned = n->b.buffer->dtype == DType::U8;
  auto* i8 = b_.getInt8Ty();
  auto* v16i8 = llvm::FixedVectorType::get(i8, 16);
  auto* v4i8 = llvm::FixedVectorType::get(i8, 4);
  auto* v16i16 = llvm::FixedVectorType::get(b_.getInt16Ty(), 16);
  auto* v4i16 = llvm::FixedVectorType::get(b_.getInt16Ty(), 4);
  auto* v8i32 = llvm::FixedVectorType::get(b_.getInt32Ty(), 8);
  llvm::Function* pmadd = llvm::Intrinsic::getDeclaration(&mod_, llvm::Intrinsic::x86_avx2_pmadd_wd);
  std::vector<int> repeat4, even, odd, concat;
  for (int i = 0; i < 16; ++i) repeat4.push_back(i % 4);
  for (int i = 0; i < 4; ++i) {
    even.push_back(2 * i);
    odd.push_back(2 * i + 1);
  }
  for (int i = 0; i < 8; ++i) concat.push_back(i);
  CountedLoop kg = open_loop("i8tile.k");
  llvm::Value* g = kg.i;
  std::vector<llvm::PHINode*> acc;
  for (int64_t i = 0; i < rows * 2; ++i) {
    acc.push_back(b_.CreatePHI(v8i32, 2, "acc"));
    acc.back()->addIncoming(llvm::Constant::getNullValue(v8i32), kg.pre);
  }
  std::vector<llvm::Value*> bw;
  for (int64_t h = 0; h < 2; ++h) {
    llvm::Value* at = b_.CreateAdd(b_.CreateMul(g, b_.getInt64(n->b.row_stride)), b_.getInt64((j0 + 4 * h) * 4));
    llvm::Value* raw = b_.CreateAlignedLoad(v16i8, b_.CreateInBoundsGEP(i8, b0, at), llvm::Align(1));
    bw.push_back(b_unsigned ? b_.CreateZExt(raw, v16i16) : b_.CreateSExt(raw, v16i16));
  }
  std::vector<llvm::Value*> next;
  for (int64_t r = 0; r < rows; ++r) {
    llvm::Value* wide;
    if (widen_a) {
      llvm::Value* at = b_.CreateAdd(b_.getInt64(r * n->depth), b_.CreateMul(g, b_.getInt64(4)));
      wide = b_.CreateAlignedLoad(v4i16, b_.CreateInBoundsGEP(b_.getInt16Ty(), aw, at), llvm::Align(2));
    } else {
      llvm::Value* at = b_.CreateAdd(b_.getInt64((r0 + r) * n->a.row_stride), b_.CreateMul(g, b_.getInt64(4)));
      llvm::Value* raw = b_.CreateAlignedLoad(v4i8, b_.CreateInBoundsGEP(i8, a0, at), llvm::Align(1));
      wide = a_signed ? b_.CreateSExt(raw, v4i16) : b_.CreateZExt(raw, v4i16);
    }
    llvm::Value* rep = b_.CreateShuffleVector(wide, repeat4);
    for (int64_t h = 0; h < 2; ++h) next.push_back(b_.CreateAdd(acc[r * 2 + h], b_.CreateCall(pmadd, {rep, bw[h]})));
  }
  for (size_t i = 0; i < acc.size(); ++i) acc[i]->addIncoming(next[i], b_.GetInsertBlock());
  close_loop(kg, n->depth / 4);
  // Columns j0 .. j0 + 7: the two pair sums of each, the halves side by side.
  std::vector<llvm::Value*> sums;
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<llvm::Value*> half;
    for (int64_t h = 0; h < 2; ++h)
      half.push_back(
          b_.CreateAdd(b_.CreateShuffleVector(next[r * 2 + h], even), b_.CreateShuffleVector(next[r * 2 + h], odd)));
    sums.push_back(b_.CreateShuffleVector(half[0], half[1], concat));
  }
  return sums;
}

std::vector<llvm::Value*> Emitter::byte_pair_block(const TileMatmulNode* n, llvm::Value* a0, llvm::Value* b0,
                                                   int64_t r0, int64_t rows, int64_t j0, int64_t groups) {
  bool a_unsigned = byte_pairs_exact(n).first == &n->a;
  auto* i8 = b_.getInt8Ty();
  auto* i32 = b_.getInt32Ty();
  auto* v32i8 = llvm::FixedVectorType::get(i8, 32);
  auto* v16i16 = llvm::FixedVectorType::get(b_.getInt16Ty(), 16);
  auto* v8i32 = llvm::FixedVectorType::get(i32, 8);
  llvm::Function* pmaddubs = llvm::Intrinsic::getDeclaration(&mod_, llvm::Intrinsic::x86_avx2_pmadd_ub_sw);
  llvm::Function* pmadd = llvm::Intrinsic::getDeclaration(&mod_, llvm::Intrinsic::x86_avx2_pmadd_wd);
  llvm::Value* ones = llvm::ConstantVector::getSplat(llvm::ElementCount::getFixed(16), b_.getInt16(1));
  CountedLoop kg = open_loop("i8pairs.k");
  llvm::Value* g = kg.i;
  std::vector<llvm::PHINode*> acc;
  for (int64_t i = 0; i < rows * groups; ++i) {
    acc.push_back(b_.CreatePHI(v8i32, 2, "acc"));
    acc.back()->addIncoming(llvm::Constant::getNullValue(v8i32), kg.pre);
  }
  std::vector<llvm::Value*> bv;
  for (int64_t h = 0; h < groups; ++h) {
    llvm::Value* b_at = b_.CreateAdd(b_.CreateMul(g, b_.getInt64(n->b.row_stride)), b_.getInt64((j0 + 8 * h) * 4));
    bv.push_back(b_.CreateAlignedLoad(v32i8, b_.CreateInBoundsGEP(i8, b0, b_at), llvm::Align(1)));
  }
  std::vector<llvm::Value*> next;
  for (int64_t r = 0; r < rows; ++r) {
    llvm::Value* a_at = b_.CreateAdd(b_.getInt64((r0 + r) * n->a.row_stride), b_.CreateMul(g, b_.getInt64(4)));
    llvm::Value* four = b_.CreateAlignedLoad(i32, b_.CreateInBoundsGEP(i8, a0, a_at), llvm::Align(1));
    llvm::Value* av = b_.CreateBitCast(b_.CreateVectorSplat(8, four), v32i8);
    for (int64_t h = 0; h < groups; ++h) {
      llvm::Value* pairs = a_unsigned ? b_.CreateCall(pmaddubs, {av, bv[h]}) : b_.CreateCall(pmaddubs, {bv[h], av});
      llvm::Value* quads = b_.CreateCall(pmadd, {b_.CreateBitCast(pairs, v16i16), ones});
      next.push_back(b_.CreateAdd(acc[size_t(r * groups + h)], quads));
    }
  }
  for (size_t i = 0; i < acc.size(); ++i) acc[i]->addIncoming(next[i], b_.GetInsertBlock());
  close_loop(kg, n->depth / 4);
  return next;
}

void Emitter::emit_tile_loops(const TileMatmulNode* n) {
  std::vector<Buffer> views;
  auto flat = [&](const Buffer& b) {
    views.push_back(make_buffer(b->name + "_flat", b->dtype, {shape_numel(b->shape)}));
    bufs_[views.back().get()] = bufs_.at(b.get());
    return views.back();
  };
  Buffer c = flat(n->c.buffer), a = flat(n->a.buffer), b = flat(n->b.buffer);
  emit(tile_matmul_loops(*n, c, a, b));
  for (auto& v : views) bufs_.erase(v.get());
}

}  // namespace kiln::codegen
