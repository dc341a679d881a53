// A tiny JSON value with a writer that prints like Python's
// json.dumps(obj, indent=1, sort_keys=True, ensure_ascii=False) and a reader.
// Only for conf/'s inspection dumps and their tests; not a general library.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace pasture::conf::json {

class Value {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : type_(Type::Bool), bool_(b) {}
  Value(double n) : type_(Type::Number), num_(n) {}
  Value(int n) : type_(Type::Number), num_(n) {}
  Value(const char* s) : type_(Type::String), str_(s) {}
  Value(std::string s) : type_(Type::String), str_(std::move(s)) {}
  static Value array() { Value v; v.type_ = Type::Array; return v; }
  static Value object() { Value v; v.type_ = Type::Object; return v; }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool as_bool() const { return bool_; }
  double as_number() const { return num_; }
  const std::string& as_string() const { return str_; }
  void set_string(std::string s) { str_ = std::move(s); }
  const std::vector<Value>& items() const { return arr_; }
  std::vector<Value>& items() { return arr_; }
  const std::map<std::string, Value>& members() const { return obj_; }
  std::map<std::string, Value>& members() { return obj_; }

  // Object access (creates the key); turns a null into an object.
  Value& operator[](const std::string& key);
  const Value* find(const std::string& key) const;
  // Array append; turns a null into an array.
  void push(Value v);

  bool operator==(const Value& o) const;
  bool operator!=(const Value& o) const { return !(*this == o); }

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;
  std::vector<Value> arr_;
  std::map<std::string, Value> obj_;  // std::map: sorted keys, as sort_keys=True
};

std::string dump(const Value& v);  // ends with "\n" like dump_pastedeploy.py
Value parse(const std::string& text);  // throws std::runtime_error

}  // namespace pasture::conf::json
