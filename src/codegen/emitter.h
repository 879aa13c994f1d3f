// The LLVM IR emitter behind emit_module (codegen/llvm_emit.h): one Emitter per module turns
// each PrimFunc's loop IR into a function. Internal to src/codegen: llvm_emit.cpp has the
// scalar, vector and loop code, tile_emit.cpp the tile products (AMX, and 8-bit products on AVX2).
#pragma once
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "codegen/target.h"
#include "tir/stmt.h"
#include "tir/tile.h"

namespace kiln::codegen {

// The emitter's code reads loop IR nodes throughout; this header is included only by the
// emitter's own files.
using namespace kiln::tir;

class Emitter {
 public:
  Emitter(llvm::Module& m, const Target& target) : mod_(m), ctx_(m.getContext()), b_(ctx_), target_(target) {
    // Multiply-adds may fuse into FMA instructions (one rounding instead of two).
    llvm::FastMathFlags fmf;
    fmf.setAllowContract(true);
    b_.setFastMathFlags(fmf);
  }

  void emit(const PrimFunc& f);

 private:
  llvm::Module& mod_;
  llvm::LLVMContext& ctx_;
  llvm::IRBuilder<> b_;
  const Target& target_;  // which tile products become AMX instructions
  llvm::Function* fn_ = nullptr;
  llvm::BasicBlock* entry_ = nullptr;
  std::unordered_map<const BufferNode*, llvm::Value*> bufs_;
  // Every pointer that bufs_ ever held for the kernel being emitted, and the kernel's functions
  // (itself and its outlined parallel bodies): what annotate_aliasing works on.
  std::unordered_map<const llvm::Value*, const BufferNode*> buffer_of_;
  std::vector<llvm::Function*> kernel_fns_;
  std::unordered_map<const VarNode*, llvm::Value*> vars_;
  int outlined_ = 0;
  // Set while emitting the body of a vectorized loop: its variable and lane count.
  const VarNode* vec_var_ = nullptr;
  int lanes_ = 0;
  // The AMX function of each distinct tile product, shared by every kernel of the module.
  std::unordered_map<std::string, llvm::Function*> tile_fns_;

  // Type of a value of `t` in registers. f16/bf16 are computed in f32.
  llvm::Type* value_type(DType t);
  // Type of an element of `t` in memory.
  llvm::Type* mem_type(DType t);

  llvm::Value* element_ptr(const Buffer& buf, const std::vector<Expr>& idx_in);

  // Scalar or vector (like `like`) of the integer type `bits` wide holding `value`.
  llvm::Value* int_like(llvm::Value* like, unsigned bits, uint64_t value);
  // `v`'s type with its (element) type replaced by `t`.
  llvm::Type* shaped_like(llvm::Value* v, llvm::Type* t);
  // Register value -> memory representation and back; scalars or vectors.
  llvm::Value* to_memory(DType t, llvm::Value* v);
  llvm::Value* from_memory(DType t, llvm::Value* v);
  // Rounds an f32 register value to the precision of f16/bf16 (a Cast to those types).
  llvm::Value* round_to(DType t, llvm::Value* v);

  llvm::Value* intrinsic(llvm::Intrinsic::ID id, std::vector<llvm::Value*> args);
  llvm::Value* libm(const char* name32, llvm::Value* a, llvm::Value* b = nullptr);

  // ---- vectorized loops -------------------------------------------------------------
  // Makes `a` and `b` the same shape: a lane-invariant scalar is broadcast to the other's lanes.
  std::pair<llvm::Value*, llvm::Value*> unify(llvm::Value* a, llvm::Value* b);
  llvm::Value* splat_like(llvm::Value* like, llvm::Value* v);

  // Coefficient of j in an index expression when the vectorized variable runs as
  // v = period * j + r for a fixed r (period 1: its own coefficient); false when not affine.
  // floordiv / floormod by a divisor of their operand's coefficient are affine too: with
  // period 2, x / 2 and x % 2 of an interleave.
  bool lane_stride(const Expr& e, int64_t* c, int64_t period = 1);
  bool uses_lane(const Expr& e);
  // The same for an element of `buf`, in elements; `*affine` false when some index is not.
  int64_t flat_lane_stride(const Buffer& buf, const std::vector<Expr>& idx_in, bool* affine, int64_t period = 1);
  // Pointer to lane 0's element: the indices with the vectorized variable at its first value.
  llvm::Value* lane0_ptr(const Buffer& buf, const std::vector<Expr>& idx);
  llvm::VectorType* vec_of(llvm::Type* t);

