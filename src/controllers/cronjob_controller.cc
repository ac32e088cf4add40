// The CronJob controller (Kubernetes' cronjob controller v2): at each time
// `spec.schedule` (read in `spec.timeZone`) names, it creates a Job from
// `spec.jobTemplate` named `<cronjob>-<scheduled time in minutes since the
// epoch>`, so that a time is never run twice. It honours
// `startingDeadlineSeconds`, `concurrencyPolicy` (Allow, Forbid, Replace) and
// `suspend`, keeps `status.active`, `lastScheduleTime` and
// `lastSuccessfulTime`, deletes the oldest finished Jobs beyond the history
// limits, and requeues each CronJob for its next scheduled time.

#include <algorithm>
#include <ctime>
#include <optional>
#include <set>

#include "client/events.h"
#include "common/log.h"
#include "controllers/controller.h"
#include "controllers/cron.h"
#include "controllers/util.h"
#include "controllers/workloads.h"

namespace minik::controllers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kScheduledTimestamp = "batch.kubernetes.io/cronjob-scheduled-timestamp";
// Requeue a little after the scheduled time, in case clocks disagree slightly.
constexpr milliseconds kNextScheduleDelta{100};

// "Complete" or "Failed" when the Job finished, else "".
std::string FinishedType(const json& job) {
  const json* conds = Find(job, "status.conditions");
  if (!conds || !conds->is_array()) {
    return "";
  }
  for (const auto& c : *conds) {
    std::string type = c.value("type", "");
    if ((type == "Complete" || type == "Failed") && c.value("status", "") == "True") {
      return type;
    }
  }
  return "";
}

SystemTime TimeAt(const json& obj, const char* path, bool* ok = nullptr) {
  SystemTime t{};
  const json* v = Find(obj, path);
  bool parsed = v && v->is_string() && ParseTime(v->get<std::string>(), &t);
  if (ok) {
    *ok = parsed;
  }
  return t;
}

// The UTC offset of a zone CheckTimeZone accepted: UTC or Etc/GMT±N (which
// are inverted, as in POSIX: Etc/GMT+5 is UTC-5).
seconds ZoneOffset(const std::string& tz) {
  constexpr std::string_view kPrefix = "Etc/GMT";
  if (tz.size() > kPrefix.size() + 1 && tz.compare(0, kPrefix.size(), kPrefix) == 0 &&
      (tz[kPrefix.size()] == '+' || tz[kPrefix.size()] == '-')) {
    int64_t hours = std::atoll(tz.c_str() + kPrefix.size() + 1);
    return seconds(tz[kPrefix.size()] == '+' ? -hours * 3600 : hours * 3600);
  }
  return seconds(0);
}

std::string FormatWith(SystemTime t, const char* format) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

// RFC 3339 in the CronJob's zone, as Go's time.RFC3339 writes it ("Z" for UTC).
std::string FormatInZone(SystemTime t, const std::string& tz) {
  seconds offset = ZoneOffset(tz);
  if (offset.count() == 0) {
    return FormatTime(t);
  }
  int64_t minutes = std::abs(offset.count()) / 60;
  char zone[8];
  std::snprintf(zone, sizeof zone, "%c%02d:%02d", offset.count() < 0 ? '-' : '+',
                static_cast<int>(minutes / 60), static_cast<int>(minutes % 60));
  return FormatWith(t + offset, "%Y-%m-%dT%H:%M:%S") + zone;
}

// How many scheduled times were missed since the last one that ran.
enum class Missed { kNone, kFew, kMany };

struct RecentSchedule {
  SystemTime earliest{};
  std::optional<SystemTime> most_recent;  // the latest scheduled time not after now
  Missed missed = Missed::kNone;
  std::string error;
};

