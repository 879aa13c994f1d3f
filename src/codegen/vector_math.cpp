#include "codegen/vector_math.h"

#include <llvm/IR/Intrinsics.h>

namespace kiln::codegen {

namespace {

llvm::Value* splat(llvm::IRBuilder<>& b, llvm::Value* like, float v) { return llvm::ConstantFP::get(like->getType(), v); }

// c[0] * x^(n-1) + ... + c[n-1] by Horner's rule.
llvm::Value* horner(llvm::IRBuilder<>& b, llvm::Value* x, std::initializer_list<float> c) {
  auto it = c.begin();
  llvm::Value* p = splat(b, x, *it++);
  for (; it != c.end(); ++it) p = b.CreateFAdd(b.CreateFMul(p, x), splat(b, x, *it));
  return p;
}

llvm::Value* clamp(llvm::IRBuilder<>& b, llvm::Value* x, float lo, float hi) {
  llvm::Value* y = b.CreateSelect(b.CreateFCmpOLT(x, splat(b, x, lo)), splat(b, x, lo), x);
  return b.CreateSelect(b.CreateFCmpOGT(y, splat(b, x, hi)), splat(b, x, hi), y);
}

}  // namespace

llvm::Value* emit_exp_f32(llvm::IRBuilder<>& b, llvm::Value* x) {
  llvm::Type* ft = x->getType();
  llvm::Type* it = llvm::VectorType::getInteger(llvm::cast<llvm::VectorType>(ft));
  llvm::Value* xc = clamp(b, x, -104.0f, 88.8f);
  llvm::Value* n = b.CreateUnaryIntrinsic(llvm::Intrinsic::rint, b.CreateFMul(xc, splat(b, x, 1.44269504088896341f)));
  // ln 2 in two parts (Cody-Waite) so that n * ln2 is exact enough.
  llvm::Value* r = b.CreateFSub(xc, b.CreateFMul(n, splat(b, x, 0.693359375f)));
  r = b.CreateFSub(r, b.CreateFMul(n, splat(b, x, -2.12194440e-4f)));
  llvm::Value* p = horner(b, r, {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f,
                                 1.6666665459e-1f, 5.0000001201e-1f});
  p = b.CreateFAdd(b.CreateFAdd(b.CreateFMul(p, b.CreateFMul(r, r)), r), splat(b, x, 1.0f));
  llvm::Value* ni = b.CreateFPToSI(n, it);
  llvm::Value* n1 = b.CreateAShr(ni, llvm::ConstantInt::get(it, 1));
  llvm::Value* n2 = b.CreateSub(ni, n1);
  auto pow2 = [&](llvm::Value* e) {
    return b.CreateBitCast(b.CreateShl(b.CreateAdd(e, llvm::ConstantInt::get(it, 127)), llvm::ConstantInt::get(it, 23)), ft);
  };
  llvm::Value* y = b.CreateFMul(b.CreateFMul(p, pow2(n1)), pow2(n2));
  y = b.CreateSelect(b.CreateFCmpOGT(x, splat(b, x, 88.7228394f)), llvm::ConstantFP::getInfinity(ft), y);
  y = b.CreateSelect(b.CreateFCmpOLT(x, splat(b, x, -103.972084f)), llvm::ConstantFP::get(ft, 0.0), y);
  return b.CreateSelect(b.CreateFCmpUNO(x, x), x, y);
}

llvm::Value* emit_erf_f32(llvm::IRBuilder<>& b, llvm::Value* x) {
  llvm::Value* xc = clamp(b, x, -4.0f, 4.0f);
  llvm::Value* x2 = b.CreateFMul(xc, xc);
  llvm::Value* p = horner(b, x2, {-2.72614225801306e-10f, 2.77068142495902e-08f, -2.10102402082508e-06f,
                                  -5.69250639462346e-05f, -7.34990630326855e-04f, -2.95459980854025e-03f,
                                  -1.60960333262415e-02f});
  llvm::Value* q = horner(b, x2, {-1.45660718464996e-05f, -2.13374055278905e-04f, -1.68282697438203e-03f,
                                  -7.37332916720468e-03f, -1.42647390514189e-02f});
  llvm::Value* y = b.CreateFDiv(b.CreateFMul(xc, p), q);
  return b.CreateSelect(b.CreateFCmpUNO(x, x), x, y);
}

}  // namespace kiln::codegen
