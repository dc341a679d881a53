#include "conf/json.h"

#include "conf/pyutil.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace pasture::conf::json {

Value& Value::operator[](const std::string& key) {
  if (type_ == Type::Null) type_ = Type::Object;
  return obj_[key];
}

const Value* Value::find(const std::string& key) const {
  auto it = obj_.find(key);
  return it == obj_.end() ? nullptr : &it->second;
}

void Value::push(Value v) {
  if (type_ == Type::Null) type_ = Type::Array;
  arr_.push_back(std::move(v));
}

bool Value::operator==(const Value& o) const {
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::Null:
      return true;
    case Type::Bool:
      return bool_ == o.bool_;
    case Type::Number:
      return num_ == o.num_;
    case Type::String:
      return str_ == o.str_;
    case Type::Array:
      return arr_ == o.arr_;
    case Type::Object:
      return obj_ == o.obj_;
  }
  return false;
}

namespace {

void write_string(std::string& out, const std::string& s) {
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

void write(std::string& out, const Value& v, int level) {
  std::string pad = "\n" + std::string(level + 1, ' ');
  switch (v.type()) {
    case Value::Type::Null: out += "null"; break;
    case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; break;
    case Value::Type::Number: {
      char buf[32];
      double n = v.as_number();
      snprintf(buf, sizeof buf, n == std::floor(n) && std::fabs(n) < 1e15 ? "%.0f" : "%.17g", n);
      out += buf;
      break;
    }
    case Value::Type::String: write_string(out, v.as_string()); break;
    case Value::Type::Array: {
      if (v.items().empty()) { out += "[]"; break; }
      out += "[";
      for (size_t i = 0; i < v.items().size(); ++i) {
        out += (i ? "," : "") + pad;
        write(out, v.items()[i], level + 1);
      }
      out += "\n" + std::string(level, ' ') + "]";
      break;
    }
    case Value::Type::Object: {
      if (v.members().empty()) { out += "{}"; break; }
      out += "{";
      bool first = true;
      for (const auto& [k, m] : v.members()) {
        out += (first ? "" : ",") + pad;
        first = false;
        write_string(out, k);
        out += ": ";
        write(out, m, level + 1);
      }
      out += "\n" + std::string(level, ' ') + "}";
      break;
    }
  }
}

class Reader {
 public:
  explicit Reader(const std::string& t) : t_(t) {}
  Value document() {
    Value v = value();
    ws();
    if (i_ != t_.size()) fail("trailing data");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw std::runtime_error("JSON: " + what + " at offset " + std::to_string(i_));
  }
  void ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\r' || t_[i_] == '\t')) ++i_;
  }
  bool eat(const char* lit) {
    size_t n = std::char_traits<char>::length(lit);
    if (t_.compare(i_, n, lit) != 0) return false;
    i_ += n;
    return true;
  }
  Value value();
  std::string string();
  unsigned hex4();

  const std::string& t_;
  size_t i_ = 0;
};

Value Reader::value() {
  ws();
  if (i_ >= t_.size()) fail("unexpected end");
  char c = t_[i_];
  if (c == '{') {
    ++i_;
    Value v = Value::object();
    ws();
    if (eat("}")) return v;
    do {
      ws();
      std::string k = string();
      ws();
      if (!eat(":")) fail("expected ':'");
      v[k] = value();
      ws();
    } while (eat(","));
    if (!eat("}")) fail("expected '}'");
    return v;
  }
  if (c == '[') {
    ++i_;
    Value v = Value::array();
    ws();
    if (eat("]")) return v;
    do {
      v.push(value());
      ws();
    } while (eat(","));
    if (!eat("]")) fail("expected ']'");
    return v;
  }
  if (c == '"') return Value(string());
  if (eat("null")) return Value();
  if (eat("true")) return Value(true);
  if (eat("false")) return Value(false);
  size_t end = i_;
  while (end < t_.size() && std::string("+-0123456789.eE").find(t_[end]) != std::string::npos) ++end;
  if (end == i_) fail("unexpected character");
  double n = std::stod(t_.substr(i_, end - i_));
  i_ = end;
  return Value(n);
}

unsigned Reader::hex4() {
  if (i_ + 4 > t_.size()) fail("bad \\u escape");
  unsigned v = std::stoul(t_.substr(i_, 4), nullptr, 16);
  i_ += 4;
  return v;
}

std::string Reader::string() {
  if (!eat("\"")) fail("expected string");
  std::string out;
  while (i_ < t_.size() && t_[i_] != '"') {
    char c = t_[i_++];
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i_ >= t_.size()) fail("bad escape");
    char e = t_[i_++];
    switch (e) {
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'u': {
        unsigned cp = hex4();
        if (cp >= 0xd800 && cp < 0xdc00 && eat("\\u")) cp = 0x10000 + ((cp - 0xd800) << 10) + (hex4() - 0xdc00);
        py::append_utf8(out, cp);
        break;
      }
      default: out += e;
    }
  }
  if (!eat("\"")) fail("unterminated string");
  return out;
}

}  // namespace

std::string dump(const Value& v) {
  std::string out;
  write(out, v, 0);
  return out + "\n";
}

Value parse(const std::string& text) { return Reader(text).document(); }

}  // namespace pasture::conf::json