// Kubernetes' mostRecentScheduleTime: from the last scheduled time (or the
// CronJob's creation, or now - startingDeadlineSeconds when that is later),
// the most recent time a Job should have been created, if any.
RecentSchedule MostRecentScheduleTime(const json& cj, SystemTime now, const CronSchedule& sched,
                                      const std::string& tz, bool include_deadline) {
  RecentSchedule r;
  r.earliest = TimeAt(cj, "metadata.creationTimestamp");
  bool has_last = false;
  SystemTime last = TimeAt(cj, "status.lastScheduleTime", &has_last);
  if (has_last) {
    r.earliest = last;
  }
  const json* deadline = Find(cj, "spec.startingDeadlineSeconds");
  if (include_deadline && deadline && deadline->is_number_integer()) {
    SystemTime scheduling_deadline = now - seconds(deadline->get<int64_t>());
    if (scheduling_deadline > r.earliest) {
      r.earliest = scheduling_deadline;
    }
  }
  SystemTime t1 = sched.Next(r.earliest, tz);
  if (now < t1) {
    return r;  // also when the schedule never fires (t1 is SystemTime::max())
  }
  SystemTime t2 = sched.Next(t1, tz);
  if (now < t2) {
    r.most_recent = t1;
    return r;
  }
  // Count the missed times roughly by the distance between two of them, then
  // walk the last few precisely.
  int64_t between = std::chrono::round<seconds>(t2 - t1).count();
  if (between < 1) {
    r.error = "time difference between two schedules is less than 1 second";
    return r;
  }
  int64_t elapsed = std::chrono::duration_cast<seconds>(now - t1).count();
  int64_t missed = elapsed / between + 1;
  SystemTime potential_earliest = t1 + seconds((missed - 2) * between);
  for (SystemTime t = sched.Next(potential_earliest, tz); t <= now; t = sched.Next(t, tz)) {
    r.most_recent = t;
  }
  r.missed = missed > 100 ? Missed::kMany : missed > 0 ? Missed::kFew : Missed::kNone;
  return r;
}

// How long until the CronJob's next scheduled time (plus a small delta);
// nothing when the schedule never fires again.
std::optional<milliseconds> NextScheduleDelay(const json& cj, SystemTime now,
                                              const CronSchedule& sched, const std::string& tz) {
  RecentSchedule r = MostRecentScheduleTime(cj, now, sched, tz, false);
  SystemTime base = now;
  if (r.error.empty()) {
    if (r.most_recent) {
      base = *r.most_recent;
    } else if (r.missed == Missed::kNone) {
      base = r.earliest;
    }
  }
  SystemTime next = sched.Next(base, tz);
  if (next == SystemTime::max()) {
    return std::nullopt;
  }
  auto d = std::chrono::ceil<milliseconds>(next - now) + kNextScheduleDelta;
  return std::max(d, milliseconds(0));
}

class CronJobController : public QueueController {
 public:
  explicit CronJobController(Context ctx) : QueueController("cronjob", ctx, 1) {
    // Events come from "cronjob-controller", as `kubectl describe` shows in Kubernetes.
    ctx_.events = std::make_shared<client::EventRecorder>(ctx_.client, "cronjob-controller");
    cronjobs_ = ctx_.informers->For(client::resources::kCronJobs);
    jobs_ = ctx_.informers->For(client::resources::kJobs);
    cronjobs_->AddHandlers(
        {[this](const client::Object& o) { EnqueueObject(o); },
         [this](const client::Object&, const client::Object& o) { EnqueueObject(o); }, nullptr});
    jobs_->AddHandlers({[this](const client::Object& j) { JobChanged(*j); },
                        [this](const client::Object& old, const client::Object& j) {
                          JobChanged(*j);
                          if (OwnerKey(*old) != OwnerKey(*j)) {
                            JobChanged(*old);
                          }
                        },
                        [this](const client::Object& j) { JobChanged(*j); }});
  }

 private:
  static std::string OwnerKey(const json& job) {
    const json* ref = ControllerRef(job);
    if (!ref || ref->value("kind", "") != "CronJob") {
      return "";
    }
    return GetString(job, "metadata.namespace") + "/" + ref->value("name", "");
  }

