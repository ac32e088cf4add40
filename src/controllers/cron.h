#pragma once
// Cron schedules for the CronJob controller: `spec.schedule` parsed and its next
// activation computed the way Kubernetes does it with robfig/cron v3's standard
// parser, and `spec.timeZone` checked against the zones minik can evaluate.

#include <chrono>
#include <cstdint>
#include <string>

#include "common/clock.h"

namespace minik::controllers {

// A parsed cron schedule. The standard form has five whitespace-separated
// fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or
// JAN-DEC) and day of week (0-6 or SUN-SAT, names case-insensitive). Each field
// is a comma-separated list of `*`, a value `N`, a range `N-M`, or either with a
// step (`*/5`, `1-10/2`, and `N/step` meaning from N to the field's maximum).
// `?` means the same as `*`.
//
// Day of week also accepts 7 for Sunday, as Vixie cron and crontab(5) do.
// robfig/cron v3 rejects 7, so this is the one place minik is more lenient than
// Kubernetes; everything it accepts there means what users expect.
//
// Day of month and day of week combine as in cron: when both are restricted
// (neither starts with `*` or `?`), a day matching either one is enough; when
// either is unrestricted, both must match. As in robfig/cron, `*/1` counts as
// unrestricted but `*/2` does not.
//
// The descriptors @yearly (@annually), @monthly, @weekly, @daily (@midnight)
// and @hourly stand for their usual five-field forms. "@every <duration>"
// takes a Go duration ("1h30m", "90s", "1.5h"); it fires that long after the
// time it is asked about (truncated to the second), is independent of the time
// zone, and, like robfig/cron, treats anything shorter than a second as one
// second and drops fractions of a second.
//
// Schedules are evaluated at whole seconds and always fire at second 0 of a
// minute, since the standard form has no seconds field.
class CronSchedule {
 public:
  // Parses `spec`. Throws std::invalid_argument naming the bad field and the
  // reason, e.g. `invalid minute field "61": 61 is above the maximum 59`. A
  // "TZ=" or "CRON_TZ=" prefix is rejected because Kubernetes takes the zone
  // from `spec.timeZone` instead.
  static CronSchedule Parse(const std::string& spec);

  // The first activation strictly after `t`, with the fields read as wall
  // clock time in zone `tz` (see CheckTimeZone; throws std::invalid_argument
  // for a zone it rejects). Like robfig/cron, gives up when nothing matches
  // within five years (e.g. "0 0 30 2 *", February 30th) and then returns
  // SystemTime::max(), which also stands in for a time past its range.
  SystemTime Next(SystemTime t, const std::string& tz = "") const;

 private:
  CronSchedule() = default;

  // One bit per allowed value; bit 63 records that the field started with `*`
  // or `?`, which decides how day of month and day of week combine.
  uint64_t minute_ = 0;
  uint64_t hour_ = 0;
  uint64_t dom_ = 0;
  uint64_t month_ = 0;
  uint64_t dow_ = 0;
  // Nonzero for "@every": the fixed delay between activations.
  std::chrono::seconds every_{0};
};

// Checks a `spec.timeZone` value. g++ 12's <chrono> has no time zone database
// and the C library's is reachable only through the process-wide TZ variable,
// so minik evaluates only zones with a fixed offset: "" (UTC, minik's choice
// for an unset `spec.timeZone`), "UTC", "Etc/UTC", "GMT", "Etc/GMT", and
// "Etc/GMT+N" / "Etc/GMT-N". As in the IANA database these names follow POSIX
// and are inverted: "Etc/GMT+5" is five hours behind UTC (UTC-5); N runs from
// 0 to 12 after '+' and 0 to 14 after '-'. Anything else, including zones with
// daylight saving time like "Europe/Berlin", throws std::invalid_argument.
void CheckTimeZone(const std::string& tz);

}  // namespace minik::controllers
