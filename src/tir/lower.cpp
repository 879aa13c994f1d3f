#include "tir/lower.h"

#include <map>
#include <set>

#include "kiln/error.h"
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

Expr combine(ReduceOp op, const Expr& acc, const Expr& v) {
  switch (op) {
    case ReduceOp::Sum: return acc + v;
    case ReduceOp::Prod: return acc * v;
    case ReduceOp::Max: return max(acc, v);
    case ReduceOp::Min: return min(acc, v);
  }
  return Expr();
}

Stmt loop_nest(const std::vector<Var>& axes, const Shape& shape, Stmt body) {
  for (int i = int(axes.size()) - 1; i >= 0; --i)
    body = make_for(axes[i], make_int(0), make_int(shape[i]), ForKind::Serial, body);
  return body;
}

// Rows of at most this many bytes of accumulators are reduced together (see lower_reduction_rows).
constexpr int64_t kMaxRowAccumulatorBytes = 16 * 1024;

// A reduction with the innermost output axis moved inside the reduce loops: the accumulators
// of one output row live in a small buffer and the innermost loop runs over neighbouring
// outputs, which LLVM vectorizes. Every element still adds its terms in the same order as the
// scalar form, so results are bit-identical.
Stmt lower_reduction_rows(const Buffer& dst, const ComputeOpNode& op, const ReduceNode* r) {
  size_t last = op.axes.size() - 1;
  const Var& j = op.axes[last];
  int64_t width = dst->shape[last];
  Buffer acc = make_buffer(dst->name + "_rowacc", r->dtype, {width});
  auto over_row = [&](Stmt s) { return make_for(j, make_int(0), make_int(width), ForKind::Serial, s); };
  Stmt init = over_row(make_store(acc, {j}, r->init));
  Stmt update = over_row(make_store(acc, {j}, combine(r->op, load(acc, {j}), r->body)));
  for (int i = int(r->axes.size()) - 1; i >= 0; --i)
    update = make_for(r->axes[i].var, make_int(0), make_int(r->axes[i].extent), ForKind::Serial, update);
  std::vector<Expr> idx(op.axes.begin(), op.axes.end());
  Stmt store = over_row(make_store(dst, idx, load(acc, {j})));
  std::vector<Var> outer(op.axes.begin(), op.axes.end() - 1);
  Shape outer_shape(dst->shape.begin(), dst->shape.end() - 1);
  return loop_nest(outer, outer_shape, make_allocate(acc, make_seq({init, update, store})));
}

bool worth_row_reduction(const Buffer& dst, const ReduceNode* r) {
  if (dst->shape.empty()) return false;
  int64_t width = dst->shape.back(), terms = 1;
  for (auto& a : r->axes) terms *= a.extent;
  return width >= 4 && terms >= 2 && width * dtype_bytes(r->dtype) <= kMaxRowAccumulatorBytes;
}

Stmt lower_stage(const Buffer& dst, const ComputeOpNode& op, const Expr& body) {
  std::vector<Expr> idx(op.axes.begin(), op.axes.end());
  if (body.kind() != ExprKind::Reduce) return loop_nest(op.axes, dst->shape, make_store(dst, idx, body));
  auto r = body.as<ReduceNode>();
  visit(r->body, [](const Expr& e) { KILN_CHECK(e.kind() != ExprKind::Reduce, "nested reduction"); });
  if (worth_row_reduction(dst, r)) return lower_reduction_rows(dst, op, r);
  Buffer acc = make_buffer(dst->name + "_acc", r->dtype, {});
  Stmt update = make_store(acc, {}, combine(r->op, load(acc, {}), r->body));
  for (int i = int(r->axes.size()) - 1; i >= 0; --i)
    update = make_for(r->axes[i].var, make_int(0), make_int(r->axes[i].extent), ForKind::Serial, update);
  Stmt s = make_seq({make_store(acc, {}, r->init), update, make_store(dst, idx, load(acc, {}))});
  return loop_nest(op.axes, dst->shape, make_allocate(acc, s));
}

}  // namespace

PrimFunc lower(const std::string& name, const std::vector<Tensor>& inputs,
               const std::vector<Tensor>& outputs_in) {
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
    if (!is_output) scratch.push_back(t.buffer());
    stmts.push_back(lower_stage(t.buffer(), *t.op(), body));
  }

  PrimFunc f;
  f.name = name;
  for (auto& i : inputs) f.params.push_back(i.buffer());
  for (auto& o : outputs) f.params.push_back(o.buffer());
  Stmt body = make_seq(stmts);
  for (auto it = scratch.rbegin(); it != scratch.rend(); ++it) body = make_allocate(*it, body);
  f.body = simplify(body);
  return f;
}

}  // namespace kiln::tir
