#include "tir/schedule.h"

namespace kiln::tir {

int64_t estimate_work(const Stmt& s) {
  if (!s) return 0;
  switch (s->kind) {
    case StmtKind::For: {
      auto n = as<ForNode>(s);
      int64_t ext = 1;
      is_const_int(n->extent, &ext);
      return ext * std::max<int64_t>(1, estimate_work(n->body));
    }
    case StmtKind::Seq: {
      int64_t w = 0;
      for (auto& c : as<SeqNode>(s)->stmts) w += estimate_work(c);
      return w;
    }
    case StmtKind::IfThenElse: {
      auto n = as<IfThenElseNode>(s);
      return std::max(estimate_work(n->then_case), estimate_work(n->else_case));
    }
    case StmtKind::Allocate: return estimate_work(as<AllocateNode>(s)->body);
    case StmtKind::Store: return 1;
  }
  return 0;
}

Stmt parallelize_outer_loops(const Stmt& s, int64_t min_work) {
  if (!s) return s;
  switch (s->kind) {
    case StmtKind::For: {
      auto n = as<ForNode>(s);
      int64_t ext, mn;
      if (n->for_kind != ForKind::Serial || !is_const_int(n->extent, &ext) || ext < 2) return s;
      if (!is_const_int(n->min, &mn) || mn != 0) return s;  // remainder nests stay serial
      if (estimate_work(s) < min_work) return s;
      return make_for(n->var, n->min, n->extent, ForKind::Parallel, n->body);
    }
    case StmtKind::Seq: {
      std::vector<Stmt> v;
      for (auto& c : as<SeqNode>(s)->stmts) v.push_back(parallelize_outer_loops(c, min_work));
      return make_seq(v);
    }
    case StmtKind::Allocate: {
      auto n = as<AllocateNode>(s);
      return make_allocate(n->buffer, parallelize_outer_loops(n->body, min_work));
    }
    default: return s;
  }
}

}  // namespace kiln::tir
