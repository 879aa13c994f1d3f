#include "tir/schedule_steps.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "kiln/error.h"
#include "tir/affine.h"
#include "tir/simplify.h"

namespace kiln::tir {

namespace {

constexpr int64_t kMaxUnroll = 64, kMaxLanes = 64;

const char* kind_name(ScheduleStep::Kind k) {
  switch (k) {
    case ScheduleStep::Kind::Split: return "split";
    case ScheduleStep::Kind::Reorder: return "reorder";
    case ScheduleStep::Kind::Fuse: return "fuse";
    case ScheduleStep::Kind::Vectorize: return "vectorize";
    case ScheduleStep::Kind::Unroll: return "unroll";
    case ScheduleStep::Kind::Parallel: return "parallel";
  }
  return "?";
}

// Why iterations of `loop` are not independent, or "" when they are: every store to memory
// that outlives an iteration writes, in exactly one dimension, an affine function of the loop
// variable with `unit` (when asked) or any non-zero stride, and reads of a stored buffer in
// the body read the element the same iteration writes.
std::string dependence(const ForNode* loop, bool unit_last) {
  const VarNode* v = loop->var.as<VarNode>();
  std::set<const BufferNode*> local;
  std::map<const BufferNode*, std::vector<Expr>> written;
  std::string why;
  visit(loop->body, [&](const Stmt& s) {
    if (s->kind == StmtKind::Allocate) local.insert(as<AllocateNode>(s)->buffer.get());
    // A tile product writes a block through a flat offset this analysis does not read.
    if (s->kind == StmtKind::TileMatmul && why.empty())
      why = "it holds a tile product (into " + as<TileMatmulNode>(s)->c.buffer->name + ")";
  });
  if (!why.empty()) return why;
  visit(loop->body, [&](const Stmt& s) {
    if (s->kind != StmtKind::Store || !why.empty()) return;
    auto st = as<StoreNode>(s);
    if (local.count(st->buffer.get())) return;
    std::vector<Expr> idx = merge_index_pairs(st->indices, st->buffer->shape);
    int dims = 0;
    for (size_t d = 0; d < idx.size(); ++d) {
      if (!uses_var(idx[d], v)) continue;
      ++dims;
      std::optional<int64_t> c = coefficient(idx[d], v);
      if (!c || *c == 0 || (unit_last && (*c != 1 || d + 1 != idx.size()))) dims = 99;
    }
    if (dims == 0) why = "every iteration writes the same element of " + st->buffer->name;
    else if (dims != 1) why = "its stores to " + st->buffer->name + " are not one " + std::string(unit_last ? "unit-stride " : "") + "element per iteration";
    written[st->buffer.get()] = st->indices;
  });
  if (!why.empty()) return why;
  visit(loop->body, [&](const Stmt& s) {
    auto check = [&](const Expr& e) {
      visit(e, [&](const Expr& x) {
        if (x.kind() != ExprKind::Load || !why.empty()) return;
        auto l = x.as<LoadNode>();
        auto w = written.find(l->buffer.get());
        if (w == written.end()) return;
        bool same = w->second.size() == l->indices.size();
        for (size_t d = 0; same && d < l->indices.size(); ++d) same = l->indices[d].equals(w->second[d]);
        if (!same) why = "it reads elements of " + l->buffer->name + " that other iterations write";
      });
    };
    if (s->kind == StmtKind::Store) {
      check(as<StoreNode>(s)->value);
      for (auto& i : as<StoreNode>(s)->indices) check(i);
    }
    if (s->kind == StmtKind::IfThenElse) check(as<IfThenElseNode>(s)->cond);
  });
  return why;
}

bool contains_loop(const Stmt& s, ForKind* kind = nullptr) {
  bool found = false;
  visit(s, [&](const Stmt& x) {
    if (x->kind != StmtKind::For) return;
    if (!kind || as<ForNode>(x)->for_kind == *kind) found = true;
  });
  return found;
}

struct Applier {
  const ScheduleStep& step;
  int applied = 0;

  [[noreturn]] void reject(const std::string& loop, const std::string& why) const {
    fail("schedule step '", to_string(step), "': loop ", loop, ": ", why);
  }

  int64_t const_extent(const ForNode* n, int64_t* min = nullptr) const {
    int64_t ext, mn;
    if (!is_const_int(n->extent, &ext)) reject(n->var.name(), "its extent is not a constant");
    if (min && !is_const_int(n->min, &mn)) reject(n->var.name(), "its start is not a constant");
    if (min) *min = mn;
    return ext;
  }

