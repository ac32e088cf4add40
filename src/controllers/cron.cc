#include "controllers/cron.h"

#include <array>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <vector>

namespace minik::controllers {
namespace {

using std::chrono::days;
using std::chrono::floor;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;
using std::chrono::year_month_day;

// Set when a field starts with `*` or `?` (and has no step above 1); only the
// day fields look at it, to choose between "both must match" and "either".
constexpr uint64_t kStarBit = uint64_t{1} << 63;

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kDayNames = {"sun", "mon", "tue", "wed",
                                                       "thu", "fri", "sat"};

// What one field accepts. `max` is where `*` and `N/step` end; `explicit_max`
// can be higher, so that day of week takes a written 7 (Sunday) without `*`
// meaning eight days.
struct Bounds {
  const char* field;
  unsigned min;
  unsigned max;
  unsigned explicit_max;
  const std::string_view* names;  // names[i] stands for min + i
  size_t name_count;
  const char* name_kind;
};

const Bounds kMinute{"minute", 0, 59, 59, nullptr, 0, nullptr};
const Bounds kHour{"hour", 0, 23, 23, nullptr, 0, nullptr};
const Bounds kDom{"day-of-month", 1, 31, 31, nullptr, 0, nullptr};
const Bounds kMonth{"month", 1, 12, 12, kMonthNames.data(), kMonthNames.size(), "month name"};
const Bounds kDow{"day-of-week", 0, 6, 7, kDayNames.data(), kDayNames.size(), "day name"};

[[noreturn]] void FailField(const Bounds& b, std::string_view field, const std::string& why) {
  throw std::invalid_argument("invalid " + std::string(b.field) + " field \"" + std::string(field) +
                              "\": " + why);
}

std::string Quote(std::string_view s) {
  return "\"" + std::string(s) + "\"";
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t pos = s.find(sep, start);
    if (pos == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, pos - start));
    start = pos + 1;
  }
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    if (c != b[i]) {
      return false;
    }
  }
  return true;
}

// A non-negative decimal number. Values too large for any field are capped
// rather than overflowing, so that they are reported as out of range.
bool ParseNumber(std::string_view s, unsigned* out) {
  if (s.empty()) {
    return false;
  }
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return false;
    }
    v = std::min(v * 10 + static_cast<unsigned>(c - '0'), 1000000u);
  }
  *out = v;
  return true;
}

// One value in a range: a number, or in month and day of week a name.
unsigned ParseValue(const Bounds& b, std::string_view field, std::string_view expr,
                    std::string_view s) {
  for (size_t i = 0; i < b.name_count; ++i) {
    if (EqualsIgnoreCase(s, b.names[i])) {
      return b.min + static_cast<unsigned>(i);
    }
  }
  unsigned v = 0;
  if (ParseNumber(s, &v)) {
    // ParseNumber caps huge values; report those as written.
    if (v > b.explicit_max) {
      FailField(b, field,
                std::string(s) + " is above the maximum " + std::to_string(b.explicit_max));
    }
    return v;
  }
  if (s.empty()) {
    FailField(b, field, "missing number in " + Quote(expr));
  }
  FailField(b, field,
            Quote(s) + " is not a number" + (b.names ? std::string(" or ") + b.name_kind : ""));
}

// The bits for one list element: `*`, `N`, `N-M`, each optionally with `/step`.
uint64_t ParseRange(const Bounds& b, std::string_view field, std::string_view expr) {
  if (expr.empty()) {
    FailField(b, field, "empty list element");
  }
  std::vector<std::string_view> range_and_step = Split(expr, '/');
  if (range_and_step.size() > 2) {
    FailField(b, field, "too many slashes in " + Quote(expr));
  }
  std::vector<std::string_view> low_and_high = Split(range_and_step[0], '-');
  if (low_and_high.size() > 2) {
    FailField(b, field, "too many hyphens in " + Quote(expr));
  }

  unsigned start = 0;
  unsigned end = 0;
  uint64_t star = 0;
  if (low_and_high[0] == "*" || low_and_high[0] == "?") {
    if (low_and_high.size() > 1) {
      FailField(b, field, Quote(low_and_high[0]) + " cannot start a range in " + Quote(expr));
    }
    start = b.min;
    end = b.max;
    star = kStarBit;
  } else {
    start = ParseValue(b, field, expr, low_and_high[0]);
    end = low_and_high.size() == 2 ? ParseValue(b, field, expr, low_and_high[1]) : start;
  }

  unsigned step = 1;
  if (range_and_step.size() == 2) {
    if (!ParseNumber(range_and_step[1], &step) || step == 0) {
      FailField(
          b, field,
          "step must be a positive number, got " + Quote(range_and_step[1]) + " in " + Quote(expr));
    }
    // As in robfig/cron, "N/step" runs from N to the field's maximum.
    if (low_and_high.size() == 1) {
      end = b.max;
    }
    // "*/2" restricts the field, so it no longer counts as a star when the
    // day fields are combined; "*/1" still does.
    if (step > 1) {
      star = 0;
    }
  }

  for (unsigned v : {start, end}) {
    if (v < b.min) {
      FailField(b, field, std::to_string(v) + " is below the minimum " + std::to_string(b.min));
    }
    if (v > b.explicit_max) {
      FailField(b, field,
                std::to_string(v) + " is above the maximum " + std::to_string(b.explicit_max));
    }
  }
  if (start > end) {
    FailField(b, field,
              "range start " + std::to_string(start) + " is beyond its end " + std::to_string(end) +
                  " in " + Quote(expr));
  }

  uint64_t bits = 0;
  for (unsigned v = start; v <= end; v += step) {
    bits |= uint64_t{1} << v;
  }
  // Day of week 7 is Sunday, which the schedule keeps as 0.
  if (&b == &kDow && (bits & (uint64_t{1} << 7))) {
    bits = (bits & ~(uint64_t{1} << 7)) | 1;
  }
  return bits | star;
}

