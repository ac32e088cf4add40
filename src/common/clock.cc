#include "common/clock.h"

#include <openssl/rand.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace minik {
namespace {

std::function<SystemTime()>& ClockFn() {
  static std::function<SystemTime()> fn;
  return fn;
}

void RandomBytes(unsigned char* buf, int n) {
  if (RAND_bytes(buf, n) != 1) {
    for (int i = 0; i < n; ++i) {
      buf[i] = static_cast<unsigned char>(std::rand());
    }
  }
}

}  // namespace

SystemTime Now() {
  return ClockFn() ? ClockFn()() : std::chrono::system_clock::now();
}

void SetClockForTesting(std::function<SystemTime()> clock) {
  ClockFn() = std::move(clock);
}

std::string FormatTime(SystemTime t) {
  time_t secs = std::chrono::system_clock::to_time_t(t);
  tm u;
  gmtime_r(&secs, &u);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &u);
  return buf;
}

std::string FormatMicroTime(SystemTime t) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  time_t secs = static_cast<time_t>(us / 1000000);
  tm u;
  gmtime_r(&secs, &u);
  char buf[48];
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &u);
  snprintf(buf + n, sizeof(buf) - n, ".%06lldZ", static_cast<long long>(us % 1000000));
  return buf;
}

bool ParseTime(const std::string& s, SystemTime* out) {
  tm u{};
  int consumed = 0;
  if (sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &u.tm_year, &u.tm_mon, &u.tm_mday, &u.tm_hour,
             &u.tm_min, &u.tm_sec, &consumed) != 6 ||
      consumed != 19) {
    return false;
  }
  u.tm_year -= 1900;
  u.tm_mon -= 1;
  size_t i = 19;
  long long micros = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    long long scale = 100000;
    while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) {
      micros += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
  }
  long offset = 0;
  if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    ++i;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-')) {
    int hh = 0, mm = 0;
    if (sscanf(s.c_str() + i + 1, "%2d:%2d", &hh, &mm) != 2) {
      return false;
    }
    offset = (hh * 3600 + mm * 60) * (s[i] == '+' ? 1 : -1);
    i += 6;
  } else {
    return false;
  }
  if (i != s.size()) {
    return false;
  }
  time_t secs = timegm(&u) - offset;
  *out = std::chrono::system_clock::from_time_t(secs) + std::chrono::microseconds(micros);
  return true;
}

std::optional<std::chrono::milliseconds> ParseDuration(const std::string& s) {
  if (s == "0") {
    return std::chrono::milliseconds(0);
  }
  static const std::pair<const char*, double> kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60e3}, {"h", 3600e3}, {"us", 1e-3}, {"ns", 1e-6}};
  double total = 0;
  size_t i = 0;
  if (s.empty()) {
    return std::nullopt;
  }
  while (i < s.size()) {
    size_t j = i;
    while (j < s.size() && (std::isdigit(static_cast<unsigned char>(s[j])) || s[j] == '.')) {
      ++j;
    }
    if (j == i) {
      return std::nullopt;
    }
    char* end = nullptr;
    std::string num = s.substr(i, j - i);
    double v = std::strtod(num.c_str(), &end);
    if (*end != '\0') {
      return std::nullopt;
    }
    double scale = 0;
    size_t unit_len = 0;
    for (const auto& [unit, ms] : kUnits) {
      size_t n = std::strlen(unit);
      if (s.compare(j, n, unit) == 0 && n > unit_len) {
        scale = ms;
        unit_len = n;
      }
    }
    if (unit_len == 0) {
      return std::nullopt;
    }
    total += v * scale;
    i = j + unit_len;
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total + 0.5));
}

std::string NewUid() {
  unsigned char b[16];
  RandomBytes(b, 16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  char buf[40];
  snprintf(buf, sizeof(buf), "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
           b[14], b[15]);
  return buf;
}

std::string RandomSuffix(int n) {
  static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string s;
  unsigned char b[64];
  RandomBytes(b, n);
  for (int i = 0; i < n; ++i) {
    s += kAlphabet[b[i] % (sizeof(kAlphabet) - 1)];
  }
  return s;
}

}  // namespace minik
