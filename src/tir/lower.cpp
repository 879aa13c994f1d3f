#include "tir/lower.h"

#include <map>
#include <optional>
#include <set>

#include "kiln/error.h"
#include "tir/fuse_nests.h"
#include "tir/reduction_schedule.h"
#include "tir/simplify.h"

namespace kiln::tir {

namespace {

void topo_visit(const Tensor& t, std::set<const BufferNode*>& seen, std::vector<Tensor>& order) {
  if (!seen.insert(t.buffer().get()).second) return;
  if (t.op())
    for (auto& in : t.op()->inputs) topo_visit(in, seen, order);
  order.push_back(t);
}

// body with loads of inlined stages replaced by those stages' bodies.
Expr inline_loads(const Expr& body, const std::map<const BufferNode*, const ComputeOpNode*>& inl) {
  if (inl.empty()) return body;
  return rewrite(body, [&](const Expr& e) -> Expr {
    if (e.kind() != ExprKind::Load) return e;
    auto n = e.as<LoadNode>();
    auto it = inl.find(n->buffer.get());
    if (it == inl.end()) return e;
    VarMap m;
    for (size_t i = 0; i < n->indices.size(); ++i) m[it->second->axes[i].as<VarNode>()] = n->indices[i];
    return substitute(it->second->body, m);
  });
}

Stmt loop_nest(const std::vector<Var>& axes, const Shape& shape, Stmt body) {
  for (int i = int(axes.size()) - 1; i >= 0; --i)
    body = make_for(axes[i], make_int(0), make_int(shape[i]), ForKind::Serial, body);
  return body;
}

bool reads(const Expr& body, const Buffer& b) {
  bool found = false;
  visit(body, [&](const Expr& e) { found |= e.kind() == ExprKind::Load && e.as<LoadNode>()->buffer == b; });
  return found;
}

// Whether every load of `b` in `body` is at exactly the position `axes` (a dimension of
// extent 1 may be indexed by the constant 0, as broadcasting writes a batch of one).
bool reads_only_at(const Expr& body, const Buffer& b, const std::vector<Var>& axes) {
  bool ok = true;
  visit(body, [&](const Expr& e) {
    if (e.kind() != ExprKind::Load || e.as<LoadNode>()->buffer != b) return;
    const auto& idx = e.as<LoadNode>()->indices;
    int64_t c;
    for (size_t d = 0; d < idx.size(); ++d)
      ok &= idx[d].same_as(axes[d]) || (b->shape[d] == 1 && is_const_int(idx[d], &c) && c == 0);
  });
  return ok;
}

// `body` (over `consumer_axes`) as the epilogue of a reduction into `b` over `reduce_axes`.
Epilogue as_epilogue(const Expr& body, const Buffer& b, const std::vector<Var>& consumer_axes,
                     const std::vector<Var>& reduce_axes) {
  Epilogue ep;
  ep.result = Var(b->name + "_result", b->dtype);
  Expr v = rewrite(body, [&](const Expr& e) {
    return e.kind() == ExprKind::Load && e.as<LoadNode>()->buffer == b ? Expr(ep.result) : e;
  });
  VarMap m;
  for (size_t d = 0; d < consumer_axes.size(); ++d) m[consumer_axes[d].as<VarNode>()] = reduce_axes[d];
  ep.value = substitute(v, m);
  return ep;
}

Stmt lower_stage(const Buffer& dst, const ComputeOpNode& op, const Expr& body, const VectorTarget& target,
                 const BufferSet& constants, const Epilogue& epilogue = {}) {
  std::vector<Expr> idx(op.axes.begin(), op.axes.end());
  if (body.kind() != ExprKind::Reduce) return loop_nest(op.axes, dst->shape, make_store(dst, idx, body));
  auto r = body.as<ReduceNode>();
  visit(r->body, [](const Expr& e) { KILN_CHECK(e.kind() != ExprKind::Reduce, "nested reduction"); });
  // Reduce axes of extent 1 (a 1x1 kernel's window) are the constant 0.
  VarMap unit;
  std::vector<IterVar> kept;
  for (auto& a : r->axes) {
    if (a.extent == 1) unit[a.var.as<VarNode>()] = make_int(0);
    else kept.push_back(a);
  }
  if (!unit.empty() && !kept.empty()) {
    auto reduced = std::make_shared<ReduceNode>(r->op, simplify(substitute(r->body, unit)), kept, r->init);
    return schedule_reduction(dst, op.axes, reduced.get(), target, epilogue, constants);
  }
  return schedule_reduction(dst, op.axes, r, target, epilogue, constants);
}

}  // namespace

PrimFunc lower(const std::string& name, const std::vector<Tensor>& inputs,
               const std::vector<Tensor>& outputs_in, const VectorTarget& target, const BufferSet& constants) {
  // An output that is an input or repeats another output gets its own copy stage.
  std::vector<Tensor> outputs;
  std::set<const BufferNode*> out_seen;
  for (auto& o : outputs_in) {
    bool needs_copy = !o.op() || out_seen.count(o.buffer().get());
    Tensor t = needs_copy ? compute(o.shape(), [&](const std::vector<Var>& i) { return o(i); }, o.name() + "_copy") : o;
    out_seen.insert(t.buffer().get());
    outputs.push_back(t);
  }

  std::set<const BufferNode*> seen;
  std::vector<Tensor> order;
  for (auto& o : outputs) topo_visit(o, seen, order);

  std::set<const BufferNode*> input_set;
  for (auto& i : inputs) input_set.insert(i.buffer().get());
  for (auto& t : order)
    if (!t.op())
      KILN_CHECK(input_set.count(t.buffer().get()), "kernel ", name, " reads ", t.name(),
                 " which is not one of its inputs");

  std::map<const BufferNode*, const ComputeOpNode*> inlined;
  std::vector<std::shared_ptr<ComputeOpNode>> keep;  // owns the rewritten inlined stages
  std::vector<Buffer> scratch;
  std::vector<Stmt> stmts;

  // Reductions that are not outputs wait for their consumer: when the only stage reading them
  // (through inlined stages) is elementwise and reads each result at its own position, the
  // consumer becomes the reduction's epilogue and the intermediate is never stored.
  std::map<const BufferNode*, std::vector<const BufferNode*>> readers;
  for (auto& t : order)
    if (t.op())
      for (auto& in : t.op()->inputs) readers[in.buffer().get()].push_back(t.buffer().get());
  struct Pending {
    Tensor stage;
    Expr body;
  };
  std::vector<Pending> pending;
  auto emit_pending = [&](const Pending& p) {
    scratch.push_back(p.stage.buffer());
    stmts.push_back(lower_stage(p.stage.buffer(), *p.stage.op(), p.body, target, constants));
  };
  auto sole_reader = [&](const BufferNode* b) -> const BufferNode* {
    for (;;) {
      auto it = readers.find(b);
      if (it == readers.end() || it->second.size() != 1) return nullptr;
      b = it->second[0];
      if (!inlined.count(b)) return b;
    }
  };

  for (auto& t : order) {
    if (!t.op()) continue;
    Expr body = inline_loads(t.op()->body, inlined);
    bool is_output = out_seen.count(t.buffer().get()) > 0;
    if (!is_output && body.kind() != ExprKind::Reduce && t.op()->inline_ok) {
      // Keep the rewritten body so later consumers inline the fully expanded expression.
      auto copy = std::make_shared<ComputeOpNode>(*t.op());
      copy->body = body;
      inlined[t.buffer().get()] = copy.get();
      keep.push_back(copy);
      continue;
    }
    // The pending reductions t reads: at most one becomes t's producer with t as its
    // epilogue; the others are stored first.
    std::optional<Pending> producer;
    for (auto it = pending.begin(); it != pending.end();) {
      const Buffer& pb = it->stage.buffer();
      if (!reads(body, pb)) {
        ++it;
        continue;
      }
      if (!producer && body.kind() != ExprKind::Reduce && sole_reader(pb.get()) == t.buffer().get() &&
          pb->shape == t.shape() && reads_only_at(body, pb, t.op()->axes))
        producer = *it;
      else
        emit_pending(*it);
      it = pending.erase(it);
    }
    if (producer) {
      Epilogue ep = as_epilogue(body, producer->stage.buffer(), t.op()->axes, producer->stage.op()->axes);
      stmts.push_back(lower_stage(t.buffer(), *producer->stage.op(), producer->body, target, constants, ep));
      if (!is_output) scratch.push_back(t.buffer());
      continue;
    }
    if (!is_output && body.kind() == ExprKind::Reduce) {
      pending.push_back({t, body});
      continue;
    }
    if (!is_output) scratch.push_back(t.buffer());
    stmts.push_back(lower_stage(t.buffer(), *t.op(), body, target, constants));
  }
  for (auto& p : pending) emit_pending(p);

  PrimFunc f;
  f.name = name;
  for (auto& i : inputs) f.params.push_back(i.buffer());
  for (auto& o : outputs) f.params.push_back(o.buffer());
  Stmt body = make_seq(stmts);
  for (auto it = scratch.rbegin(); it != scratch.rend(); ++it) body = make_allocate(*it, body);
  f.body = fuse_slice_nests(simplify(body), constants);
  return f;
}

}  // namespace kiln::tir