uint64_t ParseField(const Bounds& b, std::string_view field) {
  uint64_t bits = 0;
  for (std::string_view expr : Split(field, ',')) {
    bits |= ParseRange(b, field, expr);
  }
  return bits;
}

uint64_t All(const Bounds& b) {
  uint64_t bits = 0;
  for (unsigned v = b.min; v <= b.max; ++v) {
    bits |= uint64_t{1} << v;
  }
  return bits | kStarBit;
}

// Go's time.ParseDuration, which "@every" uses, with its error messages:
// a sequence of decimal numbers, each with an optional fraction and a unit
// (ns, us, µs, ms, s, m, h), optionally signed; "0" alone needs no unit.
std::chrono::nanoseconds ParseGoDuration(std::string_view orig) {
  const std::string invalid = "time: invalid duration " + Quote(orig);
  constexpr uint64_t kLimit = uint64_t{1} << 63;
  std::string_view s = orig;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") {
    return std::chrono::nanoseconds(0);
  }
  if (s.empty()) {
    throw std::invalid_argument(invalid);
  }
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  uint64_t total = 0;
  while (!s.empty()) {
    if (!(s[0] == '.' || is_digit(s[0]))) {
      throw std::invalid_argument(invalid);
    }
    uint64_t v = 0;
    size_t i = 0;
    for (; i < s.size() && is_digit(s[i]); ++i) {
      if (v > kLimit / 10) {
        throw std::invalid_argument(invalid);
      }
      v = v * 10 + static_cast<uint64_t>(s[i] - '0');
      if (v > kLimit) {
        throw std::invalid_argument(invalid);
      }
    }
    bool pre = i > 0;
    s.remove_prefix(i);
    // The fraction keeps only the digits that fit; later ones cannot change
    // the result at nanosecond precision.
    uint64_t f = 0;
    double scale = 1;
    bool post = false;
    if (!s.empty() && s[0] == '.') {
      s.remove_prefix(1);
      bool overflow = false;
      size_t j = 0;
      for (; j < s.size() && is_digit(s[j]); ++j) {
        if (overflow) {
          continue;
        }
        if (f > (std::numeric_limits<uint64_t>::max() >> 1) / 10) {
          overflow = true;
          continue;
        }
        uint64_t next = f * 10 + static_cast<uint64_t>(s[j] - '0');
        if (next > kLimit) {
          overflow = true;
          continue;
        }
        f = next;
        scale *= 10;
      }
      post = j > 0;
      s.remove_prefix(j);
    }
    if (!pre && !post) {
      throw std::invalid_argument(invalid);
    }
    size_t u = 0;
    while (u < s.size() && s[u] != '.' && !is_digit(s[u])) {
      ++u;
    }
    if (u == 0) {
      throw std::invalid_argument("time: missing unit in duration " + Quote(orig));
    }
    std::string_view unit_name = s.substr(0, u);
    s.remove_prefix(u);
    uint64_t unit = 0;
    if (unit_name == "ns") {
      unit = 1;
    } else if (unit_name == "us" || unit_name == "\u00b5s" || unit_name == "\u03bcs") {
      unit = 1000;
    } else if (unit_name == "ms") {
      unit = 1000000;
    } else if (unit_name == "s") {
      unit = 1000000000;
    } else if (unit_name == "m") {
      unit = 60 * uint64_t{1000000000};
    } else if (unit_name == "h") {
      unit = 3600 * uint64_t{1000000000};
    } else {
      throw std::invalid_argument("time: unknown unit " + Quote(unit_name) + " in duration " +
                                  Quote(orig));
    }
    if (v > kLimit / unit) {
      throw std::invalid_argument(invalid);
    }
    v *= unit;
    if (f > 0) {
      v += static_cast<uint64_t>(static_cast<double>(f) * (static_cast<double>(unit) / scale));
      if (v > kLimit) {
        throw std::invalid_argument(invalid);
      }
    }
    total += v;
    if (total > kLimit) {
      throw std::invalid_argument(invalid);
    }
  }
  if (neg) {
    // -2^63 is representable; the wrap-around of the negation is exact.
    return std::chrono::nanoseconds(static_cast<int64_t>(~total + 1));
  }
  if (total > kLimit - 1) {
    throw std::invalid_argument(invalid);
  }
  return std::chrono::nanoseconds(static_cast<int64_t>(total));
}

