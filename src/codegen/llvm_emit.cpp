#include "codegen/llvm_emit.h"

#include <llvm/Analysis/ValueTracking.h>
#include <llvm/IR/IntrinsicInst.h>
#include <llvm/IR/MDBuilder.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include "codegen/emitter.h"
#include "codegen/vector_math.h"
#include "kiln/error.h"
#include "tir/affine.h"

namespace kiln::codegen {

namespace {
// Buffers above this size are heap-allocated; smaller scratch lives on the stack.
constexpr int64_t kMaxStackBytes = 64 * 1024;
}  // namespace

void Emitter::emit(const PrimFunc& f) {
  auto* ptr = llvm::PointerType::get(ctx_, 0);
  auto* fty = llvm::FunctionType::get(llvm::Type::getVoidTy(ctx_), {ptr}, false);
  fn_ = llvm::Function::Create(fty, llvm::Function::ExternalLinkage, f.name, mod_);
  fn_->addFnAttr(llvm::Attribute::NoUnwind);
  fn_->addFnAttr("prefer-vector-width", "512");
  fn_->addFnAttr("min-legal-vector-width", "512");
  entry_ = llvm::BasicBlock::Create(ctx_, "entry", fn_);
  auto* body = llvm::BasicBlock::Create(ctx_, "body", fn_);
  b_.SetInsertPoint(entry_);
  bufs_.clear();
  vars_.clear();
  buffer_of_.clear();
  kernel_fns_ = {fn_};
  for (size_t i = 0; i < f.params.size(); ++i) {
    auto* slot = b_.CreateConstInBoundsGEP1_64(ptr, fn_->getArg(0), i);
    bind(f.params[i].get(), b_.CreateLoad(ptr, slot, f.params[i]->name));
  }
  b_.SetInsertPoint(body);
  emit(f.body);
  b_.CreateRetVoid();
  b_.SetInsertPoint(entry_);
  b_.CreateBr(body);
  annotate_aliasing(f.name);
  std::string err;
  llvm::raw_string_ostream os(err);
  if (llvm::verifyFunction(*fn_, &os)) KILN_CHECK(false, "invalid LLVM IR for ", f.name, ": ", err);
}

llvm::Type* Emitter::value_type(DType t) {
  switch (t) {
    case DType::Bool: return b_.getInt1Ty();
    case DType::I8:
    case DType::U8: return b_.getInt8Ty();
    case DType::I16:
    case DType::U16: return b_.getInt16Ty();
    case DType::I32:
    case DType::U32: return b_.getInt32Ty();
    case DType::I64:
    case DType::U64: return b_.getInt64Ty();
    case DType::F16:
    case DType::BF16:
    case DType::F32: return b_.getFloatTy();
    case DType::F64: return b_.getDoubleTy();
  }
  return nullptr;
}

llvm::Type* Emitter::mem_type(DType t) {
  switch (t) {
    case DType::Bool: return b_.getInt8Ty();
    case DType::F16:
    case DType::BF16: return b_.getInt16Ty();
    default: return value_type(t);
  }
}

llvm::Value* Emitter::element_ptr(const Buffer& buf, const std::vector<Expr>& idx_in) {
  auto it = bufs_.find(buf.get());
  KILN_CHECK(it != bufs_.end(), "buffer ", buf->name, " used outside its scope");
  // Fused-loop index pairs (x / k, x % k) merged into x (tir/affine.h): affine in x, so
  // vector accesses along a fused axis stay contiguous.
  Shape shape;
  std::vector<Expr> idx = merge_index_pairs(idx_in, buf->shape, &shape);
  llvm::Value* flat = b_.getInt64(0);
  for (size_t i = 0; i < idx.size(); ++i) {
    llvm::Value* v = expr(idx[i]);
    if (i == 0) {
      flat = v;
      continue;
    }
    auto [scaled, vi] = unify(b_.CreateMul(flat, splat_like(flat, b_.getInt64(shape[i]))), v);
    flat = b_.CreateAdd(scaled, vi);
  }
  return b_.CreateInBoundsGEP(mem_type(buf->dtype), it->second, flat);
}

llvm::Value* Emitter::int_like(llvm::Value* like, unsigned bits, uint64_t value) {
  llvm::Type* t = b_.getIntNTy(bits);
  if (auto* vt = llvm::dyn_cast<llvm::VectorType>(like->getType())) t = llvm::VectorType::get(t, vt->getElementCount());
  return llvm::ConstantInt::get(t, value);
}

llvm::Type* Emitter::shaped_like(llvm::Value* v, llvm::Type* t) {
  if (auto* vt = llvm::dyn_cast<llvm::VectorType>(v->getType())) return llvm::VectorType::get(t, vt->getElementCount());
  return t;
}

llvm::Value* Emitter::to_memory(DType t, llvm::Value* v) {
  switch (t) {
    case DType::Bool: return b_.CreateZExt(v, shaped_like(v, b_.getInt8Ty()));
    case DType::F16:
      return b_.CreateBitCast(b_.CreateFPTrunc(v, shaped_like(v, b_.getHalfTy())), shaped_like(v, b_.getInt16Ty()));
    case DType::BF16: {
      // Round to nearest even in integer arithmetic (no bf16 libcall needed); NaN stays NaN.
      auto* bits = b_.CreateBitCast(v, shaped_like(v, b_.getInt32Ty()));
      auto* lsb = b_.CreateAnd(b_.CreateLShr(bits, int_like(bits, 32, 16)), int_like(bits, 32, 1));
      auto* rounded = b_.CreateAdd(bits, b_.CreateAdd(int_like(bits, 32, 0x7fff), lsb));
      auto* nan = b_.CreateOr(b_.CreateLShr(bits, int_like(bits, 32, 16)), int_like(bits, 32, 0x40));
      auto* r = b_.CreateSelect(is_nan(v), nan, b_.CreateLShr(rounded, int_like(bits, 32, 16)));
      return b_.CreateTrunc(r, shaped_like(v, b_.getInt16Ty()));
    }
    default: return v;
  }
}

llvm::Value* Emitter::from_memory(DType t, llvm::Value* v) {
  switch (t) {
    case DType::Bool: return b_.CreateICmpNE(v, int_like(v, 8, 0));
    case DType::F16:
      return b_.CreateFPExt(b_.CreateBitCast(v, shaped_like(v, b_.getHalfTy())), shaped_like(v, b_.getFloatTy()));
    case DType::BF16: {
      auto* wide = b_.CreateZExt(v, shaped_like(v, b_.getInt32Ty()));
      return b_.CreateBitCast(b_.CreateShl(wide, int_like(wide, 32, 16)), shaped_like(v, b_.getFloatTy()));
    }
    default: return v;
  }
}

llvm::Value* Emitter::round_to(DType t, llvm::Value* v) { return from_memory(t, to_memory(t, v)); }

llvm::Value* Emitter::intrinsic(llvm::Intrinsic::ID id, std::vector<llvm::Value*> args) {
  auto* f = llvm::Intrinsic::getDeclaration(&mod_, id, {args[0]->getType()});
  return b_.CreateCall(f, args);
}

llvm::Value* Emitter::libm(const char* name32, llvm::Value* a, llvm::Value* b) {
  if (a->getType()->isVectorTy() || (b && b->getType()->isVectorTy())) {  // one call per lane
    if (b) std::tie(a, b) = unify(a, b);
    llvm::Value* out = llvm::PoisonValue::get(a->getType());
    for (int i = 0; i < lanes_; ++i) {
      llvm::Value* r = libm(name32, b_.CreateExtractElement(a, i), b ? b_.CreateExtractElement(b, i) : nullptr);
      out = b_.CreateInsertElement(out, r, i);
    }
    return out;
  }
  llvm::Type* t = a->getType();
  std::string name = name32;
  if (t->isDoubleTy()) name.pop_back();  // "tanf" -> "tan"
  std::vector<llvm::Type*> params(b ? 2 : 1, t);
  auto callee = mod_.getOrInsertFunction(name, llvm::FunctionType::get(t, params, false));
  if (b) return b_.CreateCall(callee, {a, b});
  return b_.CreateCall(callee, {a});
}

std::pair<llvm::Value*, llvm::Value*> Emitter::unify(llvm::Value* a, llvm::Value* b) {
  bool va = a->getType()->isVectorTy(), vb = b->getType()->isVectorTy();
  if (va && !vb) b = b_.CreateVectorSplat(lanes_, b);
  if (vb && !va) a = b_.CreateVectorSplat(lanes_, a);
  return {a, b};
}

llvm::Value* Emitter::splat_like(llvm::Value* like, llvm::Value* v) {
  return like->getType()->isVectorTy() && !v->getType()->isVectorTy() ? b_.CreateVectorSplat(lanes_, v) : v;
}

bool Emitter::lane_stride(const Expr& e, int64_t* c, int64_t period) {
  switch (e.kind()) {
    case ExprKind::IntImm: *c = 0; return true;
    case ExprKind::Var: *c = e.as<VarNode>() == vec_var_ ? period : 0; return true;
    case ExprKind::Cast: return e.dtype() == DType::I64 && lane_stride(e.as<CastNode>()->a, c, period);
    case ExprKind::Binary: {
      auto n = e.as<BinaryNode>();
      int64_t ca, cb, k;
      if (!uses_lane(e)) {
        *c = 0;
        return true;
      }
      if (n->op == BinOp::FloorDiv || n->op == BinOp::FloorMod) {
        // floordiv(ca j + x0, d) = (ca / d) j + floordiv(x0, d) when d divides ca; the
        // remainder then does not move with j.
        if (!is_const_int(n->b, &k) || k <= 0 || !lane_stride(n->a, &ca, period) || ca % k) return false;
        *c = n->op == BinOp::FloorDiv ? ca / k : 0;
        return true;
      }
      if (!lane_stride(n->a, &ca, period) || !lane_stride(n->b, &cb, period)) return false;
      if (n->op == BinOp::Add) return *c = ca + cb, true;
      if (n->op == BinOp::Sub) return *c = ca - cb, true;
      if (n->op == BinOp::Mul && is_const_int(n->a, &k)) return *c = k * cb, true;
      if (n->op == BinOp::Mul && is_const_int(n->b, &k)) return *c = ca * k, true;
      return false;
    }
    default: *c = 0; return !uses_lane(e);
  }
}

bool Emitter::uses_lane(const Expr& e) {
  bool used = false;
  visit(e, [&](const Expr& x) { used |= x.kind() == ExprKind::Var && x.as<VarNode>() == vec_var_; });
  return used;
}

int64_t Emitter::flat_lane_stride(const Buffer& buf, const std::vector<Expr>& idx_in, bool* affine, int64_t period) {
  // Fused-loop index pairs (x / k, x % k) merged into x (tir/affine.h): affine in x, so
  // vector accesses along a fused axis stay contiguous.
  Shape shape;
  std::vector<Expr> idx = merge_index_pairs(idx_in, buf->shape, &shape);
  int64_t total = 0, stride = 1;
  *affine = true;
  for (int d = int(idx.size()) - 1; d >= 0; --d) {
    int64_t c;
    if (!lane_stride(idx[d], &c, period)) {
      *affine = false;
      return 0;
    }
    total += c * stride;
    stride *= shape[d];
  }
  return total;
}

llvm::Value* Emitter::lane0_ptr(const Buffer& buf, const std::vector<Expr>& idx) {
  const VarNode* v = vec_var_;
  vec_var_ = nullptr;
  llvm::Value* p = element_ptr(buf, idx);
  vec_var_ = v;
  return p;
}

llvm::VectorType* Emitter::vec_of(llvm::Type* t) { return llvm::FixedVectorType::get(t, lanes_); }

llvm::Value* Emitter::vector_load(const LoadNode* n) {
  bool affine;
  int64_t stride = flat_lane_stride(n->buffer, n->indices, &affine);
  llvm::Type* et = mem_type(n->dtype);
  if (affine && stride == 0) return b_.CreateLoad(et, lane0_ptr(n->buffer, n->indices));
  // Element alignment only: a vector type's own alignment is its full width.
  if (affine && stride == 1)
    return b_.CreateAlignedLoad(vec_of(et), lane0_ptr(n->buffer, n->indices), llvm::Align(dtype_bytes(n->dtype)));
  if (affine && stride >= 2 && stride <= kMaxShuffledStride) return strided_load(n, et, stride);
  if (affine) {
    // Lanes far apart (a residual read along a channel-vector tile of NCHW): one scalar load
    // per lane at a constant offset from the first, cheaper than a gather's address vector.
    llvm::Value* base = lane0_ptr(n->buffer, n->indices);
    llvm::Value* v = llvm::PoisonValue::get(vec_of(et));
    for (int l = 0; l < lanes_; ++l)
      v = b_.CreateInsertElement(v,
                                 b_.CreateAlignedLoad(et, b_.CreateConstInBoundsGEP1_64(et, base, uint64_t(l * stride)),
                                                      llvm::Align(dtype_bytes(n->dtype))),
                                 uint64_t(l));
    return v;
  }
  if (llvm::Value* v = interleaved_load(n, et)) return v;
  auto* ptrs = element_ptr(n->buffer, n->indices);  // vector of pointers
  return b_.CreateMaskedGather(vec_of(et), ptrs, llvm::Align(dtype_bytes(n->dtype)));
}

llvm::Value* Emitter::interleaved_load(const LoadNode* n, llvm::Type* et) {
  auto* lane0 = llvm::dyn_cast<llvm::ConstantInt>(vars_.at(vec_var_));
  if (!lane0) return nullptr;
  for (int64_t phases : {2, 4}) {
    if (lane0->getSExtValue() % phases || lanes_ % phases) continue;
    bool affine;
    if (flat_lane_stride(n->buffer, n->indices, &affine, phases) != 1 || !affine) continue;
    // One contiguous load per phase from the element of its first lane, then the lanes interleaved.
    const VarNode* v = vec_var_;
    std::vector<llvm::Value*> runs;
    auto* run_type = llvm::FixedVectorType::get(et, unsigned(lanes_ / phases));
    for (int64_t r = 0; r < phases; ++r) {
      vars_[v] = b_.getInt64(uint64_t(lane0->getSExtValue() + r));
      vec_var_ = nullptr;
      llvm::Value* p = element_ptr(n->buffer, n->indices);
      vec_var_ = v;
      runs.push_back(b_.CreateAlignedLoad(run_type, p, llvm::Align(dtype_bytes(n->dtype))));
    }
    vars_[v] = lane0;
    // Concatenate the runs pairwise (shuffles take two operands), then pick lane l from run
    // l % phases, element l / phases.
    int64_t width = lanes_ / phases;
    while (runs.size() > 1) {
      std::vector<llvm::Value*> joined;
      std::vector<int> both;
      for (int i = 0; i < 2 * width; ++i) both.push_back(i);
      for (size_t i = 0; i < runs.size(); i += 2) joined.push_back(b_.CreateShuffleVector(runs[i], runs[i + 1], both));
      runs = joined;
      width *= 2;
    }
    std::vector<int> pick;
    for (int l = 0; l < lanes_; ++l) pick.push_back(int(l % phases * (lanes_ / phases) + l / phases));
    return b_.CreateShuffleVector(runs[0], pick);
  }
  return nullptr;
}

llvm::Value* Emitter::strided_load(const LoadNode* n, llvm::Type* et, int64_t stride) {
  int span = int(stride) * lanes_;
  std::vector<llvm::Constant*> mask;
  std::vector<int> pick;
  for (int i = 0; i < span; ++i) mask.push_back(b_.getInt1(i <= (lanes_ - 1) * stride));
  for (int l = 0; l < lanes_; ++l) pick.push_back(int(l * stride));
  auto* wide_type = llvm::FixedVectorType::get(et, span);
  llvm::Value* wide = b_.CreateMaskedLoad(wide_type, lane0_ptr(n->buffer, n->indices),
                                          llvm::Align(dtype_bytes(n->dtype)), llvm::ConstantVector::get(mask));
  return b_.CreateShuffleVector(wide, pick);
}

void Emitter::vector_store(const StoreNode* n) {
  llvm::Value* v = expr(n->value);
  bool affine;
  int64_t stride = flat_lane_stride(n->buffer, n->indices, &affine);
  if (!v->getType()->isVectorTy()) v = b_.CreateVectorSplat(lanes_, v);
  v = to_memory(n->buffer->dtype, v);
  if (affine && stride == 1) {
    b_.CreateAlignedStore(v, lane0_ptr(n->buffer, n->indices), llvm::Align(dtype_bytes(n->buffer->dtype)));
    return;
  }
  if (affine && stride == 0) {  // every lane writes one element: the last lane's value wins
    b_.CreateStore(b_.CreateExtractElement(v, lanes_ - 1), lane0_ptr(n->buffer, n->indices));
    return;
  }
  if (affine) {
    // Lanes a constant distance apart (a channel-vector tile stored to NCHW): one scalar
    // store per lane at a constant offset from the first, no vector of addresses.
    llvm::Value* base = lane0_ptr(n->buffer, n->indices);
    llvm::Type* et = v->getType()->getScalarType();
    for (int l = 0; l < lanes_; ++l)
      b_.CreateAlignedStore(b_.CreateExtractElement(v, uint64_t(l)),
                            b_.CreateConstInBoundsGEP1_64(et, base, uint64_t(l * stride)),
                            llvm::Align(dtype_bytes(n->buffer->dtype)));
    return;
  }
  b_.CreateMaskedScatter(v, element_ptr(n->buffer, n->indices), llvm::Align(dtype_bytes(n->buffer->dtype)));
}

bool Emitter::vectorizable(const Stmt& s) {
  if (!s) return true;
  bool ok = true;
  auto type_ok = [](DType t) { return t != DType::Bool && t != DType::F16; };
  std::function<void(const Expr&)> check = [&](const Expr& e) {
    visit(e, [&](const Expr& x) {
      ok &= type_ok(x.dtype()) || x.kind() == ExprKind::Binary || x.kind() == ExprKind::Unary;
      if (x.kind() == ExprKind::Load) ok &= type_ok(x.as<LoadNode>()->buffer->dtype);
      if (x.kind() == ExprKind::Cast) ok &= type_ok(x.as<CastNode>()->a.dtype());
    });
  };
  if (s->kind == StmtKind::Store) {
    auto n = as<StoreNode>(s);
    ok &= type_ok(n->buffer->dtype);
    check(n->value);
    for (auto& i : n->indices) check(i);
    return ok;
  }
  if (s->kind == StmtKind::Seq) {
    for (auto& c : as<SeqNode>(s)->stmts) ok &= vectorizable(c);
    return ok;
  }
  return false;
}

llvm::Value* Emitter::expr(const Expr& e) {
  switch (e.kind()) {
    case ExprKind::IntImm:
      return llvm::ConstantInt::get(value_type(e.dtype()), uint64_t(e.as<IntImmNode>()->value), true);
    case ExprKind::FloatImm: {
      double v = e.as<FloatImmNode>()->value;
      if (e.dtype() == DType::F16 || e.dtype() == DType::BF16)
        return round_to(e.dtype(), llvm::ConstantFP::get(b_.getFloatTy(), v));
      return llvm::ConstantFP::get(value_type(e.dtype()), v);
    }
    case ExprKind::Var: {
      if (e.as<VarNode>() == vec_var_) {
        llvm::Value* base = b_.CreateVectorSplat(lanes_, vars_.at(vec_var_));
        std::vector<llvm::Constant*> lane;
        for (int i = 0; i < lanes_; ++i) lane.push_back(b_.getInt64(i));
        return b_.CreateAdd(base, llvm::ConstantVector::get(lane));
      }
      auto it = vars_.find(e.as<VarNode>());
      KILN_CHECK(it != vars_.end(), "unbound variable ", e.as<VarNode>()->name);
      return it->second;
    }
    case ExprKind::Binary: return binary(e.as<BinaryNode>());
    case ExprKind::Unary: return unary(e.as<UnaryNode>());
    case ExprKind::Select: {
      auto n = e.as<SelectNode>();
      llvm::Value* c = expr(n->cond);
      auto [t, f] = unify(expr(n->t), expr(n->f));
      t = splat_like(c, t);
      f = splat_like(c, f);
      return b_.CreateSelect(splat_like(t, c), t, f);
    }
    case ExprKind::Cast: return cast(e.as<CastNode>());
    case ExprKind::Load: {
      auto n = e.as<LoadNode>();
      if (vec_var_ && uses_lane(e)) return from_memory(n->dtype, vector_load(n));
      auto* p = element_ptr(n->buffer, n->indices);
      return from_memory(n->dtype, b_.CreateLoad(mem_type(n->dtype), p));
    }
    case ExprKind::Reduce: KILN_CHECK(false, "reduction reached codegen unlowered");
  }
  return nullptr;
}

llvm::Value* Emitter::cast(const CastNode* n) {
  DType from = n->a.dtype(), to = n->dtype;
  llvm::Value* v = expr(n->a);
  llvm::Type* tt = value_type(to);
  if (v->getType()->isVectorTy()) tt = vec_of(tt);
  if (to == DType::Bool) {
    return dtype_is_float(from) ? b_.CreateFCmpUNE(v, llvm::ConstantFP::get(v->getType(), 0.0))
                                : b_.CreateICmpNE(v, llvm::ConstantInt::get(v->getType(), 0));
  }
  if (dtype_is_float(to)) {
    llvm::Value* r;
    if (dtype_is_float(from))
      r = b_.CreateFPCast(v, tt);
    else if (dtype_is_signed_int(from))
      r = b_.CreateSIToFP(v, tt);
    else
      r = b_.CreateUIToFP(v, tt);
    return (to == DType::F16 || to == DType::BF16) ? round_to(to, r) : r;
  }
  // integer target
  if (dtype_is_float(from)) {
    return dtype_is_signed_int(to) ? b_.CreateFPToSI(v, tt) : b_.CreateFPToUI(v, tt);
  }
  return b_.CreateIntCast(v, tt, dtype_is_signed_int(from));
}

llvm::Value* Emitter::is_nan(llvm::Value* v) { return b_.CreateFCmpUNO(v, v); }

bool Emitter::f32_vector(llvm::Value* v) {
  return v->getType()->isVectorTy() && v->getType()->getScalarType()->isFloatTy();
}

llvm::Value* Emitter::binary(const BinaryNode* n) {
  DType t = n->a.dtype();
  bool fl = dtype_is_float(t), sg = dtype_is_signed_int(t);
  auto [a, b] = unify(expr(n->a), expr(n->b));
  if (n->op == BinOp::Shl || n->op == BinOp::Shr) b = b_.CreateIntCast(b, a->getType(), false);
  llvm::Type* ty = a->getType();
  auto zero = [&] { return llvm::Constant::getNullValue(ty); };
  switch (n->op) {
    case BinOp::Add: return fl ? b_.CreateFAdd(a, b) : b_.CreateAdd(a, b);
    case BinOp::Sub: return fl ? b_.CreateFSub(a, b) : b_.CreateSub(a, b);
    case BinOp::Mul: return fl ? b_.CreateFMul(a, b) : b_.CreateMul(a, b);
    case BinOp::Div:
    case BinOp::Mod:
    case BinOp::FloorDiv:
    case BinOp::FloorMod: {
      if (fl) {
        if (n->op == BinOp::Div) return b_.CreateFDiv(a, b);
        if (n->op == BinOp::FloorDiv) return intrinsic(llvm::Intrinsic::floor, {b_.CreateFDiv(a, b)});
        llvm::Value* r = b_.CreateFRem(a, b);
        if (n->op == BinOp::Mod) return r;
        auto* fz = llvm::ConstantFP::get(ty, 0.0);
        auto* fix =
            b_.CreateAnd(b_.CreateFCmpONE(r, fz), b_.CreateXor(b_.CreateFCmpOLT(r, fz), b_.CreateFCmpOLT(b, fz)));
        return b_.CreateSelect(fix, b_.CreateFAdd(r, b), r);
      }
      // Integer division by zero would trap; kiln defines it as 0 instead of crashing.
      auto* bz = b_.CreateICmpEQ(b, zero());
      auto* safe_b = b_.CreateSelect(bz, llvm::ConstantInt::get(ty, 1), b);
      bool div = n->op == BinOp::Div || n->op == BinOp::FloorDiv;
      llvm::Value* q = sg ? b_.CreateSDiv(a, safe_b) : b_.CreateUDiv(a, safe_b);
      llvm::Value* r = sg ? b_.CreateSRem(a, safe_b) : b_.CreateURem(a, safe_b);
      llvm::Value* res = div ? q : r;
      if (sg && (n->op == BinOp::FloorDiv || n->op == BinOp::FloorMod)) {
        auto* fix = b_.CreateAnd(b_.CreateICmpNE(r, zero()),
                                 b_.CreateXor(b_.CreateICmpSLT(r, zero()), b_.CreateICmpSLT(safe_b, zero())));
        res = div ? b_.CreateSelect(fix, b_.CreateSub(q, llvm::ConstantInt::get(ty, 1)), q)
                  : b_.CreateSelect(fix, b_.CreateAdd(r, safe_b), r);
      }
      return b_.CreateSelect(bz, zero(), res);
    }
    case BinOp::Min:
    case BinOp::Max: {
      bool mn = n->op == BinOp::Min;
      if (fl) {  // NaN-propagating, like numpy.minimum / maximum
        auto* c = mn ? b_.CreateFCmpOLT(a, b) : b_.CreateFCmpOGT(a, b);
        return b_.CreateSelect(is_nan(a), a, b_.CreateSelect(c, a, b));
      }
      auto* c = mn ? (sg ? b_.CreateICmpSLT(a, b) : b_.CreateICmpULT(a, b))
                   : (sg ? b_.CreateICmpSGT(a, b) : b_.CreateICmpUGT(a, b));
      return b_.CreateSelect(c, a, b);
    }
    case BinOp::Pow: {
      if (fl) return intrinsic(llvm::Intrinsic::pow, {a, b});
      llvm::Type* d = b_.getDoubleTy();
      if (ty->isVectorTy()) d = vec_of(d);
      auto* fa = sg ? b_.CreateSIToFP(a, d) : b_.CreateUIToFP(a, d);
      auto* fb = sg ? b_.CreateSIToFP(b, d) : b_.CreateUIToFP(b, d);
      auto* p = intrinsic(llvm::Intrinsic::pow, {fa, fb});
      return sg ? b_.CreateFPToSI(p, ty) : b_.CreateFPToUI(p, ty);
    }
    case BinOp::Atan2: return libm("atan2f", a, b);
    case BinOp::And: return b_.CreateAnd(a, b);
    case BinOp::Or: return b_.CreateOr(a, b);
    case BinOp::Xor: return b_.CreateXor(a, b);
    case BinOp::Shl:
    case BinOp::Shr: {
      unsigned bits = ty->getScalarSizeInBits();
      auto* big = b_.CreateICmpUGE(b, llvm::ConstantInt::get(ty, bits));
      auto* safe = b_.CreateSelect(big, zero(), b);
      llvm::Value* r = n->op == BinOp::Shl ? b_.CreateShl(a, safe)
                       : sg                ? b_.CreateAShr(a, safe)
                                           : b_.CreateLShr(a, safe);
      return b_.CreateSelect(big, zero(), r);
    }
    case BinOp::EQ: return fl ? b_.CreateFCmpOEQ(a, b) : b_.CreateICmpEQ(a, b);
    case BinOp::NE: return fl ? b_.CreateFCmpUNE(a, b) : b_.CreateICmpNE(a, b);
    case BinOp::LT: return fl ? b_.CreateFCmpOLT(a, b) : sg ? b_.CreateICmpSLT(a, b) : b_.CreateICmpULT(a, b);
    case BinOp::LE: return fl ? b_.CreateFCmpOLE(a, b) : sg ? b_.CreateICmpSLE(a, b) : b_.CreateICmpULE(a, b);
    case BinOp::GT: return fl ? b_.CreateFCmpOGT(a, b) : sg ? b_.CreateICmpSGT(a, b) : b_.CreateICmpUGT(a, b);
    case BinOp::GE: return fl ? b_.CreateFCmpOGE(a, b) : sg ? b_.CreateICmpSGE(a, b) : b_.CreateICmpUGE(a, b);
  }
  return nullptr;
}

llvm::Value* Emitter::unary(const UnaryNode* n) {
  DType t = n->a.dtype();
  bool fl = dtype_is_float(t);
  llvm::Value* a = expr(n->a);
  llvm::Type* ty = a->getType();
  using I = llvm::Intrinsic::ID;
  auto fpi = [&](I id) { return intrinsic(id, {a}); };
  switch (n->op) {
    case UnOp::Neg: return fl ? b_.CreateFNeg(a) : b_.CreateNeg(a);
    case UnOp::Not: return b_.CreateNot(a);
    case UnOp::Abs:
      if (fl) return fpi(llvm::Intrinsic::fabs);
      if (!dtype_is_signed_int(t)) return a;
      return b_.CreateSelect(b_.CreateICmpSLT(a, llvm::Constant::getNullValue(ty)), b_.CreateNeg(a), a);
    case UnOp::Sign: {
      if (fl) {
        auto* z = llvm::ConstantFP::get(ty, 0.0);
        auto* r = b_.CreateSelect(b_.CreateFCmpOGT(a, z), llvm::ConstantFP::get(ty, 1.0),
                                  b_.CreateSelect(b_.CreateFCmpOLT(a, z), llvm::ConstantFP::get(ty, -1.0), z));
        return b_.CreateSelect(is_nan(a), a, r);
      }
      auto* z = llvm::Constant::getNullValue(ty);
      auto* pos = b_.CreateZExt(b_.CreateICmpNE(a, z), ty);
      if (!dtype_is_signed_int(t)) return pos;
      return b_.CreateSelect(b_.CreateICmpSLT(a, z), llvm::ConstantInt::get(ty, -1, true), pos);
    }
    case UnOp::Exp: return f32_vector(a) ? emit_exp_f32(b_, a) : fpi(llvm::Intrinsic::exp);
    case UnOp::Log: return fpi(llvm::Intrinsic::log);
    case UnOp::Sqrt: return fpi(llvm::Intrinsic::sqrt);
    case UnOp::Sin: return fpi(llvm::Intrinsic::sin);
    case UnOp::Cos: return fpi(llvm::Intrinsic::cos);
    case UnOp::Floor: return fl ? fpi(llvm::Intrinsic::floor) : a;
    case UnOp::Ceil: return fl ? fpi(llvm::Intrinsic::ceil) : a;
    case UnOp::Round: return fl ? fpi(llvm::Intrinsic::roundeven) : a;
    case UnOp::Tan: return libm("tanf", a);
    case UnOp::Asin: return libm("asinf", a);
    case UnOp::Acos: return libm("acosf", a);
    case UnOp::Atan: return libm("atanf", a);
    case UnOp::Sinh: return libm("sinhf", a);
    case UnOp::Cosh: return libm("coshf", a);
    case UnOp::Tanh: return libm("tanhf", a);
    case UnOp::Asinh: return libm("asinhf", a);
    case UnOp::Acosh: return libm("acoshf", a);
    case UnOp::Atanh: return libm("atanhf", a);
    case UnOp::Erf: return f32_vector(a) ? emit_erf_f32(b_, a) : libm("erff", a);
    case UnOp::IsNaN: return fl ? is_nan(a) : b_.getFalse();
    case UnOp::IsInf:
      return fl ? b_.CreateFCmpOEQ(fpi(llvm::Intrinsic::fabs), llvm::ConstantFP::getInfinity(ty)) : b_.getFalse();
    case UnOp::IsPosInf: return fl ? b_.CreateFCmpOEQ(a, llvm::ConstantFP::getInfinity(ty)) : b_.getFalse();
    case UnOp::IsNegInf: return fl ? b_.CreateFCmpOEQ(a, llvm::ConstantFP::getInfinity(ty, true)) : b_.getFalse();
  }
  return nullptr;
}

void Emitter::emit(const Stmt& s) {
  if (!s) return;
  switch (s->kind) {
    case StmtKind::Seq:
      for (auto& c : as<SeqNode>(s)->stmts) emit(c);
      break;
    case StmtKind::Store: {
      auto n = as<StoreNode>(s);
      if (vec_var_) {
        vector_store(n);
        break;
      }
      llvm::Value* v = expr(n->value);
      auto* p = element_ptr(n->buffer, n->indices);
      b_.CreateStore(to_memory(n->buffer->dtype, v), p);
      break;
    }
    case StmtKind::For: emit_for(as<ForNode>(s)); break;
    case StmtKind::IfThenElse: {
      auto n = as<IfThenElseNode>(s);
      auto* then_bb = llvm::BasicBlock::Create(ctx_, "then", fn_);
      auto* else_bb = llvm::BasicBlock::Create(ctx_, "else", fn_);
      auto* done = llvm::BasicBlock::Create(ctx_, "endif", fn_);
      b_.CreateCondBr(expr(n->cond), then_bb, else_bb);
      b_.SetInsertPoint(then_bb);
      emit(n->then_case);
      b_.CreateBr(done);
      b_.SetInsertPoint(else_bb);
      emit(n->else_case);
      b_.CreateBr(done);
      b_.SetInsertPoint(done);
      break;
    }
    case StmtKind::Allocate: emit_allocate(as<AllocateNode>(s)); break;
    case StmtKind::TileMatmul:
      if (has_amx_for(as<TileMatmulNode>(s)->a.buffer->dtype))
        emit_amx_tile(as<TileMatmulNode>(s));
      else if (avx2_int8_tile(as<TileMatmulNode>(s)))
        emit_avx2_int8_tile(as<TileMatmulNode>(s));
      else
        emit_tile_loops(as<TileMatmulNode>(s));
      break;
  }
}

void Emitter::emit_for(const ForNode* n) {
  if (n->for_kind == ForKind::Parallel) return emit_parallel_for(n);
  int64_t mn, ext;
  if (n->for_kind == ForKind::Unrolled && is_const_int(n->min, &mn) && is_const_int(n->extent, &ext)) {
    // Unrolled: the body once per iteration with the variable a constant, so accesses to
    // small scratch tiles have constant offsets and LLVM keeps the tiles in registers.
    for (int64_t i = mn; i < mn + ext; ++i) {
      vars_[n->var.as<VarNode>()] = b_.getInt64(i);
      emit(n->body);
    }
    vars_.erase(n->var.as<VarNode>());
    return;
  }
  if (n->for_kind == ForKind::Vectorized && !vec_var_ && is_const_int(n->extent, &ext) && ext > 1 &&
      vectorizable(n->body)) {
    // One iteration of vector code: lane i computes iteration min + i.
    vars_[n->var.as<VarNode>()] = expr(n->min);
    vec_var_ = n->var.as<VarNode>();
    lanes_ = int(ext);
    emit(n->body);
    vec_var_ = nullptr;
    vars_.erase(n->var.as<VarNode>());
    return;
  }
  llvm::Value* lo = expr(n->min);
  emit_loop(n, lo, b_.CreateAdd(lo, expr(n->extent)));
}

void Emitter::emit_parallel_for(const ForNode* n) {
  int64_t mn;
  KILN_CHECK(is_const_int(n->min, &mn) && mn == 0, "parallel loop ", n->var.name(), " must start at 0");
  auto* ptr = llvm::PointerType::get(ctx_, 0);
  auto* i64 = b_.getInt64Ty();
  std::vector<std::pair<const BufferNode*, llvm::Value*>> bufs(bufs_.begin(), bufs_.end());
  std::vector<std::pair<const VarNode*, llvm::Value*>> vars(vars_.begin(), vars_.end());
  size_t slots = bufs.size() + vars.size();
  llvm::Value* closure;
  {
    llvm::IRBuilder<> eb(entry_, entry_->begin());
    closure = eb.CreateAlloca(ptr, eb.getInt64(std::max<size_t>(1, slots)), "closure");
  }
  for (size_t i = 0; i < bufs.size(); ++i)
    b_.CreateStore(bufs[i].second, b_.CreateConstInBoundsGEP1_64(ptr, closure, i));
  for (size_t i = 0; i < vars.size(); ++i)
    b_.CreateStore(b_.CreateIntToPtr(vars[i].second, ptr),
                   b_.CreateConstInBoundsGEP1_64(ptr, closure, bufs.size() + i));
  llvm::Value* extent = expr(n->extent);

  auto* fty = llvm::FunctionType::get(b_.getVoidTy(), {i64, i64, ptr}, false);
  auto* body_fn = llvm::Function::Create(fty, llvm::Function::InternalLinkage,
                                         fn_->getName() + "_par" + std::to_string(outlined_++), mod_);
  body_fn->addFnAttr(llvm::Attribute::NoUnwind);
  body_fn->addFnAttr("prefer-vector-width", "512");
  body_fn->addFnAttr("min-legal-vector-width", "512");
  auto saved_fn = fn_;
  auto saved_entry = entry_;
  auto saved_bufs = bufs_;
  auto saved_vars = vars_;
  auto* saved_block = b_.GetInsertBlock();

  fn_ = body_fn;
  kernel_fns_.push_back(body_fn);
  entry_ = llvm::BasicBlock::Create(ctx_, "entry", fn_);
  auto* start = llvm::BasicBlock::Create(ctx_, "body", fn_);
  b_.SetInsertPoint(entry_);
  for (size_t i = 0; i < bufs.size(); ++i)
    bind(bufs[i].first, b_.CreateLoad(ptr, b_.CreateConstInBoundsGEP1_64(ptr, fn_->getArg(2), i)));
  for (size_t i = 0; i < vars.size(); ++i)
    vars_[vars[i].first] =
        b_.CreatePtrToInt(b_.CreateLoad(ptr, b_.CreateConstInBoundsGEP1_64(ptr, fn_->getArg(2), bufs.size() + i)), i64);
  b_.SetInsertPoint(start);
  emit_loop(n, fn_->getArg(0), fn_->getArg(1));
  b_.CreateRetVoid();
  b_.SetInsertPoint(entry_);
  b_.CreateBr(start);

  fn_ = saved_fn;
  entry_ = saved_entry;
  bufs_ = saved_bufs;
  vars_ = saved_vars;
  b_.SetInsertPoint(saved_block);
  auto callee =
      mod_.getOrInsertFunction("kiln_parallel_for", llvm::FunctionType::get(b_.getVoidTy(), {i64, ptr, ptr}, false));
  b_.CreateCall(callee, {extent, body_fn, closure});
}

void Emitter::emit_loop(const ForNode* n, llvm::Value* lo, llvm::Value* hi) {
  auto* pre = b_.GetInsertBlock();
  auto* head = llvm::BasicBlock::Create(ctx_, n->var.name() + ".head", fn_);
  auto* body = llvm::BasicBlock::Create(ctx_, n->var.name() + ".body", fn_);
  auto* exit = llvm::BasicBlock::Create(ctx_, n->var.name() + ".exit", fn_);
  b_.CreateBr(head);
  b_.SetInsertPoint(head);
  auto* iv = b_.CreatePHI(b_.getInt64Ty(), 2, n->var.name());
  iv->addIncoming(lo, pre);
  b_.CreateCondBr(b_.CreateICmpSLT(iv, hi), body, exit);
  b_.SetInsertPoint(body);
  vars_[n->var.as<VarNode>()] = iv;
  emit(n->body);
  auto* next = b_.CreateAdd(iv, b_.getInt64(1), "", true, true);
  iv->addIncoming(next, b_.GetInsertBlock());
  auto* back = b_.CreateBr(head);
  if (n->for_kind == ForKind::Rolled) {
    // !llvm.loop !{self, !{"llvm.loop.unroll.disable"}}: the loop ID refers to itself.
    auto temp = llvm::MDNode::getTemporary(ctx_, {});
    llvm::Metadata* disable = llvm::MDNode::get(ctx_, {llvm::MDString::get(ctx_, "llvm.loop.unroll.disable")});
    llvm::Metadata* ops[] = {temp.get(), disable};
    llvm::MDNode* id = llvm::MDNode::get(ctx_, ops);
    id->replaceOperandWith(0, id);
    back->setMetadata(llvm::LLVMContext::MD_loop, id);
  }
  b_.SetInsertPoint(exit);
  vars_.erase(n->var.as<VarNode>());
}

void Emitter::emit_allocate(const AllocateNode* n) {
  const Buffer& buf = n->buffer;
  int64_t bytes = shape_numel(buf->shape) * dtype_bytes(buf->dtype);
  llvm::Type* et = mem_type(buf->dtype);
  if (bytes <= kMaxStackBytes) {
    // Entry-block allocas are promoted to registers (scalars) and never grow the stack in loops.
    llvm::IRBuilder<> eb(entry_, entry_->begin());
    bind(buf.get(), eb.CreateAlloca(et, eb.getInt64(std::max<int64_t>(1, shape_numel(buf->shape))), buf->name));
    emit(n->body);
    bufs_.erase(buf.get());
    return;
  }
  // From the thread's cache of scratch blocks (codegen/scratch.h), which keeps them mapped
  // from one run to the next.
  auto* ptr = llvm::PointerType::get(ctx_, 0);
  auto mal = mod_.getOrInsertFunction("kiln_scratch_alloc", llvm::FunctionType::get(ptr, {b_.getInt64Ty()}, false));
  auto fre = mod_.getOrInsertFunction("kiln_scratch_free", llvm::FunctionType::get(b_.getVoidTy(), {ptr}, false));
  auto* p = b_.CreateCall(mal, {b_.getInt64(bytes)}, buf->name);
  bind(buf.get(), p);
  emit(n->body);
  b_.CreateCall(fre, {p});
  bufs_.erase(buf.get());
}

void Emitter::bind(const BufferNode* buf, llvm::Value* p) {
  bufs_[buf] = p;
  buffer_of_[p] = buf;
}

void Emitter::annotate_aliasing(const std::string& kernel) {
  llvm::MDBuilder mdb(ctx_);
  llvm::MDNode* domain = mdb.createAnonymousAliasScopeDomain(kernel);
  std::unordered_map<const BufferNode*, llvm::MDNode*> scope;
  std::vector<const BufferNode*> order;  // deterministic metadata order
  for (auto& [p, buf] : buffer_of_)
    if (scope.emplace(buf, nullptr).second) order.push_back(buf);
  if (order.size() < 2) return;
  std::sort(order.begin(), order.end(), [&](const BufferNode* a, const BufferNode* b) { return a->name < b->name || (a->name == b->name && a < b); });
  for (auto* buf : order) scope[buf] = mdb.createAnonymousAliasScope(domain, buf->name);
  // The buffer an address derives from, or null (the argument array, a closure slot).
  auto buffer_at = [&](const llvm::Value* addr) -> const BufferNode* {
    if (!addr->getType()->isPtrOrPtrVectorTy()) return nullptr;
    const llvm::Value* base = llvm::getUnderlyingObject(addr, 0);
    if (auto it = buffer_of_.find(base); it != buffer_of_.end()) return it->second;
    // A gather's or scatter's vector of pointers: the scalar base of its GEP.
    if (auto* gep = llvm::dyn_cast<llvm::GetElementPtrInst>(addr); gep && gep->getType()->isVectorTy()) {
      base = llvm::getUnderlyingObject(gep->getPointerOperand(), 0);
      if (auto it = buffer_of_.find(base); it != buffer_of_.end()) return it->second;
    }
    return nullptr;
  };
  auto annotate = [&](llvm::Instruction& inst, const BufferNode* buf) {
    llvm::SmallVector<llvm::Metadata*, 16> others;
    for (auto* o : order)
      if (o != buf) others.push_back(scope[o]);
    inst.setMetadata(llvm::LLVMContext::MD_alias_scope, llvm::MDNode::get(ctx_, {scope[buf]}));
    inst.setMetadata(llvm::LLVMContext::MD_noalias, llvm::MDNode::get(ctx_, others));
  };
  for (llvm::Function* fn : kernel_fns_)
    for (llvm::BasicBlock& bb : *fn)
      for (llvm::Instruction& inst : bb) {
        const BufferNode* buf = nullptr;
        if (auto* ld = llvm::dyn_cast<llvm::LoadInst>(&inst)) buf = buffer_at(ld->getPointerOperand());
        else if (auto* st = llvm::dyn_cast<llvm::StoreInst>(&inst)) buf = buffer_at(st->getPointerOperand());
        else if (auto* call = llvm::dyn_cast<llvm::IntrinsicInst>(&inst)) {
          // Masked loads and stores, gathers, scatters: every pointer operand in one buffer.
          bool any = false, one = true;
          for (llvm::Value* a : call->args()) {
            if (!a->getType()->isPtrOrPtrVectorTy()) continue;
            const BufferNode* b = buffer_at(a);
            one &= b != nullptr && (!any || b == buf);
            buf = b;
            any = true;
          }
          if (!any || !one) buf = nullptr;
        }
        if (buf) annotate(inst, buf);
      }
}

std::unique_ptr<llvm::Module> emit_module(llvm::LLVMContext& ctx, const std::string& module_name,
                                          const std::vector<PrimFunc>& funcs, const Target& target) {
  auto m = std::make_unique<llvm::Module>(module_name, ctx);
  Emitter em(*m, target);
  for (auto& f : funcs) em.emit(f);
  return m;
}

}  // namespace kiln::codegen