  llvm::Value* vector_load(const LoadNode* n);

  // Lanes `stride` elements apart (a strided window's input, a phase of an interleaved row):
  // one contiguous load of the span they cover, then a shuffle picking every stride-th
  // element, rather than a gather. The load is masked to the span, so it reads nothing
  // beyond the last lane's element.
  static constexpr int64_t kMaxShuffledStride = 4;
  llvm::Value* strided_load(const LoadNode* n, llvm::Type* et, int64_t stride);
  // Lanes that alternate between two or four contiguous runs (lane l from run l % runs: a 2x
  // interleave of phase planes, a 2x nearest upsample, the VNNI packing of 8-bit operands,
  // which interleaves 4 rows): one load per run and shuffles instead of a gather. Null when
  // the load is not of that form.
  llvm::Value* interleaved_load(const LoadNode* n, llvm::Type* et);

  void vector_store(const StoreNode* n);

  // Whether a loop body can be emitted as vector code: stores and the types the vector path
  // handles directly (f16 and bools convert through scalar code instead; bf16 converts with
  // integer shifts, as cheap in vectors as in scalars).
  bool vectorizable(const Stmt& s);

  llvm::Value* expr(const Expr& e);

  llvm::Value* cast(const CastNode* n);

  llvm::Value* is_nan(llvm::Value* v);
  static bool f32_vector(llvm::Value* v);

  llvm::Value* binary(const BinaryNode* n);

  llvm::Value* unary(const UnaryNode* n);

  void emit(const Stmt& s);

  // ---- tile products -------------------------------------------------------------------
  bool has_amx_for(DType a) const;

  // AMX: each distinct tile product (shape, types, strides) is a function of its own, called
  // with the three tile pointers. A function's tile registers have one shape each (one
  // ldtilecfg), so products of different shapes in one function would compete for the eight
  // registers; apart, each gets all eight.
  void emit_amx_tile(const TileMatmulNode* n);

  // Name of the function computing tile product `n`: what its code depends on.
  static std::string tile_key(const std::string& prefix, const TileMatmulNode* n);
  void call_tile(llvm::Function* fn, const TileMatmulNode* n);

  // void tile(ptr c, ptr a, ptr b): C split into up to 2 x 2 tiles of 16 x 16, each loaded (or
  // zeroed) into a tile register; per 64 bytes of A's rows one load of each A and B tile and one
  // tdpbf16ps / tdpbusd / tdpbssd per C tile; C stored back. The K steps are emitted in
  // sequence (no loop carries a tile value); LLVM's tile-configuration passes emit ldtilecfg.
  llvm::Function* amx_tile_function(const std::string& name, const TileMatmulNode* n);

  // A loop over i = 0 .. count - 1 built by hand: open_loop starts its body (phis of the
  // caller's own take their first value from `pre`), close_loop branches back and continues
  // after it.
  struct CountedLoop {
    llvm::PHINode* i;
    llvm::BasicBlock *pre, *head, *exit;
  };
  CountedLoop open_loop(const char* name);
  void close_loop(const CountedLoop& l, int64_t count);

  // ---- 8-bit tile products on AVX2 ---------------------------------------------------------
  // Blocks of 4 rows x 8 columns of C, accumulated over K in 8 vectors of i32 with vpmaddwd:
  // per group of 4 k, B's 8 columns (32 bytes of the VNNI layout) widen to two i16 vectors,
  // and A's 4 bytes of each row widen to i16 and repeat across the vector, so one vpmaddwd
  // multiplies 16 pairs and adds neighbours: lane 2c holds k0, k1 of column c, lane 2c + 1
  // k2, k3. The two halves of each column are added once, at the end. Exact: products of
  // 8-bit values and their pair sums fit i32, with no saturation (unlike vpmaddubsw, which
  // the block uses instead where its i16 pair sums cannot saturate: byte_pair_block).
  bool avx2_int8_tile(const TileMatmulNode* n) const;

