// Algebraic simplification of loop IR: constant folding and the identities that index
// arithmetic produces (x+0, x*1, x*0 for integers, select on a constant, casts of constants).
#pragma once
#include "tir/stmt.h"

namespace kiln::tir {

Expr simplify(const Expr& e);
Stmt simplify(const Stmt& s);  // also drops loops of extent 0 and unwraps loops of extent 1

}  // namespace kiln::tir