  // Rebuilds `s` with `f` applied to every loop with one of `names` (the outermost match on
  // each path; the result is not searched again).
  Stmt each(const Stmt& s, const std::set<std::string>& names, bool in_parallel,
            const std::function<Stmt(const ForNode*, bool)>& f) {
    if (!s) return s;
    switch (s->kind) {
      case StmtKind::For: {
        auto n = as<ForNode>(s);
        if (names.count(n->var.name())) {
          ++applied;
          return f(n, in_parallel);
        }
        Stmt body = each(n->body, names, in_parallel || n->for_kind == ForKind::Parallel, f);
        return body == n->body ? s : make_for(n->var, n->min, n->extent, n->for_kind, body);
      }
      case StmtKind::Seq: {
        std::vector<Stmt> v;
        for (auto& c : as<SeqNode>(s)->stmts) v.push_back(each(c, names, in_parallel, f));
        return make_seq(v);
      }
      case StmtKind::IfThenElse: {
        auto n = as<IfThenElseNode>(s);
        return make_if(n->cond, each(n->then_case, names, in_parallel, f), each(n->else_case, names, in_parallel, f));
      }
      case StmtKind::Allocate: {
        auto n = as<AllocateNode>(s);
        return make_allocate(n->buffer, each(n->body, names, in_parallel, f));
      }
      case StmtKind::Store: case StmtKind::TileMatmul: return s;
    }
    return s;
  }

  Stmt split(const ForNode* n) {
    int64_t f = step.factor, mn;
    int64_t ext = const_extent(n, &mn);
    if (f < 1) reject(n->var.name(), "the factor must be at least 1");
    std::string base = n->var.name();
    Var outer(base + "_o"), inner(base + "_i"), tail(base + "_t");
    int64_t main = ext / f * f;
    std::vector<Stmt> parts;
    if (main > 0) {
      Expr at = make_int(mn) + Expr(outer) * make_int(f) + inner;
      Stmt body = simplify(substitute(n->body, {{n->var.as<VarNode>(), at}}));
      parts.push_back(make_for(outer, make_int(0), make_int(main / f), n->for_kind,
                               make_for(inner, make_int(0), make_int(f), ForKind::Serial, body)));
    }
    if (main < ext)
      parts.push_back(make_for(tail, make_int(mn + main), make_int(ext - main), ForKind::Serial,
                               substitute(n->body, {{n->var.as<VarNode>(), Expr(tail)}})));
    return make_seq(parts);
  }

  Stmt fuse(const ForNode* a) {
    const std::string& inner_name = step.loops[1];
    if (!a->body || a->body->kind != StmtKind::For || as<ForNode>(a->body)->var.name() != inner_name)
      reject(a->var.name(), "loop " + inner_name + " is not directly inside it");
    auto b = as<ForNode>(a->body);
    int64_t amin, bmin, ea = const_extent(a, &amin), eb = const_extent(b, &bmin);
    Var f(a->var.name() + "_" + b->var.name());
    VarMap m{{a->var.as<VarNode>(), make_int(amin) + floordiv(Expr(f), make_int(eb))},
             {b->var.as<VarNode>(), make_int(bmin) + floormod(Expr(f), make_int(eb))}};
    return make_for(f, make_int(0), make_int(ea * eb), a->for_kind, simplify(substitute(b->body, m)));
  }

  Stmt reorder(const ForNode* top) {
    std::set<std::string> names(step.loops.begin(), step.loops.end());
    if (names.size() != step.loops.size()) reject(top->var.name(), "a loop is named twice");
    std::vector<const ForNode*> chain{top};
    while (chain.size() < names.size()) {
      const Stmt& b = chain.back()->body;
      if (!b || b->kind != StmtKind::For)
        reject(chain.back()->var.name(), "the loops to reorder must be directly nested (a perfect nest)");
      chain.push_back(as<ForNode>(b));
    }
    std::map<std::string, const ForNode*> by_name;
    for (auto* c : chain) {
      if (!names.count(c->var.name())) reject(c->var.name(), "it lies between the loops to reorder");
      by_name[c->var.name()] = c;
    }
    for (auto* c : chain)
      for (auto* d : chain)
        if (uses_var(c->min, d->var.as<VarNode>()) || uses_var(c->extent, d->var.as<VarNode>()))
          reject(c->var.name(), "its bounds depend on loop " + d->var.name());
    Stmt body = chain.back()->body;
    for (auto it = step.loops.rbegin(); it != step.loops.rend(); ++it) {
      const ForNode* c = by_name.at(*it);
      body = make_for(c->var, c->min, c->extent, c->for_kind, body);
    }
    return body;
  }