  // Whether the product may use vpmaddubsw (unsigned x signed bytes, adjacent pairs summed to
  // i16 with saturation) on the bytes as stored: one operand u8, the other s8 with every
  // |value| <= 64 (known for constants, tir::BufferNode::max_abs), so that a pair sum is at
  // most 2 * 255 * 64 = 32640 and never saturates — quantize_static(reduce_range=True)
  // weights. Returns the unsigned operand first, or {nullptr, nullptr}.
  std::pair<const TileOperand*, const TileOperand*> byte_pairs_exact(const TileMatmulNode* n) const;

  // As for AMX, each distinct product is a function of its own, called with the three
  // pointers: a model's many products of one shape (every window offset of a convolution, every
  // block of a layer) share its code, which keeps code generation short.
  void emit_avx2_int8_tile(const TileMatmulNode* n);

  void avx2_int8_tile_body(const TileMatmulNode* n, bool byte_pairs, llvm::Value* c0, llvm::Value* a0, llvm::Value* b0);

  // Columns j0 .. j0 + 7 of rows r0 .. r0 + rows - 1 with vpmaddwd (any 8-bit operands):
  // for g in [0, depth / 4): acc[r][h] += pmaddwd(A[r0 + r, 4g .. 4g + 3], B[g][j0 + 4h .. + 3][0..3]);
  // returns each row's 8 sums.
  std::vector<llvm::Value*> word_pair_block(const TileMatmulNode* n, llvm::Value* a0, llvm::Value* b0, llvm::Value* aw,
                                            bool widen_a, int64_t r0, int64_t rows, int64_t j0);

  // The same block with vpmaddubsw where it is exact (byte_pairs_exact): per group of 4 k, B's
  // 32 bytes (8 columns x 4 k) as stored and each row's 4 bytes of A repeated 8 times give 16
  // pair sums in i16 (k0 + k1, k2 + k3 of each column), which vpmaddwd by 1 adds into the
  // column's i32 sum: no widening, half the multiplies, one accumulator per row and group.
  // `groups` (1 or 2) groups of 8 columns from j0 share each row's broadcast of A: 16 columns
  // give 8 independent accumulators, so the multiplies rather than the loop's other
  // instructions bound it. Returns rows x groups vectors, row-major.
  std::vector<llvm::Value*> byte_pair_block(const TileMatmulNode* n, llvm::Value* a0, llvm::Value* b0, int64_t r0,
                                            int64_t rows, int64_t j0, int64_t groups);

  // Without AMX: the product's defining loops (tir/tile.h) over flat views of its buffers.
  void emit_tile_loops(const TileMatmulNode* n);

  void emit_for(const ForNode* n);

  // A parallel loop becomes an outlined function body(begin, end, closure) that runs a chunk
  // of the iterations; the kernel passes it to the runtime's kiln_parallel_for. The closure
  // holds every buffer pointer and loop variable in scope.
  void emit_parallel_for(const ForNode* n);

  void emit_loop(const ForNode* n, llvm::Value* lo, llvm::Value* hi);

  void emit_allocate(const AllocateNode* n);

  // Binds buffer `buf` to pointer `p` in bufs_ and remembers which buffer `p` is.
  void bind(const BufferNode* buf, llvm::Value* p);

  // Tells LLVM that accesses to different buffers of one kernel never overlap: each buffer gets
  // an alias scope, and every load, store and memory intrinsic whose address derives from one
  // buffer's pointer is in that buffer's scope and noalias with the others'. Without it, every
  // store (to a u8 output, say) may clobber every loaded parameter, so loop-invariant loads of
  // scales and zero points stay in the innermost loop. Sound because the runtime never passes
  // overlapping memory for two parameters of which one is written (runtime/compile.cpp:
  // outputs are fresh values; intermediates alive in the same step never share arena space).
  void annotate_aliasing(const std::string& kernel);
};

}  // namespace kiln::codegen