// The offset from UTC of a zone CheckTimeZone accepts; throws otherwise.
seconds ZoneOffset(const std::string& tz) {
  if (tz.empty() || tz == "UTC" || tz == "Etc/UTC" || tz == "GMT" || tz == "Etc/GMT" ||
      tz == "Etc/GMT0") {
    return seconds(0);
  }
  constexpr std::string_view kGmtPrefix = "Etc/GMT";
  std::string_view s = tz;
  if (s.size() > kGmtPrefix.size() && s.substr(0, kGmtPrefix.size()) == kGmtPrefix &&
      (s[kGmtPrefix.size()] == '+' || s[kGmtPrefix.size()] == '-')) {
    bool behind = s[kGmtPrefix.size()] == '+';
    std::string_view digits = s.substr(kGmtPrefix.size() + 1);
    unsigned n = 0;
    // The database spells these without leading zeros ("Etc/GMT+5", not
    // "Etc/GMT+05"), so other spellings are unknown names, not aliases.
    bool canonical = !(digits.size() > 1 && digits[0] == '0');
    if (ParseNumber(digits, &n) && canonical && n <= (behind ? 12u : 14u)) {
      return behind ? -hours(n) : hours(n);
    }
    throw std::invalid_argument("unknown time zone " + Quote(tz) +
                                ": fixed-offset zones run from Etc/GMT-14 to Etc/GMT+12");
  }
  if (tz == "Local") {
    throw std::invalid_argument(
        "time zone \"Local\" is not allowed: name an explicit zone such as \"Etc/UTC\"");
  }
  throw std::invalid_argument("unsupported time zone " + Quote(tz) +
                              ": minik evaluates only UTC and the fixed-offset zones "
                              "Etc/GMT+N and Etc/GMT-N");
}

bool Has(uint64_t bits, unsigned v) {
  return (bits >> v) & 1;
}

}  // namespace

CronSchedule CronSchedule::Parse(const std::string& spec) {
  if (spec.find_first_not_of(" \t\n\r\v\f") == std::string::npos) {
    throw std::invalid_argument("empty schedule");
  }
  if (spec.rfind("TZ=", 0) == 0 || spec.rfind("CRON_TZ=", 0) == 0) {
    throw std::invalid_argument("cannot use TZ or CRON_TZ in schedule " + Quote(spec) +
                                ": use spec.timeZone instead");
  }

  CronSchedule s;
  if (spec[0] == '@') {
    const std::string every = "@every ";
    if (spec.rfind(every, 0) == 0) {
      std::chrono::nanoseconds d{0};
      try {
        d = ParseGoDuration(std::string_view(spec).substr(every.size()));
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("failed to parse duration in " + Quote(spec) + ": " + e.what());
      }
      // robfig/cron's Every: at least a second, and whole seconds only.
      s.every_ = std::max(floor<seconds>(d), seconds(1));
      return s;
    }
    s.minute_ = 1;
    s.hour_ = 1;
    s.dom_ = All(kDom);
    s.month_ = All(kMonth);
    s.dow_ = All(kDow);
    if (spec == "@yearly" || spec == "@annually") {
      s.dom_ = uint64_t{1} << 1;
      s.month_ = uint64_t{1} << 1;
    } else if (spec == "@monthly") {
      s.dom_ = uint64_t{1} << 1;
    } else if (spec == "@weekly") {
      s.dow_ = 1;
    } else if (spec == "@daily" || spec == "@midnight") {
      // Every field already says so.
    } else if (spec == "@hourly") {
      s.hour_ = All(kHour);
    } else {
      throw std::invalid_argument(
          "unrecognized descriptor " + Quote(spec) +
          ": expected @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly or "
          "@every <duration>");
    }
    return s;
  }

  std::vector<std::string_view> fields;
  std::string_view rest = spec;
  const char* kSpace = " \t\n\r\v\f";
  for (;;) {
    size_t begin = rest.find_first_not_of(kSpace);
    if (begin == std::string_view::npos) {
      break;
    }
    rest.remove_prefix(begin);
    size_t end = std::min(rest.find_first_of(kSpace), rest.size());
    fields.push_back(rest.substr(0, end));
    rest.remove_prefix(end);
  }
  if (fields.size() != 5) {
    throw std::invalid_argument(
        "expected exactly 5 fields (minute hour day-of-month month day-of-week), found " +
        std::to_string(fields.size()) + ": " + Quote(spec));
  }
  s.minute_ = ParseField(kMinute, fields[0]);
  s.hour_ = ParseField(kHour, fields[1]);
  s.dom_ = ParseField(kDom, fields[2]);
  s.month_ = ParseField(kMonth, fields[3]);
  s.dow_ = ParseField(kDow, fields[4]);
  return s;
}