  void JobChanged(const json& job) {
    if (std::string key = OwnerKey(job); !key.empty()) {
      Enqueue(key);
    }
  }

  static std::string JobsPath(const json& cj) {
    return client::resources::kJobs.Collection(GetString(cj, "metadata.namespace"));
  }
  static std::string JobPath(const json& cj, const std::string& name) {
    return client::resources::kJobs.Item(GetString(cj, "metadata.namespace"), name);
  }

  void Sync(const std::string& key) override {
    client::Object obj = cronjobs_->Get(key);
    if (!obj) {
      return;
    }
    json cj = *obj;
    std::string name = GetString(cj, "metadata.name");
    std::vector<json> jobs;
    for (const auto& j : jobs_->ListNamespace(GetString(cj, "metadata.namespace"))) {
      const json* ref = ControllerRef(*j);
      if (ref && ref->value("kind", "") == "CronJob" && ref->value("name", "") == name) {
        jobs.push_back(*j);
      }
    }
    bool update = CleanUpFinishedJobs(cj, jobs);
    std::vector<std::pair<std::string, std::string>> status_events;
    std::optional<milliseconds> requeue = SyncCronJob(cj, jobs, &update, &status_events);
    if (update) {
      if (cj.contains("status") && cj["status"].is_object() && cj["status"].contains("active") &&
          cj["status"]["active"].empty()) {
        cj["status"].erase("active");
      }
      try {
        ctx_.client->Put(
            client::resources::kCronJobs.Item(GetString(cj, "metadata.namespace"), name) +
                "/status",
            cj);
      } catch (const client::ApiError& e) {
        if (e.code == 404) {
          return;
        }
        if (e.code != 409) {
          throw;
        }
        // A newer CronJob: do it again with that one.
        Enqueue(key);
        return;
      }
    }
    for (const auto& [reason, message] : status_events) {
      ctx_.events->Event(cj, "Normal", reason, message);
    }
    if (requeue) {
      EnqueueAfter(key, *requeue);
    }
  }

  static bool InActiveList(const json& cj, const std::string& uid) {
    const json* active = Find(cj, "status.active");
    return active && active->is_array() &&
           std::any_of(active->begin(), active->end(),
                       [&](const json& r) { return r.value("uid", "") == uid; });
  }

  static bool InActiveListByName(const json& cj, const std::string& name) {
    const json* active = Find(cj, "status.active");
    return active && active->is_array() &&
           std::any_of(active->begin(), active->end(),
                       [&](const json& r) { return r.value("name", "") == name; });
  }

  static void DeleteFromActiveList(json& cj, const std::string& uid) {
    if (!cj.contains("status") || !cj["status"].is_object() || !cj["status"].contains("active") ||
        !cj["status"]["active"].is_array()) {
      return;
    }
    json kept = json::array();
    for (const auto& r : cj["status"]["active"]) {
      if (r.value("uid", "") != uid) {
        kept.push_back(r);
      }
    }
    cj["status"]["active"] = kept;
  }

