#include "api/quantity.h"

#include <cmath>
#include <map>

namespace minik::api {

std::optional<int64_t> ParseQuantityMilli(const std::string& text) {
  if (text.empty()) {
    return std::nullopt;
  }
  size_t i = 0;
  bool neg = false;
  if (text[i] == '+' || text[i] == '-') {
    neg = text[i] == '-';
    ++i;
  }
  size_t start = i;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) {
    ++i;
  }
  if (i == start) {
    return std::nullopt;
  }
  long double number = std::strtold(text.substr(start, i - start).c_str(), nullptr);
  std::string suffix = text.substr(i);
  static const std::map<std::string, long double> kSuffix = {{"", 1},
                                                             {"n", 1e-9},
                                                             {"u", 1e-6},
                                                             {"m", 1e-3},
                                                             {"k", 1e3},
                                                             {"M", 1e6},
                                                             {"G", 1e9},
                                                             {"T", 1e12},
                                                             {"P", 1e15},
                                                             {"E", 1e18},
                                                             {"Ki", 1024.0L},
                                                             {"Mi", 1048576.0L},
                                                             {"Gi", 1073741824.0L},
                                                             {"Ti", 1099511627776.0L},
                                                             {"Pi", 1125899906842624.0L},
                                                             {"Ei", 1152921504606846976.0L}};
  long double mult;
  auto it = kSuffix.find(suffix);
  if (it != kSuffix.end()) {
    mult = it->second;
  } else if (!suffix.empty() && (suffix[0] == 'e' || suffix[0] == 'E')) {
    char* end = nullptr;
    long exp = std::strtol(suffix.c_str() + 1, &end, 10);
    if (*end != '\0' || suffix.size() < 2 || exp > 18 || exp < -9) {
      return std::nullopt;
    }
    mult = std::pow(10.0L, static_cast<long double>(exp));
  } else {
    return std::nullopt;
  }
  long double milli = std::ceil(number * mult * 1000.0L - 1e-9L);
  if (milli > 9.2e18L) {
    return std::nullopt;
  }
  return static_cast<int64_t>(neg ? -milli : milli);
}

int64_t QuantityMilli(const json& v) {
  if (v.is_number()) {
    return static_cast<int64_t>(std::ceil(v.get<double>() * 1000.0));
  }
  if (v.is_string()) {
    return ParseQuantityMilli(v.get<std::string>()).value_or(0);
  }
  return 0;
}

}  // namespace minik::api
