#include "codegen/llvm_emit.h"
#include "codegen/vector_math.h"
#include "tir/affine.h"
#include "tir/tile.h"

#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/IntrinsicsX86.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include <unordered_map>

#include "kiln/error.h"

namespace kiln::codegen {

using namespace kiln::tir;

namespace {

// Buffers above this size are heap-allocated; smaller scratch lives on the stack.
constexpr int64_t kMaxStackBytes = 64 * 1024;
// The AVX2 8-bit tile kernel's widened copy of 4 rows of A lives on the stack up to this size.
constexpr int64_t kMaxWidenedBytes = 32 * 1024;

class Emitter {
 public:
  Emitter(llvm::Module& m, const Target& target) : mod_(m), ctx_(m.getContext()), b_(ctx_), target_(target) {
    // Multiply-adds may fuse into FMA instructions (one rounding instead of two).
    llvm::FastMathFlags fmf;
    fmf.setAllowContract(true);
    b_.setFastMathFlags(fmf);
  }

  void emit(const PrimFunc& f) {
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
    for (size_t i = 0; i < f.params.size(); ++i) {
      auto* slot = b_.CreateConstInBoundsGEP1_64(ptr, fn_->getArg(0), i);
      auto* p = b_.CreateLoad(ptr, slot, f.params[i]->name);
      bufs_[f.params[i].get()] = p;
    }
    b_.SetInsertPoint(body);
    emit(f.body);
    b_.CreateRetVoid();
    b_.SetInsertPoint(entry_);
    b_.CreateBr(body);
    std::string err;
    llvm::raw_string_ostream os(err);
    if (llvm::verifyFunction(*fn_, &os)) KILN_CHECK(false, "invalid LLVM IR for ", f.name, ": ", err);
  }

 private:
  llvm::Module& mod_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  const Target& target_;  // which tile products become AMX instructions
  llvm::Function* fn_ = nullptr;
  llvm::BasicBlock* entry_ = nullptr;
  std::unordered_map<const BufferNode*, llvm::Value*> bufs_;
  std::unordered_map<const VarNode*, llvm::Value*> vars_;
  int outlined_ = 0;
  // Set while emitting the body of a vectorized loop: its variable and lane count.
  const VarNode* vec_var_ = nullptr;
  int lanes_ = 0;
  // The AMX function of each distinct tile product, shared by every kernel of the module.
  std::unordered_map<std::string, llvm::Function*> tile_fns_;

  // Type of a value of `t` in registers. f16/bf16 are computed in f32.
  llvm::Type* value_type(DType t) {
    switch (t) {
      case DType::Bool: return b_.getInt1Ty();
      case DType::I8: case DType::U8: return b_.getInt8Ty();
      case DType::I16: case DType::U16: return b_.getInt16Ty();
      case DType::I32: case DType::U32: return b_.getInt32Ty();
      case DType::I64: case DType::U64: return b_.getInt64Ty();
      case DType::F16: case DType::BF16: case DType::F32: return b_.getFloatTy();
      case DType::F64: return b_.getDoubleTy();
    }
    return nullptr;
  }
  // Type of an element of `t` in memory.
  llvm::Type* mem_type(DType t) {
    switch (t) {
      case DType::Bool: return b_.getInt8Ty();
      case DType::F16: case DType::BF16: return b_.getInt16Ty();
      default: return value_type(t);
    }
  }