  // Updates `cj` (its status) for the Jobs it owns and creates the Job for
  // the most recent unmet scheduled time; returns when to look again. Events
  // about status changes go to `status_events`, recorded once the status is
  // written (a conflict would make the next sync see the same change again).
  std::optional<milliseconds> SyncCronJob(
      json& cj, const std::vector<json>& jobs, bool* update,
      std::vector<std::pair<std::string, std::string>>* status_events) {
    SystemTime now = Now();
    std::set<std::string> children;
    for (const auto& j : jobs) {
      std::string uid = GetString(j, "metadata.uid");
      std::string job_name = GetString(j, "metadata.name");
      children.insert(uid);
      bool found = InActiveList(cj, uid);
      std::string finished = FinishedType(j);
      if (!found && finished.empty()) {
        // Our cache of the CronJob may lag the status that lists this Job.
        json fresh;
        try {
          fresh = ctx_.client->Get(client::resources::kCronJobs.Item(
              GetString(cj, "metadata.namespace"), GetString(cj, "metadata.name")));
        } catch (const client::ApiError& e) {
          if (e.code == 404) {
            return std::nullopt;
          }
          throw;
        }
        if (InActiveList(fresh, uid)) {
          cj = fresh;
          continue;
        }
        ctx_.events->Event(cj, "Warning", "UnexpectedJob",
                           "Saw a job that the controller did not create or forgot: " + job_name);
      } else if (found && !finished.empty()) {
        DeleteFromActiveList(cj, uid);
        status_events->emplace_back("SawCompletedJob",
                                    "Saw completed job: " + job_name + ", condition: " + finished);
        *update = true;
      }
      if (finished == "Complete") {
        // A Job need not be active to count as the last success.
        bool has_completion = false, has_last = false;
        SystemTime completion = TimeAt(j, "status.completionTime", &has_completion);
        SystemTime last = TimeAt(cj, "status.lastSuccessfulTime", &has_last);
        if (has_completion && (!has_last || completion > last)) {
          cj["status"]["lastSuccessfulTime"] = FormatTime(completion);
          *update = true;
        }
      }
    }
    // Forget active Jobs that are gone, so the CronJob is not stuck with them.
    if (const json* active = Find(cj, "status.active"); active && active->is_array()) {
      for (const json& r : json(*active)) {
        if (children.count(r.value("uid", ""))) {
          continue;
        }
        try {
          // Ask the API server: the Job cache may not have seen a new Job yet.
          ctx_.client->Get(JobPath(cj, r.value("name", "")));
        } catch (const client::ApiError& e) {
          if (e.code != 404) {
            throw;
          }
          status_events->emplace_back("MissingJob",
                                      "Active job went missing: " + r.value("name", ""));
          DeleteFromActiveList(cj, r.value("uid", ""));
          *update = true;
        }
      }
    }

    if (Find(cj, "metadata.deletionTimestamp")) {
      return std::nullopt;
    }
    std::string tz = GetString(cj, "spec.timeZone");
    if (Find(cj, "spec.timeZone") && Find(cj, "spec.timeZone")->is_string()) {
      try {
        CheckTimeZone(tz);
      } catch (const std::invalid_argument& e) {
        ctx_.events->Event(cj, "Warning", "UnknownTimeZone",
                           "invalid timeZone: \"" + tz + "\": " + e.what());
        return std::nullopt;
      }
    }
    const json* suspend = Find(cj, "spec.suspend");
    if (suspend && suspend->is_boolean() && suspend->get<bool>()) {
      return std::nullopt;
    }
    std::string schedule = GetString(cj, "spec.schedule");
    std::optional<CronSchedule> parsed;
    try {
      parsed = CronSchedule::Parse(schedule);
    } catch (const std::invalid_argument& e) {
      ctx_.events->Event(cj, "Warning", "UnparseableSchedule",
                         "unparseable schedule: \"" + schedule + "\" : " + e.what());
      return std::nullopt;
    }
    const CronSchedule& sched = *parsed;

    RecentSchedule recent = MostRecentScheduleTime(cj, now, sched, tz, true);
    if (!recent.error.empty()) {
      ctx_.events->Event(cj, "Warning", "InvalidSchedule",
                         "invalid schedule: " + schedule + " : " + recent.error);
      return std::nullopt;
    }
    if (!recent.most_recent) {
      // Nothing is due: wait for the next time.
      return NextScheduleDelay(cj, now, sched, tz);
    }
    if (recent.missed == Missed::kMany) {
      ctx_.events->Event(cj, "Warning", "TooManyMissedTimes",
                         "too many missed start times. Set or decrease "
                         ".spec.startingDeadlineSeconds or check clock skew");
      log::Info("cronjob controller: {}: too many missed start times", KeyOf(cj));
    }
    SystemTime scheduled = *recent.most_recent;

    const json* deadline = Find(cj, "spec.startingDeadlineSeconds");
    if (deadline && deadline->is_number_integer() &&
        scheduled + seconds(deadline->get<int64_t>()) < now) {
      ctx_.events->Event(cj, "Warning", "MissSchedule",
                         "Missed scheduled time to start a job: " +
                             FormatWith(scheduled, "%a, %d %b %Y %H:%M:%S +0000"));
      return NextScheduleDelay(cj, now, sched, tz);
    }
    std::string job_name =
        GetString(cj, "metadata.name") + "-" +
        std::to_string(
            std::chrono::duration_cast<std::chrono::minutes>(scheduled.time_since_epoch()).count());
    bool has_last = false;
    SystemTime last = TimeAt(cj, "status.lastScheduleTime", &has_last);
    if (InActiveListByName(cj, job_name) || (has_last && last == scheduled)) {
      return NextScheduleDelay(cj, now, sched, tz);  // already done
    }
    std::string policy = GetString(cj, "spec.concurrencyPolicy", "Allow");
    const json* active = Find(cj, "status.active");
    bool any_active = active && active->is_array() && !active->empty();
    if (policy == "Forbid" && any_active) {
      ctx_.events->Event(cj, "Normal", "JobAlreadyActive",
                         "Not starting job because prior execution is running and concurrency "
                         "policy is Forbid");
      return NextScheduleDelay(cj, now, sched, tz);
    }
    if (policy == "Replace" && any_active) {
      for (const json& r : json(*active)) {
        json job;
        try {
          job = ctx_.client->Get(JobPath(cj, r.value("name", "")));
        } catch (const client::ApiError& e) {
          ctx_.events->Event(cj, "Warning", "FailedGet", std::string("Get job: ") + e.what());
          throw;
        }
        if (!DeleteJob(cj, job)) {
          throw std::runtime_error("could not replace job " + KeyOf(job));
        }
        *update = true;
      }
    }

    json created;
    try {
      created = ctx_.client->Post(JobsPath(cj), JobFromTemplate(cj, scheduled, job_name, tz));
      ctx_.events->Event(cj, "Normal", "SuccessfulCreate",
                         "Created job " + GetString(created, "metadata.name"));
    } catch (const client::ApiError& e) {
      if (e.code != 409) {
        ctx_.events->Event(cj, "Warning", "FailedCreate",
                           std::string("Error creating job: ") + e.what());
        throw;
      }
      // Created before (our status may not say so yet): adopt it if it is ours.
      created = ctx_.client->Get(JobPath(cj, job_name));
      if (!IsControlledBy(created, GetString(cj, "metadata.uid")) ||
          InActiveList(cj, GetString(created, "metadata.uid"))) {
        return NextScheduleDelay(cj, now, sched, tz);
      }
    }
    json& st = cj["status"];
    if (!st.is_object()) {
      st = json::object();
    }
    if (!st.contains("active") || !st["active"].is_array()) {
      st["active"] = json::array();
    }
    st["active"].push_back({{"apiVersion", "batch/v1"},
                            {"kind", "Job"},
                            {"name", GetString(created, "metadata.name")},
                            {"namespace", GetString(created, "metadata.namespace")},
                            {"resourceVersion", GetString(created, "metadata.resourceVersion")},
                            {"uid", GetString(created, "metadata.uid")}});
    st["lastScheduleTime"] = FormatTime(scheduled);
    *update = true;
    return NextScheduleDelay(cj, now, sched, tz);
  }

