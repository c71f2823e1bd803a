// json.hpp — the small JSON writer behind `postwarden --json` (SPEC §7): objects, arrays,
// strings, integers, booleans and null, written in order into one string. Strings are escaped
// here (quotes, backslashes, control bytes); Redis holds arbitrary bytes, so a byte that is not
// part of valid UTF-8 is written as \u00XX (read as Latin-1) and the output is always valid JSON.
//
// Entry points: JsonWriter, json_quote. Pure; one writer per output, not shared between threads.
#pragma once

#include <concepts>
#include <string>
#include <string_view>
#include <vector>

namespace postwarden::admin {

// "text" as a JSON string literal, quotes included.
std::string json_quote(std::string_view text);

class JsonWriter {
  public:
    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array();
    JsonWriter& end_array();
    JsonWriter& key(std::string_view name);  // inside an object, before each value
    JsonWriter& value(std::string_view text);
    JsonWriter& value(const char* text) { return value(std::string_view(text)); }
    JsonWriter& value(long long number);
    JsonWriter& value(bool flag);
    // Any other integer type (int, std::size_t ...) as a number, never as a bool.
    template <std::integral T>
    requires(!std::same_as<T, bool> && !std::same_as<T, long long>) JsonWriter& value(T number) {
        return value(static_cast<long long>(number));
    }
    JsonWriter& null();
    // key(name).value(v), the common case.
    template <typename T>
    JsonWriter& field(std::string_view name, const T& v) {
        return key(name).value(v);
    }
    // The text so far, with a final newline once everything opened is closed.
    std::string str() const;

  private:
    void separate();  // the comma before every element but the first of its container
    std::string out_;
    std::vector<bool> first_;  // per open container: nothing written in it yet
    bool after_key_ = false;
};

}  // namespace postwarden::admin