SystemTime CronSchedule::Next(SystemTime t, const std::string& tz) const {
  const seconds offset = ZoneOffset(tz);
  const sys_seconds last = floor<seconds>(SystemTime::max());
  // Arithmetic is in whole seconds so that it cannot overflow the clock's
  // nanosecond representation; only the result is checked against its range.
  auto to_system = [&](sys_seconds result) {
    if (result > last) {
      return SystemTime::max();
    }
    return SystemTime(std::chrono::duration_cast<SystemTime::duration>(result.time_since_epoch()));
  };

  if (every_ > seconds(0)) {
    return to_system(floor<seconds>(t) + every_);
  }

  // This follows robfig/cron's SpecSchedule.Next: walk from the largest field
  // to the smallest, and while a field does not match, reset the smaller ones
  // (once) and step the field; when it wraps, start over from the month, since
  // the larger fields may no longer match. With a fixed offset there is no
  // daylight saving time, so wall clock time is UTC shifted by `offset`.
  sys_seconds lt = floor<seconds>(t) + seconds(1) + offset;
  bool added = false;
  const int year_limit = static_cast<int>(year_month_day(floor<days>(lt)).year()) + 5;

  for (;;) {
    year_month_day ymd(floor<days>(lt));
    if (static_cast<int>(ymd.year()) > year_limit) {
      return SystemTime::max();
    }

    bool wrapped = false;
    while (!Has(month_, static_cast<unsigned>(ymd.month()))) {
      if (!added) {
        added = true;
        lt = sys_days(ymd.year() / ymd.month() / 1);
      }
      year_month_day next_month = year_month_day(floor<days>(lt)) + std::chrono::months(1);
      lt = sys_days(next_month) + (lt - floor<days>(lt));
      ymd = year_month_day(floor<days>(lt));
      if (ymd.month() == std::chrono::January) {
        wrapped = true;
        break;
      }
    }
    if (wrapped) {
      continue;
    }

    auto day_matches = [&](const year_month_day& d) {
      bool dom = Has(dom_, static_cast<unsigned>(d.day()));
      bool dow = Has(dow_, std::chrono::weekday(sys_days(d)).c_encoding());
      if ((dom_ & kStarBit) || (dow_ & kStarBit)) {
        return dom && dow;
      }
      return dom || dow;
    };
    while (!day_matches(ymd)) {
      if (!added) {
        added = true;
        lt = floor<days>(lt);
      }
      lt += days(1);
      ymd = year_month_day(floor<days>(lt));
      if (ymd.day() == std::chrono::day(1)) {
        wrapped = true;
        break;
      }
    }
    if (wrapped) {
      continue;
    }

    auto time_of_day = [&] { return std::chrono::hh_mm_ss<seconds>(lt - floor<days>(lt)); };
    while (!Has(hour_, static_cast<unsigned>(time_of_day().hours().count()))) {
      if (!added) {
        added = true;
        lt = floor<hours>(lt);
      }
      lt += hours(1);
      if (time_of_day().hours().count() == 0) {
        wrapped = true;
        break;
      }
    }
    if (wrapped) {
      continue;
    }

    while (!Has(minute_, static_cast<unsigned>(time_of_day().minutes().count()))) {
      if (!added) {
        added = true;
        lt = floor<minutes>(lt);
      }
      lt += minutes(1);
      if (time_of_day().minutes().count() == 0) {
        wrapped = true;
        break;
      }
    }
    if (wrapped) {
      continue;
    }

    // The standard form fires at second 0 only.
    if (time_of_day().seconds().count() != 0) {
      added = true;
      lt = floor<minutes>(lt) + minutes(1);
      continue;
    }
    return to_system(lt - offset);
  }
}

void CheckTimeZone(const std::string& tz) {
  ZoneOffset(tz);
}

}  // namespace minik::controllers