  static std::string KeyOf(const json& obj) { return client::KeyOf(obj); }

  static json JobFromTemplate(const json& cj, SystemTime scheduled, const std::string& name,
                              const std::string& tz) {
    const json* tmpl = Find(cj, "spec.jobTemplate");
    json meta = json::object();
    const json* labels = tmpl ? Find(*tmpl, "metadata.labels") : nullptr;
    const json* annotations = tmpl ? Find(*tmpl, "metadata.annotations") : nullptr;
    if (labels && labels->is_object() && !labels->empty()) {
      meta["labels"] = *labels;
    }
    meta["annotations"] = annotations && annotations->is_object() ? *annotations : json::object();
    meta["annotations"][kScheduledTimestamp] = FormatInZone(scheduled, tz);
    meta["name"] = name;
    meta["namespace"] = GetString(cj, "metadata.namespace");
    meta["ownerReferences"] = json::array({NewControllerRef(cj)});
    const json* spec = tmpl ? Find(*tmpl, "spec") : nullptr;
    return {{"apiVersion", "batch/v1"},
            {"kind", "Job"},
            {"metadata", meta},
            {"spec", spec ? *spec : json::object()}};
  }

  // Deletes a Job (its pods go with it, in the background) and forgets it.
  bool DeleteJob(json& cj, const json& job) {
    std::string name = GetString(job, "metadata.name");
    try {
      ctx_.client->Delete(JobPath(cj, name), {{"propagationPolicy", "Background"}});
    } catch (const client::ApiError& e) {
      if (e.code != 404) {
        ctx_.events->Event(cj, "Warning", "FailedDelete", std::string("Deleted job: ") + e.what());
        log::Warn("cronjob controller: delete job {}: {}", KeyOf(job), e.what());
        return false;
      }
    }
    DeleteFromActiveList(cj, GetString(job, "metadata.uid"));
    ctx_.events->Event(cj, "Normal", "SuccessfulDelete", "Deleted job " + name);
    return true;
  }