  llvm::Value* element_ptr(const Buffer& buf, const std::vector<Expr>& idx_in) {
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

  // Scalar or vector (like `like`) of the integer type `bits` wide holding `value`.
  llvm::Value* int_like(llvm::Value* like, unsigned bits, uint64_t value) {
    llvm::Type* t = b_.getIntNTy(bits);
    if (auto* vt = llvm::dyn_cast<llvm::VectorType>(like->getType())) t = llvm::VectorType::get(t, vt->getElementCount());
    return llvm::ConstantInt::get(t, value);
  }
  // `v`'s type with its (element) type replaced by `t`.
  llvm::Type* shaped_like(llvm::Value* v, llvm::Type* t) {
    if (auto* vt = llvm::dyn_cast<llvm::VectorType>(v->getType())) return llvm::VectorType::get(t, vt->getElementCount());
    return t;
  }
  // Register value -> memory representation and back; scalars or vectors.
  llvm::Value* to_memory(DType t, llvm::Value* v) {
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
  llvm::Value* from_memory(DType t, llvm::Value* v) {
    switch (t) {
      case DType::Bool: return b_.CreateICmpNE(v, int_like(v, 8, 0));
      case DType::F16: return b_.CreateFPExt(b_.CreateBitCast(v, shaped_like(v, b_.getHalfTy())), shaped_like(v, b_.getFloatTy()));
      case DType::BF16: {
        auto* wide = b_.CreateZExt(v, shaped_like(v, b_.getInt32Ty()));
        return b_.CreateBitCast(b_.CreateShl(wide, int_like(wide, 32, 16)), shaped_like(v, b_.getFloatTy()));
      }
      default: return v;
    }
  }
  // Rounds an f32 register value to the precision of f16/bf16 (a Cast to those types).
  llvm::Value* round_to(DType t, llvm::Value* v) { return from_memory(t, to_memory(t, v)); }

  llvm::Value* intrinsic(llvm::Intrinsic::ID id, std::vector<llvm::Value*> args) {
    auto* f = llvm::Intrinsic::getDeclaration(&mod_, id, {args[0]->getType()});
    return b_.CreateCall(f, args);
  }
  llvm::Value* libm(const char* name32, llvm::Value* a, llvm::Value* b = nullptr) {
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

  // ---- vectorized loops -------------------------------------------------------------
  // Makes `a` and `b` the same shape: a lane-invariant scalar is broadcast to the other's lanes.
  std::pair<llvm::Value*, llvm::Value*> unify(llvm::Value* a, llvm::Value* b) {
    bool va = a->getType()->isVectorTy(), vb = b->getType()->isVectorTy();
    if (va && !vb) b = b_.CreateVectorSplat(lanes_, b);
    if (vb && !va) a = b_.CreateVectorSplat(lanes_, a);
    return {a, b};
  }
  llvm::Value* splat_like(llvm::Value* like, llvm::Value* v) {
    return like->getType()->isVectorTy() && !v->getType()->isVectorTy() ? b_.CreateVectorSplat(lanes_, v) : v;
  }

  // Coefficient of the vectorized variable in an index expression; false when not affine.
  bool lane_stride(const Expr& e, int64_t* c) {
    switch (e.kind()) {
      case ExprKind::IntImm: *c = 0; return true;
      case ExprKind::Var: *c = e.as<VarNode>() == vec_var_ ? 1 : 0; return true;
      case ExprKind::Cast: return e.dtype() == DType::I64 && lane_stride(e.as<CastNode>()->a, c);
      case ExprKind::Binary: {
        auto n = e.as<BinaryNode>();
        int64_t ca, cb, k;
        if (!lane_stride(n->a, &ca) || !lane_stride(n->b, &cb)) return uses_lane(e) ? false : (*c = 0, true);
        if (n->op == BinOp::Add) { *c = ca + cb; return true; }
        if (n->op == BinOp::Sub) { *c = ca - cb; return true; }
        if (n->op == BinOp::Mul) {
          if (is_const_int(n->a, &k)) { *c = k * cb; return true; }
          if (is_const_int(n->b, &k)) { *c = ca * k; return true; }
        }
        if (ca == 0 && cb == 0) { *c = 0; return true; }
        return false;
      }
      default:
        *c = 0;
        return !uses_lane(e);
    }
  }
  bool uses_lane(const Expr& e) {
    bool used = false;
    visit(e, [&](const Expr& x) { used |= x.kind() == ExprKind::Var && x.as<VarNode>() == vec_var_; });
    return used;
  }
  int64_t flat_lane_stride(const Buffer& buf, const std::vector<Expr>& idx_in, bool* affine) {
    // Fused-loop index pairs (x / k, x % k) merged into x (tir/affine.h): affine in x, so
    // vector accesses along a fused axis stay contiguous.
    Shape shape;
    std::vector<Expr> idx = merge_index_pairs(idx_in, buf->shape, &shape);
    int64_t total = 0, stride = 1;
    *affine = true;
    for (int d = int(idx.size()) - 1; d >= 0; --d) {
      int64_t c;
      if (!lane_stride(idx[d], &c)) { *affine = false; return 0; }
      total += c * stride;
      stride *= shape[d];
    }
    return total;
  }
  // Pointer to lane 0's element: the indices with the vectorized variable at its first value.
  llvm::Value* lane0_ptr(const Buffer& buf, const std::vector<Expr>& idx) {
    const VarNode* v = vec_var_;
    vec_var_ = nullptr;
    llvm::Value* p = element_ptr(buf, idx);
    vec_var_ = v;
    return p;
  }
  llvm::VectorType* vec_of(llvm::Type* t) { return llvm::FixedVectorType::get(t, lanes_); }

  llvm::Value* vector_load(const LoadNode* n) {
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
    auto* ptrs = element_ptr(n->buffer, n->indices);  // vector of pointers
    return b_.CreateMaskedGather(vec_of(et), ptrs, llvm::Align(dtype_bytes(n->dtype)));
  }

  // Lanes `stride` elements apart (a strided window's input, a phase of an interleaved row):
  // one contiguous load of the span they cover, then a shuffle picking every stride-th
  // element, rather than a gather. The load is masked to the span, so it reads nothing
  // beyond the last lane's element.
  static constexpr int64_t kMaxShuffledStride = 4;
  llvm::Value* strided_load(const LoadNode* n, llvm::Type* et, int64_t stride) {
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

  void vector_store(const StoreNode* n) {
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

  // Whether a loop body can be emitted as vector code: stores and the types the vector path
  // handles directly (f16 and bools convert through scalar code instead; bf16 converts with
  // integer shifts, as cheap in vectors as in scalars).
  bool vectorizable(const Stmt& s) {
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

  llvm::Value* expr(const Expr& e) {
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

  llvm::Value* cast(const CastNode* n) {
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
      if (dtype_is_float(from)) r = b_.CreateFPCast(v, tt);
      else if (dtype_is_signed_int(from)) r = b_.CreateSIToFP(v, tt);
      else r = b_.CreateUIToFP(v, tt);
      return (to == DType::F16 || to == DType::BF16) ? round_to(to, r) : r;
    }
    // integer target
    if (dtype_is_float(from)) {
      return dtype_is_signed_int(to) ? b_.CreateFPToSI(v, tt) : b_.CreateFPToUI(v, tt);
    }
    return b_.CreateIntCast(v, tt, dtype_is_signed_int(from));
  }

  llvm::Value* is_nan(llvm::Value* v) { return b_.CreateFCmpUNO(v, v); }
  static bool f32_vector(llvm::Value* v) { return v->getType()->isVectorTy() && v->getType()->getScalarType()->isFloatTy(); }

  llvm::Value* binary(const BinaryNode* n) {
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
          auto* fix = b_.CreateAnd(b_.CreateFCmpONE(r, fz),
                                   b_.CreateXor(b_.CreateFCmpOLT(r, fz), b_.CreateFCmpOLT(b, fz)));
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

  llvm::Value* unary(const UnaryNode* n) {
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
      case UnOp::IsPosInf:
        return fl ? b_.CreateFCmpOEQ(a, llvm::ConstantFP::getInfinity(ty)) : b_.getFalse();
      case UnOp::IsNegInf:
        return fl ? b_.CreateFCmpOEQ(a, llvm::ConstantFP::getInfinity(ty, true)) : b_.getFalse();
    }
    return nullptr;
  }

  void emit(const Stmt& s) {
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
        if (has_amx_for(as<TileMatmulNode>(s)->a.buffer->dtype)) emit_amx_tile(as<TileMatmulNode>(s));
        else if (avx2_int8_tile(as<TileMatmulNode>(s))) emit_avx2_int8_tile(as<TileMatmulNode>(s));
        else emit_tile_loops(as<TileMatmulNode>(s));
        break;
    }
  }

  // ---- tile products -------------------------------------------------------------------
  bool has_amx_for(DType a) const { return a == DType::BF16 ? target_.has_amx_bf16 : target_.has_amx_int8; }

  // AMX: each distinct tile product (shape, types, strides) is a function of its own, called
  // with the three tile pointers. A function's tile registers have one shape each (one
  // ldtilecfg), so products of different shapes in one function would compete for the eight
  // registers; apart, each gets all eight.
  void emit_amx_tile(const TileMatmulNode* n) {
    std::string key = tile_key("kiln_tile_", n);
    llvm::Function*& fn = tile_fns_[key];
    if (!fn) fn = amx_tile_function(key, n);
    call_tile(fn, n);
  }

  // Name of the function computing tile product `n`: what its code depends on.
  static std::string tile_key(const std::string& prefix, const TileMatmulNode* n) {
    return prefix + std::string(dtype_name(n->a.buffer->dtype)) + dtype_name(n->b.buffer->dtype) + "_" +
           std::to_string(n->rows) + "x" + std::to_string(n->cols) + "x" + std::to_string(n->depth) +
           (n->accumulate ? "_acc" : "") + "_s" + std::to_string(n->c.row_stride) + "_" + std::to_string(n->a.row_stride) +
           "_" + std::to_string(n->b.row_stride);
  }
  void call_tile(llvm::Function* fn, const TileMatmulNode* n) {
    auto at = [&](const TileOperand& o) {
      return b_.CreateInBoundsGEP(mem_type(o.buffer->dtype), bufs_.at(o.buffer.get()), expr(o.offset));
    };
    b_.CreateCall(fn, {at(n->c), at(n->a), at(n->b)});
  }

  // void tile(ptr c, ptr a, ptr b): C split into up to 2 x 2 tiles of 16 x 16, each loaded (or
  // zeroed) into a tile register; per 64 bytes of A's rows one load of each A and B tile and one
  // tdpbf16ps / tdpbusd / tdpbssd per C tile; C stored back. The K steps are emitted in
  // sequence (no loop carries a tile value); LLVM's tile-configuration passes emit ldtilecfg.
  llvm::Function* amx_tile_function(const std::string& name, const TileMatmulNode* n) {
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
        c[r][q] = n->accumulate ? call(llvm::Intrinsic::x86_tileloadd64_internal,
                                       {i16(row_sizes[r]), i16(col_sizes[q] * 4), c_at(r, q), stride(n->c)})
                                : call(llvm::Intrinsic::x86_tilezero_internal, {i16(row_sizes[r]), i16(col_sizes[q] * 4)});
    bool b_unsigned = n->b.buffer->dtype == DType::U8;
    llvm::Intrinsic::ID dot = at == DType::BF16 ? llvm::Intrinsic::x86_tdpbf16ps_internal
                              : at == DType::U8 ? (b_unsigned ? llvm::Intrinsic::x86_tdpbuud_internal
                                                              : llvm::Intrinsic::x86_tdpbusd_internal)
                                                : (b_unsigned ? llvm::Intrinsic::x86_tdpbsud_internal
                                                              : llvm::Intrinsic::x86_tdpbssd_internal);
    for (int64_t s = 0; s < n->depth / step; ++s) {
      std::vector<llvm::Value*> a, b;
      for (size_t r = 0; r < row_sizes.size(); ++r)
        a.push_back(call(llvm::Intrinsic::x86_tileloadd64_internal,
                         {i16(row_sizes[r]), k_bytes, address(1, n->a, int64_t(r) * kTileRows * n->a.row_stride + s * step),
                          stride(n->a)}));
      for (size_t q = 0; q < col_sizes.size(); ++q)
        b.push_back(call(llvm::Intrinsic::x86_tileloadd64_internal,
                         {i16(step / group), i16(col_sizes[q] * 4),
                          address(2, n->b, s * (step / group) * n->b.row_stride + int64_t(q) * tile_cols * group),
                          stride(n->b)}));
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

  // A loop over i = 0 .. count - 1 built by hand: open_loop starts its body (phis of the
  // caller's own take their first value from `pre`), close_loop branches back and continues
  // after it.
  struct CountedLoop {
    llvm::PHINode* i;
    llvm::BasicBlock *pre, *head, *exit;
  };
  CountedLoop open_loop(const char* name) {
    CountedLoop l{nullptr, b_.GetInsertBlock(), llvm::BasicBlock::Create(ctx_, name, fn_),
                  llvm::BasicBlock::Create(ctx_, std::string(name) + ".done", fn_)};
    b_.CreateBr(l.head);
    b_.SetInsertPoint(l.head);
    l.i = b_.CreatePHI(b_.getInt64Ty(), 2, "i");
    l.i->addIncoming(b_.getInt64(0), l.pre);
    return l;
  }
  void close_loop(const CountedLoop& l, int64_t count) {
    llvm::Value* next = b_.CreateAdd(l.i, b_.getInt64(1));
    l.i->addIncoming(next, b_.GetInsertBlock());
    b_.CreateCondBr(b_.CreateICmpSLT(next, b_.getInt64(count)), l.head, l.exit);
    b_.SetInsertPoint(l.exit);
  }

  // ---- 8-bit tile products on AVX2 ---------------------------------------------------------
  // Blocks of 4 rows x 8 columns of C, accumulated over K in 8 vectors of i32 with vpmaddwd:
  // per group of 4 k, B's 8 columns (32 bytes of the VNNI layout) widen to two i16 vectors,
  // and A's 4 bytes of each row widen to i16 and repeat across the vector, so one vpmaddwd
  // multiplies 16 pairs and adds neighbours: lane 2c holds k0, k1 of column c, lane 2c + 1
  // k2, k3. The two halves of each column are added once, at the end. Exact: products of
  // 8-bit values and their pair sums fit i32, with no saturation (unlike vpmaddubsw, which
  // the block uses instead where its i16 pair sums cannot saturate: byte_pair_block).
  bool avx2_int8_tile(const TileMatmulNode* n) const {
    DType at = n->a.buffer->dtype;
    // Partial 8-column groups read B's padding columns (tir::vnni_columns), never stored.
    return target_.vector_bits >= 256 && (at == DType::U8 || at == DType::I8) && n->b.buffer->dtype != DType::BF16 &&
           n->b.row_stride % 32 == 0 && n->depth % 4 == 0;
  }

  // Whether the product may use vpmaddubsw (unsigned x signed bytes, adjacent pairs summed to
  // i16 with saturation) on the bytes as stored: one operand u8, the other s8 with every
  // |value| <= 64 (known for constants, tir::BufferNode::max_abs), so that a pair sum is at
  // most 2 * 255 * 64 = 32640 and never saturates — quantize_static(reduce_range=True)
  // weights. Returns the unsigned operand first, or {nullptr, nullptr}.
  std::pair<const TileOperand*, const TileOperand*> byte_pairs_exact(const TileMatmulNode* n) const {
    auto small_signed = [](const TileOperand& o) {
      return o.buffer->dtype == DType::I8 && o.buffer->max_abs >= 0 && o.buffer->max_abs <= 64;
    };
    if (n->a.buffer->dtype == DType::U8 && small_signed(n->b)) return {&n->a, &n->b};
    if (n->b.buffer->dtype == DType::U8 && small_signed(n->a)) return {&n->b, &n->a};
    return {nullptr, nullptr};
  }

  // As for AMX, each distinct product is a function of its own, called with the three
  // pointers: a model's many products of one shape (every window offset of a convolution, every
  // block of a layer) share its code, which keeps code generation short.
  void emit_avx2_int8_tile(const TileMatmulNode* n) {
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

  void avx2_int8_tile_body(const TileMatmulNode* n, bool byte_pairs, llvm::Value* c0, llvm::Value* a0, llvm::Value* b0) {
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
      for (int64_t j0 = 0; j0 < n->cols; j0 += kCols) {
        std::vector<llvm::Value*> sums = byte_pairs ? byte_pair_block(n, a0, b0, r0, rows, j0)
                                                    : word_pair_block(n, a0, b0, aw, widen_a, r0, rows, j0);
        for (int64_t r = 0; r < rows; ++r) {
          llvm::Value* sum = sums[size_t(r)];
          llvm::Value* ptr = b_.CreateInBoundsGEP(i32, c0, b_.getInt64((r0 + r) * n->c.row_stride + j0));
          int64_t width = std::min(kCols, n->cols - j0);
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
      }
    }
  }

  // Columns j0 .. j0 + 7 of rows r0 .. r0 + rows - 1 with vpmaddwd (any 8-bit operands):
  // for g in [0, depth / 4): acc[r][h] += pmaddwd(A[r0 + r, 4g .. 4g + 3], B[g][j0 + 4h .. + 3][0..3]);
  // returns each row's 8 sums.
  std::vector<llvm::Value*> word_pair_block(const TileMatmulNode* n, llvm::Value* a0, llvm::Value* b0, llvm::Value* aw,
                                            bool widen_a, int64_t r0, int64_t rows, int64_t j0) {
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
        half.push_back(b_.CreateAdd(b_.CreateShuffleVector(next[r * 2 + h], even), b_.CreateShuffleVector(next[r * 2 + h], odd)));
      sums.push_back(b_.CreateShuffleVector(half[0], half[1], concat));
    }
    return sums;
  }

  // The same block with vpmaddubsw where it is exact (byte_pairs_exact): per group of 4 k, B's
  // 32 bytes (8 columns x 4 k) as stored and each row's 4 bytes of A repeated 8 times give 16
  // pair sums in i16 (k0 + k1, k2 + k3 of each column), which vpmaddwd by 1 adds into the
  // column's i32 sum: no widening, half the multiplies, one accumulator per row.
  std::vector<llvm::Value*> byte_pair_block(const TileMatmulNode* n, llvm::Value* a0, llvm::Value* b0, int64_t r0,
                                            int64_t rows, int64_t j0) {
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
    for (int64_t r = 0; r < rows; ++r) {
      acc.push_back(b_.CreatePHI(v8i32, 2, "acc"));
      acc.back()->addIncoming(llvm::Constant::getNullValue(v8i32), kg.pre);
    }
    llvm::Value* b_at = b_.CreateAdd(b_.CreateMul(g, b_.getInt64(n->b.row_stride)), b_.getInt64(j0 * 4));
    llvm::Value* bv = b_.CreateAlignedLoad(v32i8, b_.CreateInBoundsGEP(i8, b0, b_at), llvm::Align(1));
    std::vector<llvm::Value*> next;
    for (int64_t r = 0; r < rows; ++r) {
      llvm::Value* a_at = b_.CreateAdd(b_.getInt64((r0 + r) * n->a.row_stride), b_.CreateMul(g, b_.getInt64(4)));
      llvm::Value* four = b_.CreateAlignedLoad(i32, b_.CreateInBoundsGEP(i8, a0, a_at), llvm::Align(1));
      llvm::Value* av = b_.CreateBitCast(b_.CreateVectorSplat(8, four), v32i8);
      llvm::Value* pairs = a_unsigned ? b_.CreateCall(pmaddubs, {av, bv}) : b_.CreateCall(pmaddubs, {bv, av});
      llvm::Value* quads = b_.CreateCall(pmadd, {b_.CreateBitCast(pairs, v16i16), ones});
      next.push_back(b_.CreateAdd(acc[size_t(r)], quads));
    }
    for (size_t i = 0; i < acc.size(); ++i) acc[i]->addIncoming(next[i], b_.GetInsertBlock());
    close_loop(kg, n->depth / 4);
    return next;
  }

  // Without AMX: the product's defining loops (tir/tile.h) over flat views of its buffers.
  void emit_tile_loops(const TileMatmulNode* n) {
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

  void emit_for(const ForNode* n) {
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

  // A parallel loop becomes an outlined function body(begin, end, closure) that runs a chunk
  // of the iterations; the kernel passes it to the runtime's kiln_parallel_for. The closure
  // holds every buffer pointer and loop variable in scope.
  void emit_parallel_for(const ForNode* n) {
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
      b_.CreateStore(b_.CreateIntToPtr(vars[i].second, ptr), b_.CreateConstInBoundsGEP1_64(ptr, closure, bufs.size() + i));
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
    entry_ = llvm::BasicBlock::Create(ctx_, "entry", fn_);
    auto* start = llvm::BasicBlock::Create(ctx_, "body", fn_);
    b_.SetInsertPoint(entry_);
    for (size_t i = 0; i < bufs.size(); ++i)
      bufs_[bufs[i].first] = b_.CreateLoad(ptr, b_.CreateConstInBoundsGEP1_64(ptr, fn_->getArg(2), i));
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
    auto callee = mod_.getOrInsertFunction("kiln_parallel_for", llvm::FunctionType::get(b_.getVoidTy(), {i64, ptr, ptr}, false));
    b_.CreateCall(callee, {extent, body_fn, closure});
  }

  void emit_loop(const ForNode* n, llvm::Value* lo, llvm::Value* hi) {
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

  void emit_allocate(const AllocateNode* n) {
    const Buffer& buf = n->buffer;
    int64_t bytes = shape_numel(buf->shape) * dtype_bytes(buf->dtype);
    llvm::Type* et = mem_type(buf->dtype);
    if (bytes <= kMaxStackBytes) {
      // Entry-block allocas are promoted to registers (scalars) and never grow the stack in loops.
      llvm::IRBuilder<> eb(entry_, entry_->begin());
      bufs_[buf.get()] = eb.CreateAlloca(et, eb.getInt64(std::max<int64_t>(1, shape_numel(buf->shape))), buf->name);
      emit(n->body);
      bufs_.erase(buf.get());
      return;
    }
    auto* ptr = llvm::PointerType::get(ctx_, 0);
    auto mal = mod_.getOrInsertFunction("malloc", llvm::FunctionType::get(ptr, {b_.getInt64Ty()}, false));
    auto fre = mod_.getOrInsertFunction("free", llvm::FunctionType::get(b_.getVoidTy(), {ptr}, false));
    auto* p = b_.CreateCall(mal, {b_.getInt64(bytes)}, buf->name);
    bufs_[buf.get()] = p;
    emit(n->body);
    b_.CreateCall(fre, {p});
    bufs_.erase(buf.get());
  }
};

}  // namespace

std::unique_ptr<llvm::Module> emit_module(llvm::LLVMContext& ctx, const std::string& module_name,
                                          const std::vector<PrimFunc>& funcs, const Target& target) {
  auto m = std::make_unique<llvm::Module>(module_name, ctx);
  Emitter em(*m, target);
  for (auto& f : funcs) em.emit(f);
  return m;
}

}  // namespace kiln::codegen
