// Recurrent layers: RNN, GRU and LSTM. Sequence lengths are static, so the time recurrence is
// unrolled: one reduction stage computes the input projections of all time steps, then each
// step has a recurrent projection stage and materialized state stages. Both directions of a
// bidirectional layer advance in the same stages (a state is [directions, batch, hidden]; at
// step k the forward direction is at time k and the reverse one at time T-1-k), which halves
// the number of loop nests. Y stacks the per-step hidden states; Y_h (and LSTM's Y_c) are the
// final states. Entries shorter than the sequence (sequence_lens) hold their state past their
// end.
#include <algorithm>
#include <cctype>

#include "ops/common.h"
#include "ops/registry.h"

namespace kiln::ops {

namespace {

using tir::IterVar;

Expr c(const Expr& like, double v) { return tir::make_const(like.dtype(), v); }

// An activation function of the `activations` attribute, with its alpha/beta.
struct Activation {
  std::string name;  // lower case
  double alpha = 0, beta = 0;
  bool operator==(const Activation&) const = default;

  Expr operator()(const Expr& x) const {
    if (name == "sigmoid") return c(x, 1) / (c(x, 1) + tir::exp(-x));
    if (name == "tanh") return tir::tanh(x);
    if (name == "relu") return tir::max(x, c(x, 0));
    if (name == "affine") return c(x, alpha) * x + c(x, beta);
    if (name == "leakyrelu") return tir::select(tir::lt(x, c(x, 0)), c(x, alpha) * x, x);
    if (name == "thresholdedrelu") return tir::select(tir::gt(x, c(x, alpha)), x, c(x, 0));
    if (name == "scaledtanh") return c(x, alpha) * tir::tanh(c(x, beta) * x);
    if (name == "hardsigmoid") return tir::max(c(x, 0), tir::min(c(x, 1), c(x, alpha) * x + c(x, beta)));
    if (name == "elu") return tir::select(tir::lt(x, c(x, 0)), c(x, alpha) * (tir::exp(x) - c(x, 1)), x);
    if (name == "softsign") return x / (c(x, 1) + tir::abs(x));
    if (name == "softplus") return tir::log(c(x, 1) + tir::exp(x));
    return Expr();
  }
};

// Default (alpha, beta) of the activations that take them; the attribute lists supply values
// only to those, in order.
bool default_params(const std::string& name, double* alpha, double* beta) {
  if (name == "affine") { *alpha = 1.0; *beta = 0.0; return true; }
  if (name == "leakyrelu") { *alpha = 0.01; return true; }
  if (name == "thresholdedrelu" || name == "elu") { *alpha = 1.0; return true; }
  if (name == "scaledtanh") { *alpha = 1.0; *beta = 1.0; return true; }
  if (name == "hardsigmoid") { *alpha = 0.2; *beta = 0.5; return true; }
  return false;
}

bool takes_beta(const std::string& name) { return name == "affine" || name == "scaledtanh" || name == "hardsigmoid"; }

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
  return s;
}

// Activations per direction: `defaults` (one direction's list) unless the attribute gives them.
std::vector<std::vector<Activation>> activations(const OpContext& ctx, const std::vector<std::string>& defaults,
                                                 int dirs) {
  std::vector<std::string> names;
  if (auto a = ctx.attr("activations")) names = a->strings;
  if (names.empty())
    for (int d = 0; d < dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  if (names.size() != defaults.size() * dirs)
    ctx.error("expected ", defaults.size() * dirs, " activations, got ", names.size());
  std::vector<double> alphas = ctx.attr_floats("activation_alpha"), betas = ctx.attr_floats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  std::vector<std::vector<Activation>> out(dirs);
  for (size_t k = 0; k < names.size(); ++k) {
    Activation a{lower(names[k])};
    if (default_params(a.name, &a.alpha, &a.beta)) {
      if (next_alpha < alphas.size()) a.alpha = alphas[next_alpha++];
      if (takes_beta(a.name) && next_beta < betas.size()) a.beta = betas[next_beta++];
    }
    if (!a(Expr(0.0)).defined()) ctx.error("activation '", names[k], "' is not supported");  // unknown name
    out[k / defaults.size()].push_back(a);
  }
  return out;
}

// A stage computed into its own buffer rather than inlined into its consumers: the unrolled
// recurrence reads each step's state from many places, and inlining would re-evaluate the
// whole history at every read. A reduction over a unit axis is never inlined.
Tensor materialized(const Shape& shape, const std::function<Expr(const std::vector<Var>&)>& f, const std::string& name) {
  return tir::compute(shape, [&](const std::vector<Var>& i) {
    return tir::sum(f(i), {tir::reduce_axis(1, name + "_once")});
  }, name);
}

// The shared structure of the three layers: shapes, layouts, weights, activations and the
// projections. `gates` is the number of gate blocks stacked in W, R and B. Per-direction
// quantities are indexed by the direction variable d of the stage being built.
class Recurrence {
 public:
  Recurrence(OpContext& ctx, int gates, const std::vector<std::string>& default_activations)
      : ctx_(ctx), gates_(gates) {
    const Tensor& x = ctx.input(0);
    check_float(ctx, x);
    batch_major_ = ctx.attr_int("layout", 0) != 0;
    seq_ = x.dim(batch_major_ ? 1 : 0);
    batch_ = x.dim(batch_major_ ? 0 : 1);
    hidden_ = ctx.attr_int("hidden_size", ctx.input(2).dim(2));
    if (seq_ == 0) ctx.error("an empty sequence is not supported");
    std::string dir = ctx.attr_string("direction", "forward");
    if (dir == "forward" || dir == "reverse") dirs_ = 1;
    else if (dir == "bidirectional") dirs_ = 2;
    else ctx.error("direction '", dir, "' is not supported");
    reverse_only_ = dir == "reverse";
    if (ctx.input(1).dim(1) != gates * hidden_ || ctx.input(2).dim(1) != gates * hidden_)
      ctx.error("W and R must have ", gates, " * hidden_size rows");
    clip_ = ctx.attr_float("clip", 0.0);
    use_sequence_lens_ = ctx.has_input(4) && !covers_whole_sequence(ctx.value(4));
    act_ = activations(ctx, default_activations, dirs_);
  }

  int64_t seq() const { return seq_; }
  int64_t hidden() const { return hidden_; }
  std::string name(const std::string& what) const { return ctx_.out_name() + "_" + what; }

  // Activation `which` of direction d (the two directions may use different functions).
  Expr activation(int which, const Var& d, const Expr& x) const {
    Expr fwd = act_[0][which](x);
    if (dirs_ == 1 || act_[1][which] == act_[0][which]) return fwd;
    return tir::select(tir::eq(d, Expr(1)), act_[1][which](x), fwd);
  }

  // Time index of step k in direction d, and (the map being its own inverse) the step of time k.
  Expr time_at(const Expr& d, const Expr& k) const {
    Expr back = Expr(seq_ - 1) - k;
    if (dirs_ == 1) return reverse_only_ ? back : k;
    return tir::select(tir::eq(d, Expr(1)), back, k);
  }

  // Initial state from input `input` ([D, B, H], batch-major [B, D, H]) or zeros: [D, B, H].
  Tensor initial_state(int input, const std::string& what) const {
    return tir::compute(state_shape(), [&](const std::vector<Var>& i) -> Expr {
      if (!ctx_.has_input(input)) return tir::make_const(ctx_.input(0).dtype(), 0);
      const Tensor& h = ctx_.input(input);
      return batch_major_ ? h(i[1], i[0], i[2]) : h(i);
    }, name(what));
  }

  // x_t W^T for every direction and time: [D, T, B, gates * H].
  Tensor input_projection() const {
    const Tensor &x = ctx_.input(0), &w = ctx_.input(1);
    return tir::compute({dirs_, seq_, batch_, gates_ * hidden_}, [&](const std::vector<Var>& i) {
      IterVar k = tir::reduce_axis(x.dim(2), name("xk"));
      Expr xv = batch_major_ ? x(i[2], i[1], k.var) : x(i[1], i[2], k.var);
      return tir::sum(xv * w(i[0], i[3], k.var), {k});
    }, name("xw"));
  }

  // h R^T for rows [first_row, first_row + rows) of R: [D, B, rows]. `h` is any [D, B, H] state.
  Tensor recurrent_projection(const Tensor& h, int64_t first_row, int64_t rows, const std::string& what) const {
    const Tensor& r = ctx_.input(2);
    return tir::compute({dirs_, batch_, rows}, [&](const std::vector<Var>& i) {
      IterVar k = tir::reduce_axis(hidden_, what + "_k");
      return tir::sum(h(i[0], i[1], k.var) * r(i[0], Expr(first_row) + i[2], k.var), {k});
    }, what);
  }

  // Input bias Wb (recurrent = false) or recurrent bias Rb of gate `gate`, element j; 0 without B.
  Expr bias(const Var& d, bool recurrent, int gate, const Expr& j) const {
    if (!ctx_.has_input(3)) return tir::make_const(ctx_.input(0).dtype(), 0);
    return ctx_.input(3)(d, Expr((recurrent ? gates_ + gate : gate) * hidden_) + j);
  }

  // Pre-activation input part of gate `gate` at step k: x_t W_gate^T + Wb_gate.
  Expr input_part(const Tensor& xw, int64_t k, int gate, const Var& d, const Var& b, const Var& j) const {
    return xw(d, time_at(d, Expr(k)), b, Expr(gate * hidden_) + j) + bias(d, false, gate, j);
  }

  // ONNX's clip bounds the gate inputs before activation.
  Expr clipped(const Expr& e) const {
    if (clip_ <= 0) return e;
    return tir::max(c(e, -clip_), tir::min(c(e, clip_), e));
  }

  // A state stage [D, B, H] of step k: `update` where the step is within the entry's sequence,
  // `prev` where it is not. Materialized: the unrolled recurrence reads each step's state from
  // many places, and inlining would re-evaluate the whole history at every read.
  using Update = std::function<Expr(const Var& d, const Var& b, const Var& j)>;
  Tensor state_stage(int64_t k, const Tensor& prev, const Update& update, const std::string& what) const {
    return materialized(state_shape(), [&](const std::vector<Var>& i) {
      Expr next = update(i[0], i[1], i[2]);
      return use_sequence_lens_ ? tir::select(active(i[1], time_at(i[0], Expr(k))), next, prev(i)) : next;
    }, what);
  }
  // A materialized intermediate of step k with the state's shape (e.g. GRU's reset gate).
  Tensor step_stage(const Update& f, const std::string& what) const {
    return materialized(state_shape(), [&](const std::vector<Var>& i) { return f(i[0], i[1], i[2]); }, what);
  }

  // Y from the per-step hidden states: [T, D, B, H] (batch-major [B, T, D, H]).
  Tensor stack_outputs(const std::vector<Tensor>& hidden_at_step) const {
    Shape shape = batch_major_ ? Shape{batch_, seq_, dirs_, hidden_} : Shape{seq_, dirs_, batch_, hidden_};
    return tir::compute(shape, [&](const std::vector<Var>& i) {
      Var t = batch_major_ ? i[1] : i[0], d = batch_major_ ? i[2] : i[1], b = batch_major_ ? i[0] : i[2], j = i[3];
      // Static steps live in separate buffers: pick the one this element belongs to.
      Expr step = time_at(d, t);
      Expr v = hidden_at_step[0](d, b, j);
      for (int64_t k = 1; k < seq_; ++k) v = tir::select(tir::eq(step, Expr(k)), hidden_at_step[k](d, b, j), v);
      return use_sequence_lens_ ? tir::select(active(b, t), v, c(v, 0)) : v;
    }, ctx_.out_name(0));
  }

  // A final state as node output `out`: [D, B, H] (batch-major [B, D, H]).
  Tensor final_output(const Tensor& state, int out) const {
    Shape shape = batch_major_ ? Shape{batch_, dirs_, hidden_} : state_shape();
    return tir::compute(shape, [&](const std::vector<Var>& i) {
      return batch_major_ ? state(i[1], i[0], i[2]) : state(i);
    }, ctx_.out_name(out));
  }

 private:
  Shape state_shape() const { return {dirs_, batch_, hidden_}; }

  // Whether time t is within batch entry b's sequence. Past its end an entry's state holds
  // and its Y is 0; in reverse this skips the padding first, so each entry's reverse pass
  // starts at its own last element.
  Expr active(const Expr& b, const Expr& t) const {
    return tir::lt(t, tir::cast(DType::I64, ctx_.input(4)(b)));
  }

  // sequence_lens known to be the full length for every entry needs no masking.
  bool covers_whole_sequence(const HostTensor* lens) const {
    if (!lens) return false;
    std::vector<int64_t> v = lens->to_i64_vector();
    return std::all_of(v.begin(), v.end(), [&](int64_t len) { return len == seq_; });
  }

  OpContext& ctx_;
  int gates_;
  bool batch_major_ = false, reverse_only_ = false, use_sequence_lens_ = false;
  int64_t dirs_ = 1, seq_ = 0, batch_ = 0, hidden_ = 0;
  double clip_ = 0;
  std::vector<std::vector<Activation>> act_;
};

// Runs `step(k, state) -> new state` for k = 0 .. T-1 and returns Y and the final states. A
// state is one or more [D, B, H] tensors; Y stacks state[0].
using State = std::vector<Tensor>;
using Step = std::function<State(int64_t k, const State& prev)>;

std::vector<Tensor> unroll(const Recurrence& rec, const State& initial, const Step& step) {
  std::vector<Tensor> hidden_at_step;
  State s = initial;
  for (int64_t k = 0; k < rec.seq(); ++k) {
    s = step(k, s);
    hidden_at_step.push_back(s[0]);
  }
  std::vector<Tensor> outs = {rec.stack_outputs(hidden_at_step)};
  for (size_t part = 0; part < s.size(); ++part) outs.push_back(rec.final_output(s[part], int(part) + 1));
  return outs;
}

std::vector<Tensor> rnn(OpContext& ctx) {
  Recurrence rec(ctx, 1, {"Tanh"});
  Tensor xw = rec.input_projection();
  return unroll(rec, {rec.initial_state(5, "h0")}, [&](int64_t k, const State& prev) -> State {
    std::string step = rec.name("s" + std::to_string(k));
    Tensor hr = rec.recurrent_projection(prev[0], 0, rec.hidden(), step + "_hr");
    return {rec.state_stage(k, prev[0], [&](const Var& d, const Var& b, const Var& j) {
      return rec.activation(0, d, rec.clipped(rec.input_part(xw, k, 0, d, b, j) + hr(d, b, j) + rec.bias(d, true, 0, j)));
    }, step + "_h")};
  });
}

// GRU, gates z, r, h. Without linear_before_reset the reset gate scales the state before its
// recurrent projection, which then needs its own reduction stage.
std::vector<Tensor> gru(OpContext& ctx) {
  Recurrence rec(ctx, 3, {"Sigmoid", "Tanh"});
  bool linear_before_reset = ctx.attr_int("linear_before_reset", 0) != 0;
  int64_t hs = rec.hidden();
  Tensor xw = rec.input_projection();
  enum { Z = 0, R = 1, H = 2 };
  return unroll(rec, {rec.initial_state(5, "h0")}, [&](int64_t k, const State& prev) -> State {
    std::string step = rec.name("s" + std::to_string(k));
    const Tensor& h = prev[0];
    Tensor hr = rec.recurrent_projection(h, 0, (linear_before_reset ? 3 : 2) * hs, step + "_hr");
    auto gate = [&](int g, const Var& d, const Var& b, const Var& j) {
      Expr pre = rec.input_part(xw, k, g, d, b, j) + hr(d, b, Expr(g * hs) + j) + rec.bias(d, true, g, j);
      return rec.activation(0, d, rec.clipped(pre));
    };
    Tensor reset = rec.step_stage([&](const Var& d, const Var& b, const Var& j) { return gate(R, d, b, j); },
                                  step + "_r");
    Tensor reset_h;  // (r * h) R_h^T
    if (!linear_before_reset) {
      Tensor scaled = tir::compute(h.shape(), [&](const std::vector<Var>& i) { return reset(i) * h(i); }, step + "_rh");
      reset_h = rec.recurrent_projection(scaled, H * hs, hs, step + "_rhr");
    }
    return {rec.state_stage(k, h, [&](const Var& d, const Var& b, const Var& j) {
      Expr rb = rec.bias(d, true, H, j);
      Expr recurrent = linear_before_reset ? reset(d, b, j) * (hr(d, b, Expr(H * hs) + j) + rb) : reset_h(d, b, j) + rb;
      Expr cand = rec.activation(1, d, rec.clipped(rec.input_part(xw, k, H, d, b, j) + recurrent));
      Expr z = gate(Z, d, b, j);
      return (c(z, 1) - z) * cand + z * h(d, b, j);
    }, step + "_h")};
  });
}

// LSTM, gates i, o, f, c; optional peepholes P = [Pi, Po, Pf]; state {H, C}.
std::vector<Tensor> lstm(OpContext& ctx) {
  Recurrence rec(ctx, 4, {"Sigmoid", "Tanh", "Tanh"});
  bool input_forget = ctx.attr_int("input_forget", 0) != 0;
  int64_t hs = rec.hidden();
  Tensor xw = rec.input_projection();
  enum { I = 0, O = 1, F = 2, C = 3 };
  // Gate input plus its peephole term P_which * cell, when the model has peepholes.
  auto with_peephole = [&](const Expr& gate, const Var& d, int which, const Expr& j, const Expr& cell) -> Expr {
    if (!ctx.has_input(7)) return gate;
    return gate + ctx.input(7)(d, Expr(which * hs) + j) * cell;
  };
  State initial = {rec.initial_state(5, "h0"), rec.initial_state(6, "c0")};
  return unroll(rec, initial, [&](int64_t k, const State& prev) -> State {
    std::string step = rec.name("s" + std::to_string(k));
    const Tensor &h = prev[0], &cell = prev[1];
    Tensor hr = rec.recurrent_projection(h, 0, 4 * hs, step + "_hr");
    auto pre = [&](int g, const Var& d, const Var& b, const Var& j) {
      return rec.input_part(xw, k, g, d, b, j) + hr(d, b, Expr(g * hs) + j) + rec.bias(d, true, g, j);
    };
    auto sigma = [&](const Var& d, const Expr& x) { return rec.activation(0, d, rec.clipped(x)); };
    Tensor new_cell = rec.state_stage(k, cell, [&](const Var& d, const Var& b, const Var& j) {
      Expr c_prev = cell(d, b, j);
      Expr in = sigma(d, with_peephole(pre(I, d, b, j), d, 0, j, c_prev));
      Expr forget = input_forget ? c(in, 1) - in : sigma(d, with_peephole(pre(F, d, b, j), d, 2, j, c_prev));
      return forget * c_prev + in * rec.activation(1, d, rec.clipped(pre(C, d, b, j)));
    }, step + "_c");
    Tensor new_h = rec.state_stage(k, h, [&](const Var& d, const Var& b, const Var& j) {
      Expr ct = new_cell(d, b, j);
      return sigma(d, with_peephole(pre(O, d, b, j), d, 1, j, ct)) * rec.activation(2, d, ct);
    }, step + "_h");
    return {new_h, new_cell};
  });
}

}  // namespace

void register_rnn(Registry& r) {
  r.add("RNN", rnn);
  r.add("GRU", gru);
  r.add("LSTM", lstm);
}

}  // namespace kiln::ops
