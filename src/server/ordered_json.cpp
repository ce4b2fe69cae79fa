// A SAX builder of nlohmann::ordered_json with a hash index of each open object's keys.
#include "ordered_json.h"

#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dspark::server {

namespace {

class Builder final : public nlohmann::json_sax<OrderedJson> {
 public:
  // With `member`, the input must be an object of which only that member is built.
  Builder(const OrderedLimits& limits, std::optional<std::string_view> member)
      : limits_(limits), member_(member) {}

  bool null() override { return put(OrderedJson(nullptr)); }
  bool boolean(bool v) override { return put(OrderedJson(v)); }
  bool number_integer(number_integer_t v) override { return put(OrderedJson(v)); }
  bool number_unsigned(number_unsigned_t v) override { return put(OrderedJson(v)); }
  bool number_float(number_float_t v, const string_t&) override { return put(OrderedJson(v)); }
  bool string(string_t& v) override { return put(OrderedJson(std::move(v))); }
  bool binary(binary_t&) override { return fail("not valid JSON"); }
  bool start_object(std::size_t) override { return open(OrderedJson::object()); }
  bool start_array(std::size_t) override { return open(OrderedJson::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    if (skip_ > 0) return true;
    // Members of the top-level object other than the wanted one are skipped.
    if (member_ && stack_.size() == 1 && k != *member_) {
      skip_next_ = true;
      return true;
    }
    stack_.back().key = std::move(k);
    return true;
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return fail("not valid JSON");
  }

  const std::string& error() const { return error_; }
  OrderedJson& root() { return root_; }

 private:
  struct Frame {
    OrderedJson value;                              // an array or an object
    std::unordered_map<std::string, size_t> index;  // objects: key -> position
    std::string key;                                // objects: the next value's key
  };

  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }

  bool put(OrderedJson v) {
    if (skip_ > 0) return true;
    if (skip_next_) {
      skip_next_ = false;
      return true;
    }
    return attach(std::move(v));
  }

  bool open(OrderedJson v) {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    if (skip_next_) {
      skip_next_ = false;
      skip_ = 1;
      return true;
    }
    // The top-level object around a selected member does not count.
    const size_t max_depth = size_t(limits_.max_depth) + (member_ ? 1 : 0);
    if (stack_.size() >= max_depth) {
      return fail("nested deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    stack_.push_back(Frame{std::move(v), {}, {}});
    return true;
  }

  bool close() {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    Frame done = std::move(stack_.back());
    stack_.pop_back();
    return attach(std::move(done.value));
  }

  // Adds a finished value to the open array or object, or makes it the root.
  bool attach(OrderedJson v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return true;
    }
    Frame& f = stack_.back();
    if (f.value.is_array()) {
      f.value.push_back(std::move(v));
      return true;
    }
    // The object's storage is a vector of pairs; the index replaces its linear key search.
    auto& items =
        static_cast<OrderedJson::object_t::Container&>(f.value.get_ref<OrderedJson::object_t&>());
    const auto [at, fresh] = f.index.try_emplace(f.key, items.size());
    if (!fresh) {
      items[at->second].second = std::move(v);
      return true;
    }
    if (items.size() >= limits_.max_object_keys) {
      return fail("an object with more than " + std::to_string(limits_.max_object_keys) + " keys");
    }
    items.emplace_back(std::move(f.key), std::move(v));
    return true;
  }

  OrderedLimits limits_;
  std::optional<std::string_view> member_;
  std::vector<Frame> stack_;
  OrderedJson root_;
  int64_t skip_ = 0;        // > 0: inside a skipped member's value, this many levels deep
  bool skip_next_ = false;  // the next value belongs to a skipped member
  std::string error_;
};

std::string run(std::string_view text, Builder* builder) {
  const bool ok = OrderedJson::sax_parse(text.begin(), text.end(), builder);
  if (ok) return "";
  return builder->error().empty() ? "not valid JSON" : builder->error();
}

}  // namespace

std::string parse_ordered(std::string_view text, const OrderedLimits& limits, OrderedJson* out) {
  Builder builder(limits, std::nullopt);
  std::string error = run(text, &builder);
  if (error.empty()) *out = std::move(builder.root());
  return error;
}

std::string parse_ordered_member(std::string_view text, std::string_view key,
                                 const OrderedLimits& limits, OrderedJson* out) {
  Builder builder(limits, key);
  std::string error = run(text, &builder);
  if (!error.empty()) return error;
  OrderedJson& root = builder.root();
  if (!root.is_object()) return "not a JSON object";
  auto it = root.find(std::string(key));
  *out = it == root.end() ? OrderedJson(nullptr) : std::move(it.value());
  return "";
}

}  // namespace dspark::server