  // Deletes the oldest finished Jobs beyond successfulJobsHistoryLimit and
  // failedJobsHistoryLimit; returns whether the status changed.
  bool CleanUpFinishedJobs(json& cj, const std::vector<json>& jobs) {
    const json* ok_limit = Find(cj, "spec.successfulJobsHistoryLimit");
    const json* failed_limit = Find(cj, "spec.failedJobsHistoryLimit");
    std::vector<json> succeeded, failed;
    for (const auto& j : jobs) {
      std::string finished = FinishedType(j);
      if (finished == "Complete") {
        succeeded.push_back(j);
      } else if (finished == "Failed") {
        failed.push_back(j);
      }
    }
    bool update = false;
    if (ok_limit && ok_limit->is_number_integer()) {
      update = RemoveOldestJobs(cj, succeeded, ok_limit->get<int64_t>()) || update;
    }
    if (failed_limit && failed_limit->is_number_integer()) {
      update = RemoveOldestJobs(cj, failed, failed_limit->get<int64_t>()) || update;
    }
    return update;
  }

  bool RemoveOldestJobs(json& cj, std::vector<json> jobs, int64_t keep) {
    int64_t n = static_cast<int64_t>(jobs.size()) - keep;
    if (n <= 0) {
      return false;
    }
    // Oldest start first; Jobs that never started last; then by name.
    std::sort(jobs.begin(), jobs.end(), [](const json& a, const json& b) {
      bool ha = false, hb = false;
      SystemTime ta = TimeAt(a, "status.startTime", &ha), tb = TimeAt(b, "status.startTime", &hb);
      if (ha != hb) {
        return ha;
      }
      if (ta != tb) {
        return ta < tb;
      }
      return GetString(a, "metadata.name") < GetString(b, "metadata.name");
    });
    bool update = false;
    for (int64_t i = 0; i < n; ++i) {
      update = DeleteJob(cj, jobs[static_cast<size_t>(i)]) || update;
    }
    return update;
  }

  std::shared_ptr<client::Informer> cronjobs_, jobs_;
};

}  // namespace

std::unique_ptr<Controller> NewCronJobController(Context ctx) {
  return std::make_unique<CronJobController>(std::move(ctx));
}

}  // namespace minik::controllers