  Stmt set_kind(const ForNode* n, bool in_parallel) {
    const std::string& name = n->var.name();
    ForKind kind = ForKind::Serial;
    switch (step.kind) {
      case ScheduleStep::Kind::Unroll: {
        int64_t ext = const_extent(n);
        if (ext > kMaxUnroll) reject(name, "extent " + std::to_string(ext) + " is more than " + std::to_string(kMaxUnroll) + " to unroll");
        kind = ForKind::Unrolled;
        break;
      }
      case ScheduleStep::Kind::Vectorize: {
        int64_t ext = const_extent(n);
        if (ext < 2 || ext > kMaxLanes) reject(name, "extent " + std::to_string(ext) + " is not 2.." + std::to_string(kMaxLanes) + " lanes");
        if (contains_loop(n->body)) reject(name, "it is not an innermost loop");
        if (std::string why = dependence(n, true); !why.empty()) reject(name, why);
        kind = ForKind::Vectorized;
        break;
      }
      case ScheduleStep::Kind::Parallel: {
        ForKind par = ForKind::Parallel;
        if (in_parallel) reject(name, "it is inside a parallel loop");
        if (contains_loop(n->body, &par)) reject(name, "it contains a parallel loop");
        if (std::string why = dependence(n, false); !why.empty()) reject(name, why);
        kind = ForKind::Parallel;
        break;
      }
      default: break;
    }
    return make_for(n->var, n->min, n->extent, kind, n->body);
  }

