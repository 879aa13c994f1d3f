#include "tir/partition.h"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include "tir/affine.h"
#include "tir/simplify.h"

namespace kiln::tir {

namespace {

struct Interval {
  int64_t lo, hi;  // inclusive
};
using Ranges = std::unordered_map<const VarNode*, Interval>;

// Bounds of `e` when it is affine in loop variables of known range (c + sum k_i v_i).
std::optional<Interval> bounds(const Expr& e, const Ranges& ranges) {
  std::vector<const VarNode*> vars;
  bool affine_leaves = true;
  visit(e, [&](const Expr& x) {
    if (x.kind() == ExprKind::Load || x.kind() == ExprKind::Reduce) affine_leaves = false;
    if (x.kind() != ExprKind::Var) return;
    auto v = x.as<VarNode>();
    if (std::find(vars.begin(), vars.end(), v) == vars.end()) vars.push_back(v);
  });
  if (!affine_leaves) return std::nullopt;
  VarMap zero;
  for (auto v : vars) zero[v] = make_int(0);
  int64_t c;
  if (!is_const_int(simplify(substitute(e, zero)), &c)) return std::nullopt;
  Interval out{c, c};
  for (auto v : vars) {
    auto r = ranges.find(v);
    std::optional<int64_t> k = coefficient(e, v);
    if (r == ranges.end() || !k) return std::nullopt;
    out.lo += *k > 0 ? *k * r->second.lo : *k * r->second.hi;
    out.hi += *k > 0 ? *k * r->second.hi : *k * r->second.lo;
  }
  return out;
}

// Integer comparisons and min/max: the nodes whose outcome a range can decide.
bool is_test(const Expr& e) {
  if (e.kind() != ExprKind::Binary) return false;
  auto n = e.as<BinaryNode>();
  if (n->a.dtype() != DType::I64 || n->b.dtype() != DType::I64) return false;
  switch (n->op) {
    case BinOp::LT: case BinOp::LE: case BinOp::GT: case BinOp::GE: case BinOp::Min: case BinOp::Max: return true;
    default: return false;
  }
}

enum Outcome { kUndecided = 0, kFirst = 1, kSecond = 2 };  // comparison true / false; min or max = a / b

Outcome decide(const BinaryNode* n, const Ranges& ranges) {
  std::optional<Interval> d = bounds(n->a - n->b, ranges);
  if (!d) return kUndecided;
  // Both hold when a == b over the whole range: prefer the non-constant operand, so that a
  // clamp max(0, x) decides to x on both sides of x = 0 and those ranges stay merged.
  auto pick = [&](bool first, bool second) {
    if (first && second) return is_const_int(n->a) ? kSecond : kFirst;
    return first ? kFirst : second ? kSecond : kUndecided;
  };
  switch (n->op) {
    case BinOp::LT: return pick(d->hi < 0, d->lo >= 0);
    case BinOp::LE: return pick(d->hi <= 0, d->lo > 0);
    case BinOp::GT: return pick(d->lo > 0, d->hi <= 0);
    case BinOp::GE: return pick(d->lo >= 0, d->hi < 0);
    case BinOp::Min: return pick(d->hi <= 0, d->lo >= 0);
    case BinOp::Max: return pick(d->lo >= 0, d->hi <= 0);
    default: return kUndecided;
  }
}

// `body` with every test the ranges decide replaced by its outcome, simplified; `trace`
// records the outcomes in visiting order, so equal traces mean equal bodies.
Stmt decided(const Stmt& body, const Ranges& ranges, std::vector<Outcome>* trace) {
  return simplify(rewrite(body, [&](const Expr& e) -> Expr {
    if (!is_test(e)) return e;
    auto n = e.as<BinaryNode>();
    Outcome o = decide(n, ranges);
    if (trace) trace->push_back(o);
    if (o == kUndecided) return e;
    if (n->op == BinOp::Min || n->op == BinOp::Max) return o == kFirst ? n->a : n->b;
    return make_int(o == kFirst, DType::Bool);
  }));
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Where the outcome of a test of `body` may change along `v` in (lo, hi): around each
// solution of (a - b) = 0 at either end of the rest's range.
std::vector<int64_t> candidate_cuts(const Stmt& body, const VarNode* v, int64_t lo, int64_t hi, Ranges& ranges) {
  Interval saved = ranges.at(v);
  ranges[v] = {0, 0};
  std::vector<int64_t> cuts;
  auto add_cuts = [&](const Expr& e) {
    if (!is_test(e)) return;
    auto n = e.as<BinaryNode>();
    Expr d = n->a - n->b;
    std::optional<int64_t> k = coefficient(d, v);
    if (!k || *k == 0) return;
    std::optional<Interval> rest = bounds(d, ranges);
    if (!rest) return;
    for (int64_t r : {rest->lo, rest->hi})
      for (int64_t delta = -1; delta <= 2; ++delta) {
        int64_t t = floor_div(-r, *k) + delta;
        if (t > lo && t < hi) cuts.push_back(t);
      }
  };
  rewrite(body, [&](const Expr& e) {
    add_cuts(e);
    return e;
  });
  ranges[v] = saved;
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  return cuts;
}

constexpr size_t kMaxCuts = 32;
// Each range gets a copy of the body: a loop whose copies would exceed this many expression
// nodes in all stays whole (nested partitions multiply).
constexpr size_t kMaxCopiedNodes = 20000;

size_t node_count(const Stmt& s) {
  size_t n = 0;
  rewrite(s, [&](const Expr& e) {
    ++n;
    return e;
  });
  return n;
}

Stmt partition(const Stmt& s, Ranges& ranges, int max_pieces);

// The loop `n` over [lo, lo + ext) as a sequence of loops over the ranges where its tests
// have one outcome each, or null when it stays one loop.
Stmt partition_loop(const ForNode* n, int64_t lo, int64_t ext, Ranges& ranges, int max_pieces) {
  const VarNode* v = n->var.as<VarNode>();
  std::vector<int64_t> cuts = candidate_cuts(n->body, v, lo, lo + ext, ranges);
  if (cuts.empty() || cuts.size() > kMaxCuts) return nullptr;
  cuts.insert(cuts.begin(), lo);
  cuts.push_back(lo + ext);
  Interval saved = ranges.at(v);
  // Neighbouring ranges with equal traces have equal bodies (and the body holds over their
  // union: bounds decided alike on both sides stay decided on the hull), so they merge and
  // keep the body already made.
  struct Piece {
    int64_t lo, hi;  // [lo, hi)
    std::vector<Outcome> trace;
    Stmt body;
  };
  std::vector<Piece> pieces;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    Piece p{cuts[i], cuts[i + 1], {}, nullptr};
    ranges[v] = {p.lo, p.hi - 1};
    p.body = decided(n->body, ranges, &p.trace);
    if (!pieces.empty() && pieces.back().trace == p.trace) pieces.back().hi = p.hi;
    else pieces.push_back(std::move(p));
  }
  Stmt out;
  if (pieces.size() > 1 && pieces.size() <= size_t(max_pieces) && pieces.size() * node_count(n->body) <= kMaxCopiedNodes) {
    std::vector<Stmt> loops;
    for (auto& p : pieces) {
      ranges[v] = {p.lo, p.hi - 1};
      Stmt body = partition(p.body, ranges, max_pieces);
      loops.push_back(make_for(n->var, make_int(p.lo), make_int(p.hi - p.lo), n->for_kind, body));
    }
    out = make_seq(loops);
  }
  ranges[v] = saved;
  return out;
}

Stmt partition(const Stmt& s, Ranges& ranges, int max_pieces) {
  if (!s) return s;
  switch (s->kind) {
    case StmtKind::For: {
      auto n = as<ForNode>(s);
      int64_t lo, ext;
      if (n->for_kind == ForKind::Serial && is_const_int(n->min, &lo) && is_const_int(n->extent, &ext) && ext >= 2)
        if (Stmt split = partition_loop(n, lo, ext, ranges, max_pieces)) return split;
      Stmt body = partition(n->body, ranges, max_pieces);
      return body == n->body ? s : make_for(n->var, n->min, n->extent, n->for_kind, body);
    }
    case StmtKind::Seq: {
      std::vector<Stmt> out;
      bool changed = false;
      for (auto& c : as<SeqNode>(s)->stmts) {
        out.push_back(partition(c, ranges, max_pieces));
        changed |= out.back() != c;
      }
      return changed ? make_seq(out) : s;
    }
    case StmtKind::IfThenElse: {
      auto n = as<IfThenElseNode>(s);
      Stmt t = partition(n->then_case, ranges, max_pieces), e = partition(n->else_case, ranges, max_pieces);
      return t == n->then_case && e == n->else_case ? s : make_if(n->cond, t, e);
    }
    case StmtKind::Allocate: {
      auto n = as<AllocateNode>(s);
      Stmt body = partition(n->body, ranges, max_pieces);
      return body == n->body ? s : make_allocate(n->buffer, body);
    }
    default: return s;
  }
}

}  // namespace

Stmt partition_loops(const Stmt& s, int max_pieces) {
  // Every loop variable's range (the hull, where one variable names several loops): tests
  // may read loops inside the one being split.
  Ranges ranges;
  visit(s, [&](const Stmt& st) {
    if (st->kind != StmtKind::For) return;
    auto n = as<ForNode>(st);
    int64_t lo, ext;
    if (!is_const_int(n->min, &lo) || !is_const_int(n->extent, &ext) || ext <= 0) return;
    auto [it, fresh] = ranges.try_emplace(n->var.as<VarNode>(), Interval{lo, lo + ext - 1});
    if (!fresh) it->second = {std::min(it->second.lo, lo), std::max(it->second.hi, lo + ext - 1)};
  });
  return simplify(partition(s, ranges, max_pieces));
}

}  // namespace kiln::tir
