#include "ops/op_context.h"

namespace kiln::ops {

OpContext::OpContext(const graph::Node& node, std::vector<tir::Tensor> inputs,
                     std::vector<const HostTensor*> values)
    : node_(node), inputs_(std::move(inputs)), values_(std::move(values)), used_(inputs_.size(), false) {
  values_.resize(inputs_.size(), nullptr);
}

const tir::Tensor& OpContext::input(int i) const {
  if (!has_input(i)) error("input ", i, " is required but missing");
  return inputs_[i];
}

const HostTensor* OpContext::value(int i) {
  if (!has_input(i) || !values_[i]) return nullptr;
  used_[i] = true;
  return values_[i];
}

const HostTensor& OpContext::required_value(int i, const char* what) {
  if (!has_input(i)) error("input ", i, " (", what, ") is required but missing");
  const HostTensor* v = value(i);
  if (!v)
    error("input ", i, " (", what, ", '", node_.inputs[i],
          "') must be known at compile time; kiln compiles static shapes (bind it with --inputs or make it an initializer)");
  return *v;
}

const graph::Attribute* OpContext::attr(const std::string& name) const {
  auto it = node_.attrs.find(name);
  return it == node_.attrs.end() ? nullptr : &it->second;
}

int64_t OpContext::attr_int(const std::string& name, int64_t def) const {
  auto a = attr(name);
  if (!a) return def;
  if (a->kind == graph::Attribute::Kind::Float) return int64_t(a->f);
  if (a->kind != graph::Attribute::Kind::Int) error("attribute '", name, "' must be an int");
  return a->i;
}

double OpContext::attr_float(const std::string& name, double def) const {
  auto a = attr(name);
  if (!a) return def;
  if (a->kind == graph::Attribute::Kind::Int) return double(a->i);
  if (a->kind != graph::Attribute::Kind::Float) error("attribute '", name, "' must be a float");
  return a->f;
}

std::string OpContext::attr_string(const std::string& name, const std::string& def) const {
  auto a = attr(name);
  if (!a) return def;
  if (a->kind != graph::Attribute::Kind::String) error("attribute '", name, "' must be a string");
  return a->s;
}

std::vector<int64_t> OpContext::attr_ints(const std::string& name, std::vector<int64_t> def) const {
  auto a = attr(name);
  if (!a) return def;
  if (a->kind == graph::Attribute::Kind::Int) return {a->i};
  if (a->kind != graph::Attribute::Kind::Ints) error("attribute '", name, "' must be a list of ints");
  return a->ints;
}

std::vector<double> OpContext::attr_floats(const std::string& name, std::vector<double> def) const {
  auto a = attr(name);
  if (!a) return def;
  if (a->kind == graph::Attribute::Kind::Float) return {a->f};
  if (a->kind != graph::Attribute::Kind::Floats) error("attribute '", name, "' must be a list of floats");
  return a->floats;
}

const HostTensor* OpContext::attr_tensor(const std::string& name) const {
  auto a = attr(name);
  if (!a) return nullptr;
  if (a->kind != graph::Attribute::Kind::Tensor) error("attribute '", name, "' must be a tensor");
  return a->tensor.get();
}

std::string OpContext::out_name(int i) const {
  std::string n;
  for (char c : node_.name) n += (std::isalnum(static_cast<unsigned char>(c)) ? c : '_');
  return n + "_out" + std::to_string(i);
}

int64_t OpContext::axis(int64_t a, int64_t rank, const char* what) const {
  int64_t r = a < 0 ? a + rank : a;
  if (r < 0 || r >= std::max<int64_t>(rank, 1)) error(what, " ", a, " is out of range for rank ", rank);
  return r;
}

}  // namespace kiln::ops