  Stmt apply(const Stmt& body) {
    // Reorder starts from whichever of its loops is outermost; the others from their loop.
    std::set<std::string> names{step.loops.front()};
    if (step.kind == ScheduleStep::Kind::Reorder) names.insert(step.loops.begin(), step.loops.end());
    Stmt out = each(body, names, false, [&](const ForNode* n, bool in_parallel) -> Stmt {
      switch (step.kind) {
        case ScheduleStep::Kind::Split: return split(n);
        case ScheduleStep::Kind::Fuse: return fuse(n);
        case ScheduleStep::Kind::Reorder: return reorder(n);
        default: return set_kind(n, in_parallel);
      }
    });
    if (applied == 0) fail("schedule step '", to_string(step), "': no loop named ", step.loops.front());
    return out;
  }
};

}  // namespace

namespace {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

ScheduleStep parse_step(const std::string& text) {
  size_t open = text.find('('), close = text.rfind(')');
  if (open == std::string::npos || close != text.size() - 1)
    fail("schedule: '", text, "' is not a step like split(x, 8)");
  std::string name = trim(text.substr(0, open));
  std::vector<std::string> args;
  std::stringstream ss(text.substr(open + 1, close - open - 1));
  for (std::string a; std::getline(ss, a, ',');) args.push_back(trim(a));
  ScheduleStep step;
  const std::pair<const char*, ScheduleStep::Kind> kinds[] = {
      {"split", ScheduleStep::Kind::Split},         {"reorder", ScheduleStep::Kind::Reorder},
      {"fuse", ScheduleStep::Kind::Fuse},           {"vectorize", ScheduleStep::Kind::Vectorize},
      {"unroll", ScheduleStep::Kind::Unroll},       {"parallel", ScheduleStep::Kind::Parallel}};
  auto it = std::find_if(std::begin(kinds), std::end(kinds), [&](auto& k) { return name == k.first; });
  if (it == std::end(kinds))
    fail("schedule: unknown step '", name, "' (split, reorder, fuse, vectorize, unroll, parallel)");
  step.kind = it->second;
  for (auto& a : args)
    if (a.empty()) fail("schedule: '", text, "' has an empty argument");
  size_t want = step.kind == ScheduleStep::Kind::Split || step.kind == ScheduleStep::Kind::Fuse ? 2 : 1;
  if (step.kind == ScheduleStep::Kind::Reorder ? args.size() < 2 : args.size() != want)
    fail("schedule: '", text, "' takes ", step.kind == ScheduleStep::Kind::Reorder ? "two or more loops" : want == 2 && step.kind == ScheduleStep::Kind::Split ? "a loop and a factor" : want == 2 ? "two loops" : "one loop");
  if (step.kind == ScheduleStep::Kind::Split) {
    try {
      size_t used = 0;
      step.factor = std::stoll(args[1], &used);
      if (used != args[1].size()) throw std::invalid_argument(args[1]);
    } catch (const std::exception&) {
      fail("schedule: '", text, "': the split factor '", args[1], "' is not an integer");
    }
    args.pop_back();
  }
  step.loops = args;
  return step;
}

}  // namespace

std::string to_string(const ScheduleStep& step) {
  std::string s = std::string(kind_name(step.kind)) + "(";
  for (size_t i = 0; i < step.loops.size(); ++i) s += (i ? ", " : "") + step.loops[i];
  if (step.kind == ScheduleStep::Kind::Split) s += ", " + std::to_string(step.factor);
  return s + ")";
}

std::string to_string(const std::vector<ScheduleStep>& steps) {
  std::string s;
  for (size_t i = 0; i < steps.size(); ++i) s += (i ? "; " : "") + to_string(steps[i]);
  return s;
}

std::vector<ScheduleStep> parse_schedule(const std::string& text) {
  std::vector<ScheduleStep> steps;
  std::string cur;
  int depth = 0;
  for (char c : text + ";") {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if ((c == ';' || c == '\n') && depth == 0) {
      if (!trim(cur).empty()) steps.push_back(parse_step(trim(cur)));
      cur.clear();
    } else {
      cur += c;
    }
  }
  return steps;
}

Stmt apply_schedule(const Stmt& body, const std::vector<ScheduleStep>& steps) {
  Stmt s = body;
  for (auto& step : steps) s = Applier{step}.apply(s);
  return s;
}

namespace {

// A rough measure, in cycles of latency, of the long operations on one element's dependence
// chain in a loop body's stores: a division ~10, a square root ~12, an exp / log / erf / tanh
// polynomial ~30 (adds and multiplies, however many, are not counted: wide sums such as the
// Winograd transforms are trees, not chains).
int64_t unary_cost(UnOp op) {
  switch (op) {
    case UnOp::Sqrt: return 12;
    case UnOp::Exp: case UnOp::Log: case UnOp::Sin: case UnOp::Cos: case UnOp::Tan: case UnOp::Asin:
    case UnOp::Acos: case UnOp::Atan: case UnOp::Sinh: case UnOp::Cosh: case UnOp::Tanh: case UnOp::Asinh:
    case UnOp::Acosh: case UnOp::Atanh: case UnOp::Erf: return 30;
    default: return 0;
  }
}

int64_t chain_cost(const Stmt& body) {
  int64_t cost = 0;
  visit(body, [&](const Stmt& s) {
    if (s->kind != StmtKind::Store) return;
    visit(as<StoreNode>(s)->value, [&](const Expr& e) {
      if (e.kind() == ExprKind::Binary && e.as<BinaryNode>()->op == BinOp::Div && e.dtype() == DType::F32) cost += 10;
      else if (e.kind() == ExprKind::Unary) cost += unary_cost(e.as<UnaryNode>()->op);
    });
  });
  return cost;
}

// The widest element the loop body loads or stores, in bytes (4 when it touches no memory).
int64_t widest_element(const Stmt& body) {
  int64_t widest = 0;
  visit(body, [&](const Stmt& s) {
    if (s->kind != StmtKind::Store) return;
    auto st = as<StoreNode>(s);
    widest = std::max<int64_t>(widest, dtype_bytes(st->buffer->dtype));
    visit(st->value, [&](const Expr& e) {
      if (e.kind() == ExprKind::Load) widest = std::max<int64_t>(widest, dtype_bytes(e.dtype()));
    });
  });
  return widest > 0 ? widest : 4;
}

}  // namespace

std::vector<ScheduleStep> vectorize_inner_loops(Stmt* body, int64_t lanes) {
  // Loops whose element takes a long dependence chain (a quantized GELU: five requantizing
  // divisions around an erf) are latency-bound: the reorder buffer holds about one
  // iteration. Twice the lanes give every instruction two independent register halves.
  constexpr int64_t kLongChain = 60;
  std::vector<std::pair<std::string, int64_t>> names;
  visit(*body, [&](const Stmt& s) {
    if (s->kind != StmtKind::For) return;
    auto n = as<ForNode>(s);
    int64_t ext;
    if (n->for_kind != ForKind::Serial || contains_loop(n->body) || !is_const_int(n->extent, &ext) || ext < lanes) return;
    if (!dependence(n, true).empty()) return;
    int64_t width = chain_cost(n->body) >= kLongChain && ext >= 2 * lanes ? 2 * lanes : lanes;
    // `lanes` counts 32-bit elements: a loop that moves only bytes (an 8-bit copy, pad, max
    // pool or transpose) fills the same registers with up to 4 times as many, when they
    // divide the loop (a 56-wide row keeps 7 x 8 rather than 32 and a scalar tail of 24).
    for (int64_t w = std::min(kMaxLanes, lanes * 4 / widest_element(n->body)); w > width; w /= 2)
      if (ext % w == 0) {
        width = w;
        break;
      }
    auto it = std::find_if(names.begin(), names.end(), [&](const auto& p) { return p.first == n->var.name(); });
    if (it == names.end()) names.push_back({n->var.name(), width});
    else it->second = std::min(it->second, width);
  });
  std::vector<ScheduleStep> chosen;
  for (auto& [name, width] : names) {
    std::vector<ScheduleStep> steps{{ScheduleStep::Kind::Split, {name}, width},
                                    {ScheduleStep::Kind::Vectorize, {name + "_i"}}};
    try {
      *body = apply_schedule(*body, steps);
      chosen.insert(chosen.end(), steps.begin(), steps.end());
    } catch (const Error&) {
      // Another loop of the same name cannot be vectorized: leave them all to LLVM.
    }
  }
  return chosen;
}

}  // namespace kiln::tir
