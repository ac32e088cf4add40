// Cron schedules as Kubernetes' CronJob controller reads them (robfig/cron v3's
// standard parser): the syntax, the errors users see, and next-run times
// across month ends, leap years, weekdays and fixed-offset time zones.

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/clock.h"
#include "controllers/cron.h"

using namespace minik;
using minik::controllers::CheckTimeZone;
using minik::controllers::CronSchedule;

namespace {

SystemTime At(const std::string& s) {
  SystemTime t;
  REQUIRE(ParseTime(s, &t));
  return t;
}

// The first activation after `from`, as RFC 3339 UTC, or "never".
std::string Next(const std::string& spec, const std::string& from, const std::string& tz = "") {
  SystemTime next = CronSchedule::Parse(spec).Next(At(from), tz);
  return next == SystemTime::max() ? "never" : FormatTime(next);
}

// `n` successive activations after `from`.
std::vector<std::string> Runs(const std::string& spec, const std::string& from, int n,
                              const std::string& tz = "") {
  CronSchedule s = CronSchedule::Parse(spec);
  std::vector<std::string> out;
  SystemTime t = At(from);
  for (int i = 0; i < n; ++i) {
    t = s.Next(t, tz);
    if (t == SystemTime::max()) {
      out.push_back("never");
      break;
    }
    out.push_back(FormatTime(t));
  }
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("cron: every minute fires at the start of each following minute", "[cron]") {
  CHECK(Runs("* * * * *", "2024-01-01T00:00:00Z", 3) ==
        V{"2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z", "2024-01-01T00:03:00Z"});
  // Strictly after: a time inside a matching minute, even by a fraction of a
  // second, moves on to the next one.
  CHECK(Next("* * * * *", "2024-01-01T00:00:00.500Z") == "2024-01-01T00:01:00Z");
  CHECK(Next("* * * * *", "2024-01-01T00:00:59Z") == "2024-01-01T00:01:00Z");
  CHECK(Next("* * * * *", "2023-12-31T23:59:30Z") == "2024-01-01T00:00:00Z");
}

TEST_CASE("cron: steps, ranges and lists", "[cron]") {
  CHECK(Runs("*/15 * * * *", "2024-01-01T10:07:00Z", 4) ==
        V{"2024-01-01T10:15:00Z", "2024-01-01T10:30:00Z", "2024-01-01T10:45:00Z",
          "2024-01-01T11:00:00Z"});
  CHECK(Runs("0-10/5 * * * *", "2024-01-01T10:00:00Z", 3) ==
        V{"2024-01-01T10:05:00Z", "2024-01-01T10:10:00Z", "2024-01-01T11:00:00Z"});
  CHECK(Runs("1-10/4 * * * *", "2024-01-01T10:00:00Z", 4) ==
        V{"2024-01-01T10:01:00Z", "2024-01-01T10:05:00Z", "2024-01-01T10:09:00Z",
          "2024-01-01T11:01:00Z"});
  // "N/step" runs from N to the end of the field.
  CHECK(Runs("5/20 * * * *", "2024-01-01T10:00:00Z", 4) ==
        V{"2024-01-01T10:05:00Z", "2024-01-01T10:25:00Z", "2024-01-01T10:45:00Z",
          "2024-01-01T11:05:00Z"});
  CHECK(Runs("0,30 9,17 * * *", "2024-01-01T09:00:00Z", 4) ==
        V{"2024-01-01T09:30:00Z", "2024-01-01T17:00:00Z", "2024-01-01T17:30:00Z",
          "2024-01-02T09:00:00Z"});
  CHECK(Runs("0 8-10 * * *", "2024-01-01T09:30:00Z", 3) ==
        V{"2024-01-01T10:00:00Z", "2024-01-02T08:00:00Z", "2024-01-02T09:00:00Z"});
  CHECK(Next("*/25 */7 * * *", "2024-01-01T21:51:00Z") == "2024-01-02T00:00:00Z");
  CHECK(Next("59 23 31 12 *", "2024-01-01T00:00:00Z") == "2024-12-31T23:59:00Z");
  CHECK(Next("00 05 * * *", "2024-01-01T00:00:00Z") == "2024-01-01T05:00:00Z");
}

TEST_CASE("cron: hourly at half past", "[cron]") {
  CHECK(Next("30 * * * *", "2024-01-01T10:29:59Z") == "2024-01-01T10:30:00Z");
  CHECK(Next("30 * * * *", "2024-01-01T10:30:00Z") == "2024-01-01T11:30:00Z");
  CHECK(Next("30 * * * *", "2024-12-31T23:45:00Z") == "2025-01-01T00:30:00Z");
}

TEST_CASE("cron: daily crosses days, months and years", "[cron]") {
  CHECK(Runs("0 0 * * *", "2024-02-28T12:00:00Z", 3) ==
        V{"2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z"});
  CHECK(Next("0 0 * * *", "2024-01-01T00:00:00.5Z") == "2024-01-02T00:00:00Z");
  CHECK(Next("15 3 * * *", "2023-12-31T04:00:00Z") == "2024-01-01T03:15:00Z");
}

TEST_CASE("cron: weekly on Sunday via 0, 7 and the name", "[cron]") {
  // 2024-01-01 is a Monday.
  const V sundays{"2024-01-07T00:00:00Z", "2024-01-14T00:00:00Z", "2024-01-21T00:00:00Z"};
  CHECK(Runs("0 0 * * 0", "2024-01-01T00:00:00Z", 3) == sundays);
  CHECK(Runs("0 0 * * 7", "2024-01-01T00:00:00Z", 3) == sundays);
  CHECK(Runs("0 0 * * SUN", "2024-01-01T00:00:00Z", 3) == sundays);
  CHECK(Runs("0 0 * * sun", "2024-01-01T00:00:00Z", 3) == sundays);
  CHECK(Runs("@weekly", "2024-01-01T00:00:00Z", 3) == sundays);
  // A range ending at 7 wraps to Sunday: Friday, Saturday, Sunday.
  CHECK(Runs("0 0 * * 5-7", "2024-01-01T00:00:00Z", 4) ==
        V{"2024-01-05T00:00:00Z", "2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z",
          "2024-01-12T00:00:00Z"});
  CHECK(Runs("0 9 * * MON-fri", "2024-01-05T10:00:00Z", 2) ==
        V{"2024-01-08T09:00:00Z", "2024-01-09T09:00:00Z"});
  CHECK(Runs("0 0 * * */2", "2024-01-01T00:00:00Z", 4) ==
        V{"2024-01-02T00:00:00Z", "2024-01-04T00:00:00Z", "2024-01-06T00:00:00Z",
          "2024-01-07T00:00:00Z"});
}

TEST_CASE("cron: month names and ranges", "[cron]") {
  CHECK(Runs("0 0 1 jun-AUG *", "2024-01-01T00:00:00Z", 4) ==
        V{"2024-06-01T00:00:00Z", "2024-07-01T00:00:00Z", "2024-08-01T00:00:00Z",
          "2025-06-01T00:00:00Z"});
  CHECK(Runs("0 0 1 JAN,Jul *", "2024-01-01T00:00:00Z", 2) ==
        V{"2024-07-01T00:00:00Z", "2025-01-01T00:00:00Z"});
  CHECK(Next("0 0 1 */3 *", "2024-02-01T00:00:00Z") == "2024-04-01T00:00:00Z");
}

TEST_CASE("cron: the 31st skips months that are shorter", "[cron]") {
  CHECK(Next("0 0 31 * *", "2024-04-01T00:00:00Z") == "2024-05-31T00:00:00Z");
  CHECK(Runs("0 0 31 * *", "2024-01-01T00:00:00Z", 8) ==
        V{"2024-01-31T00:00:00Z", "2024-03-31T00:00:00Z", "2024-05-31T00:00:00Z",
          "2024-07-31T00:00:00Z", "2024-08-31T00:00:00Z", "2024-10-31T00:00:00Z",
          "2024-12-31T00:00:00Z", "2025-01-31T00:00:00Z"});
  CHECK(Next("0 12 30 * *", "2024-01-30T12:00:00Z") == "2024-03-30T12:00:00Z");
}

TEST_CASE("cron: February 29th fires only in leap years", "[cron]") {
  CHECK(Next("0 0 29 2 *", "2023-01-01T00:00:00Z") == "2024-02-29T00:00:00Z");
  CHECK(Next("0 0 29 2 *", "2024-02-29T00:00:00Z") == "2028-02-29T00:00:00Z");
  CHECK(Next("0 0 29 feb *", "2024-03-01T00:00:00Z") == "2028-02-29T00:00:00Z");
  // 2100 is not a leap year, so the next one is 2104: more than five years
  // away, where robfig/cron gives up.
  CHECK(Next("0 0 29 2 *", "2096-03-01T00:00:00Z") == "never");
  CHECK(Next("0 0 28 2 *", "2100-02-01T00:00:00Z") == "2100-02-28T00:00:00Z");
  CHECK(Next("0 0 * 2 *", "2100-02-28T00:00:00Z") == "2101-02-01T00:00:00Z");
}

TEST_CASE("cron: day of month and day of week match either when both are restricted", "[cron]") {
  // The 13th or any Friday; 2024-09-01 is a Sunday and 2024-10-13 a Sunday.
  CHECK(Runs("0 0 13 * 5", "2024-09-01T00:00:00Z", 8) ==
        V{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z",
          "2024-09-27T00:00:00Z", "2024-10-04T00:00:00Z", "2024-10-11T00:00:00Z",
          "2024-10-13T00:00:00Z", "2024-10-18T00:00:00Z"});
  // With either one a star, both must match.
  CHECK(Runs("0 0 13 * *", "2024-09-01T00:00:00Z", 2) ==
        V{"2024-09-13T00:00:00Z", "2024-10-13T00:00:00Z"});
  CHECK(Runs("0 0 * * 5", "2024-09-01T00:00:00Z", 2) ==
        V{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"});
  CHECK(Runs("0 0 ? * FRI", "2024-09-01T00:00:00Z", 2) ==
        V{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"});
  CHECK(Runs("0 0 13 * ?", "2024-09-01T00:00:00Z", 1) == V{"2024-09-13T00:00:00Z"});
  // As in robfig/cron, "*/1" still counts as a star but a written range does
  // not, so "1-31" with a weekday matches every day.
  CHECK(Runs("0 0 */1 * 5", "2024-09-01T00:00:00Z", 2) ==
        V{"2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"});
  CHECK(Runs("0 0 1-31 * 5", "2024-09-01T00:00:00Z", 2) ==
        V{"2024-09-02T00:00:00Z", "2024-09-03T00:00:00Z"});
  // "*/2" restricts too: odd days or Fridays.
  CHECK(Runs("0 0 */2 * 5", "2024-09-01T00:00:00Z", 4) ==
        V{"2024-09-03T00:00:00Z", "2024-09-05T00:00:00Z", "2024-09-06T00:00:00Z",
          "2024-09-07T00:00:00Z"});
  // The first of the month or a Monday, only in March.
  CHECK(Runs("30 6 1 3 1", "2024-01-01T00:00:00Z", 3) ==
        V{"2024-03-01T06:30:00Z", "2024-03-04T06:30:00Z", "2024-03-11T06:30:00Z"});
}

TEST_CASE("cron: descriptors", "[cron]") {
  CHECK(Next("@yearly", "2024-05-05T10:00:00Z") == "2025-01-01T00:00:00Z");
  CHECK(Next("@annually", "2024-12-31T23:59:59Z") == "2025-01-01T00:00:00Z");
  CHECK(Next("@monthly", "2024-01-31T10:00:00Z") == "2024-02-01T00:00:00Z");
  CHECK(Next("@weekly", "2024-01-07T00:00:00Z") == "2024-01-14T00:00:00Z");
  CHECK(Next("@daily", "2024-02-28T10:00:00Z") == "2024-02-29T00:00:00Z");
  CHECK(Next("@midnight", "2024-02-29T00:00:00Z") == "2024-03-01T00:00:00Z");
  CHECK(Runs("@hourly", "2024-01-01T10:20:00Z", 2) ==
        V{"2024-01-01T11:00:00Z", "2024-01-01T12:00:00Z"});
  // @weekly is a day-of-week schedule with a star day of month: Sundays only.
  CHECK(Next("@weekly", "2024-09-01T00:00:00Z") == "2024-09-08T00:00:00Z");
}

TEST_CASE("cron: @every fires a fixed delay after the given time", "[cron]") {
  CHECK(Runs("@every 90s", "2024-01-01T00:00:00Z", 3) ==
        V{"2024-01-01T00:01:30Z", "2024-01-01T00:03:00Z", "2024-01-01T00:04:30Z"});
  // The delay counts from the whole second, as robfig/cron does.
  CHECK(Next("@every 90s", "2024-01-01T00:00:00.700Z") == "2024-01-01T00:01:30Z");
  CHECK(Next("@every 1h30m", "2024-01-01T00:00:00Z") == "2024-01-01T01:30:00Z");
  CHECK(Next("@every 1.5h", "2024-01-01T00:00:00Z") == "2024-01-01T01:30:00Z");
  CHECK(Next("@every 2m30.9s", "2024-01-01T00:00:00Z") == "2024-01-01T00:02:30Z");
  CHECK(Next("@every 36h", "2024-02-28T12:00:00Z") == "2024-03-01T00:00:00Z");
  // Shorter than a second becomes a second.
  CHECK(Next("@every 500ms", "2024-01-01T00:00:00Z") == "2024-01-01T00:00:01Z");
  CHECK(Next("@every 0", "2024-01-01T00:00:00Z") == "2024-01-01T00:00:01Z");
  CHECK(Next("@every 1500000us", "2024-01-01T00:00:00Z") == "2024-01-01T00:00:01Z");
  // A time zone does not move a fixed delay.
  CHECK(Next("@every 1h", "2024-01-01T00:00:00Z", "Etc/GMT-3") == "2024-01-01T01:00:00Z");
}

TEST_CASE("cron: schedules that never fire give up after five years", "[cron]") {
  CHECK(Next("0 0 30 2 *", "2024-01-01T00:00:00Z") == "never");
  CHECK(Next("0 0 31 2 *", "2024-01-01T00:00:00Z") == "never");
  CHECK(Next("0 0 31 4,6,9,11 *", "2024-01-01T00:00:00Z") == "never");
  CHECK(Next("* * 31 apr *", "2024-01-01T00:00:00Z") == "never");
  // Walking field by field keeps this cheap even when it finds nothing.
  CronSchedule never = CronSchedule::Parse("59 23 30 2 *");
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(never.Next(At("2024-01-01T00:00:00Z")) == SystemTime::max());
  }
  // A time at the edge of the clock's range does not overflow.
  CHECK(CronSchedule::Parse("* * * * *").Next(SystemTime::max()) == SystemTime::max());
  CHECK(CronSchedule::Parse("@every 1h").Next(SystemTime::max()) == SystemTime::max());
}

TEST_CASE("cron: fixed-offset time zones move the wall clock", "[cron]") {
  // Etc/GMT-2 is UTC+2 and Etc/GMT+5 is UTC-5: the names are inverted.
  CHECK(Next("0 9 * * *", "2024-01-01T00:00:00Z", "Etc/GMT-2") == "2024-01-01T07:00:00Z");
  CHECK(Next("0 9 * * *", "2024-01-01T00:00:00Z", "Etc/GMT+5") == "2024-01-01T14:00:00Z");
  CHECK(Next("0 9 * * *", "2024-01-01T00:00:00Z", "UTC") == "2024-01-01T09:00:00Z");
  CHECK(Next("0 9 * * *", "2024-01-01T00:00:00Z", "Etc/UTC") == "2024-01-01T09:00:00Z");
  // Midnight on Monday at UTC+14 is Sunday 10:00 UTC. At 2024-01-01T00:00Z it
  // is already 14:00 on Monday there, so the next one is a week later.
  CHECK(Next("0 0 * * MON", "2024-01-01T00:00:00Z", "Etc/GMT-14") == "2024-01-07T10:00:00Z");
  // The day of month is read in the zone too: the 1st at UTC-12 starts at
  // 12:00 UTC on the 1st.
  CHECK(Next("0 0 1 * *", "2024-01-31T00:00:00Z", "Etc/GMT+12") == "2024-02-01T12:00:00Z");
  CHECK(Next("0 0 29 2 *", "2024-02-28T00:00:00Z", "Etc/GMT-10") == "2024-02-28T14:00:00Z");
  CHECK_THROWS_AS(CronSchedule::Parse("* * * * *").Next(At("2024-01-01T00:00:00Z"), "Asia/Tokyo"),
                  std::invalid_argument);
}

TEST_CASE("cron: time zone names", "[cron]") {
  for (const char* ok : {"", "UTC", "Etc/UTC", "GMT", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0",
                         "Etc/GMT-0", "Etc/GMT+1", "Etc/GMT+12", "Etc/GMT-1", "Etc/GMT-14"}) {
    INFO(ok);
    CHECK_NOTHROW(CheckTimeZone(ok));
  }
  CHECK_THROWS_WITH(
      CheckTimeZone("Europe/Berlin"),
      Catch::Contains("unsupported time zone \"Europe/Berlin\"") && Catch::Contains("Etc/GMT+N"));
  CHECK_THROWS_WITH(CheckTimeZone("America/New_York"), Catch::Contains("unsupported time zone"));
  CHECK_THROWS_WITH(CheckTimeZone("Local"), Catch::Contains("\"Local\" is not allowed"));
  for (const char* bad :
       {"Etc/GMT+13", "Etc/GMT-15", "Etc/GMT+05", "Etc/GMT+", "Etc/GMT+1x", "Etc/GMT--1"}) {
    INFO(bad);
    CHECK_THROWS_WITH(CheckTimeZone(bad), Catch::Contains("unknown time zone"));
  }
  CHECK_THROWS_AS(CheckTimeZone("utc"), std::invalid_argument);
  CHECK_THROWS_AS(CheckTimeZone("Etc/GMT+5:30"), std::invalid_argument);
}

TEST_CASE("cron: errors name the field and the problem", "[cron]") {
  auto error = [](const std::string& spec) {
    try {
      CronSchedule::Parse(spec);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };

  CHECK(error("") == "empty schedule");
  CHECK(error("   ") == "empty schedule");
  CHECK(error("* * * *") ==
        "expected exactly 5 fields (minute hour day-of-month month day-of-week), found 4: "
        "\"* * * *\"");
  CHECK_THAT(error("0 * * * * *"),
             Catch::Contains("expected exactly 5 fields") && Catch::Contains("found 6"));
  CHECK_THAT(error("@every 1h extra words"), Catch::Contains("failed to parse duration"));

  CHECK(error("61 * * * *") == "invalid minute field \"61\": 61 is above the maximum 59");
  CHECK(error("* 24 * * *") == "invalid hour field \"24\": 24 is above the maximum 23");
  CHECK(error("* * 0 * *") == "invalid day-of-month field \"0\": 0 is below the minimum 1");
  CHECK(error("* * 32 * *") == "invalid day-of-month field \"32\": 32 is above the maximum 31");
  CHECK(error("* * * 13 *") == "invalid month field \"13\": 13 is above the maximum 12");
  CHECK(error("* * * 0 *") == "invalid month field \"0\": 0 is below the minimum 1");
  CHECK(error("* * * * 8") == "invalid day-of-week field \"8\": 8 is above the maximum 7");
  CHECK(error("0,5,99999999999 * * * *") ==
        "invalid minute field \"0,5,99999999999\": 99999999999 is above the maximum 59");
  CHECK(error("1-60 * * * *") == "invalid minute field \"1-60\": 60 is above the maximum 59");

  CHECK(error("* * * FOO *") ==
        "invalid month field \"FOO\": \"FOO\" is not a number or month name");
  CHECK(error("* * * * FUNDAY") ==
        "invalid day-of-week field \"FUNDAY\": \"FUNDAY\" is not a number or day name");
  CHECK_THAT(error("* * * * MONDAY"), Catch::Contains("\"MONDAY\" is not a number or day name"));
  CHECK(error("JAN * * * *") == "invalid minute field \"JAN\": \"JAN\" is not a number");
  CHECK_THAT(error("* * * * 1.5"), Catch::Contains("\"1.5\" is not a number"));

  CHECK(error("*/0 * * * *") ==
        "invalid minute field \"*/0\": step must be a positive number, got \"0\" in \"*/0\"");
  CHECK_THAT(error("*/x * * * *"), Catch::Contains("step must be a positive number, got \"x\""));
  CHECK_THAT(error("*/ * * * *"), Catch::Contains("step must be a positive number, got \"\""));
  CHECK_THAT(error("* * * * */mon"), Catch::Contains("step must be a positive number"));
  CHECK_THAT(error("*/-1 * * * *"), Catch::Contains("step must be a positive number"));

  CHECK(error("1-2-3 * * * *") == "invalid minute field \"1-2-3\": too many hyphens in \"1-2-3\"");
  CHECK(error("*/2/3 * * * *") == "invalid minute field \"*/2/3\": too many slashes in \"*/2/3\"");
  CHECK(error("10-5 * * * *") ==
        "invalid minute field \"10-5\": range start 10 is beyond its end 5 in \"10-5\"");
  CHECK_THAT(error("* * * * FRI-MON"), Catch::Contains("range start 5 is beyond its end 1"));
  // Ranges do not wrap around the week, as in robfig/cron; "SAT,SUN" does it.
  CHECK_THAT(error("* * * * SAT-SUN"), Catch::Contains("range start 6 is beyond its end 0"));
  CHECK(error("1,,2 * * * *") == "invalid minute field \"1,,2\": empty list element");
  CHECK_THAT(error("1, * * * *"), Catch::Contains("empty list element"));
  CHECK(error("-5 * * * *") == "invalid minute field \"-5\": missing number in \"-5\"");
  CHECK_THAT(error("5- * * * *"), Catch::Contains("missing number in \"5-\""));
  CHECK(error("*-5 * * * *") ==
        "invalid minute field \"*-5\": \"*\" cannot start a range in \"*-5\"");

  CHECK_THAT(error("@fortnightly"), Catch::StartsWith("unrecognized descriptor \"@fortnightly\""));
  CHECK_THAT(error("@every"), Catch::StartsWith("unrecognized descriptor \"@every\""));
  CHECK_THAT(error("@DAILY"), Catch::StartsWith("unrecognized descriptor"));
  CHECK(error("@every 10") ==
        "failed to parse duration in \"@every 10\": time: missing unit in duration \"10\"");
  CHECK(error("@every 1d") ==
        "failed to parse duration in \"@every 1d\": time: unknown unit \"d\" in duration \"1d\"");
  CHECK(error("@every x") ==
        "failed to parse duration in \"@every x\": time: invalid duration \"x\"");
  CHECK_THAT(error("@every "), Catch::Contains("time: invalid duration \"\""));
  CHECK_THAT(error("@every .s"), Catch::Contains("time: invalid duration"));
  CHECK_THAT(error("@every 9999999999h"), Catch::Contains("time: invalid duration"));

  CHECK_THAT(error("TZ=UTC 0 * * * *"), Catch::Contains("cannot use TZ or CRON_TZ in schedule"));
  CHECK_THAT(error("CRON_TZ=Etc/UTC 0 * * * *"),
             Catch::Contains("cannot use TZ or CRON_TZ in schedule"));
}

TEST_CASE("cron: whitespace between fields is free", "[cron]") {
  CHECK(Next("  30\t9  *   * *  ", "2024-01-01T00:00:00Z") == "2024-01-01T09:30:00Z");
  CHECK(Next("0 0 * * ?", "2024-01-01T00:00:00Z") == "2024-01-02T00:00:00Z");
  // robfig/cron accepts '?' in any field as '*'.
  CHECK(Next("? ? ? ? ?", "2024-01-01T00:00:00Z") == "2024-01-01T00:01:00Z");
}

TEST_CASE("cron: Next agrees with a minute-by-minute scan", "[cron]") {
  // Each schedule with the same rule written as a predicate over wall clock
  // fields, checked by brute force from several starting points and zones.
  struct Case {
    const char* spec;
    bool (*matches)(const tm&);
  };
  const Case cases[] = {
      {"*/7 1-5 * * *",
       [](const tm& w) { return w.tm_min % 7 == 0 && w.tm_hour >= 1 && w.tm_hour <= 5; }},
      {"0 0 13 * 5",
       [](const tm& w) {
         return w.tm_min == 0 && w.tm_hour == 0 && (w.tm_mday == 13 || w.tm_wday == 5);
       }},
      {"15 */6 1,15 * MON",
       [](const tm& w) {
         return w.tm_min == 15 && w.tm_hour % 6 == 0 &&
                (w.tm_mday == 1 || w.tm_mday == 15 || w.tm_wday == 1);
       }},
      {"45 22 * 2,3 sat,SUN",
       [](const tm& w) {
         return w.tm_min == 45 && w.tm_hour == 22 && (w.tm_mon == 1 || w.tm_mon == 2) &&
                (w.tm_wday == 6 || w.tm_wday == 0);
       }},
      {"0 */5 28-31 * *",
       [](const tm& w) { return w.tm_min == 0 && w.tm_hour % 5 == 0 && w.tm_mday >= 28; }},
  };
  const char* starts[] = {"2023-12-30T21:13:27Z", "2024-02-27T23:59:59.900Z",
                          "2024-03-31T05:00:00Z"};
  const std::pair<const char*, int> zones[] = {{"", 0}, {"Etc/GMT+7", -7}, {"Etc/GMT-13", 13}};
  for (const Case& c : cases) {
    CronSchedule s = CronSchedule::Parse(c.spec);
    for (const char* start : starts) {
      for (const auto& [zone, offset_hours] : zones) {
        INFO(c.spec << " from " << start << " in " << zone);
        SystemTime t = At(start);
        for (int run = 0; run < 3; ++run) {
          auto minute = std::chrono::floor<std::chrono::minutes>(t) + std::chrono::minutes(1);
          for (;; minute += std::chrono::minutes(1)) {
            time_t wall = std::chrono::system_clock::to_time_t(minute) + offset_hours * 3600;
            tm w;
            gmtime_r(&wall, &w);
            if (c.matches(w)) {
              break;
            }
          }
          SystemTime next = s.Next(t, zone);
          REQUIRE(FormatTime(next) == FormatTime(minute));
          t = next;
        }
      }
    }
  }
}
