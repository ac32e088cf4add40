// The Job controller: runs a Job's pods until `spec.completions` of them have
// succeeded (NonIndexed), or one pod per completion index has (Indexed), at
// most `spec.parallelism` at a time. Failed pods are replaced with an
// exponential backoff until more than `spec.backoffLimit` have failed;
// `spec.activeDeadlineSeconds` bounds the run; `spec.suspend` deletes the
// running pods. As in Kubernetes 1.32 a Job finishes in two steps: the interim
// condition (`SuccessCriteriaMet` or `FailureTarget`) first, then `Complete` or
// `Failed` once none of its pods is still terminating. A finished Job with
// `spec.ttlSecondsAfterFinished` is deleted that long after it finished (what
// Kubernetes' ttl-after-finished controller does).
//
// Unlike Kubernetes, pods get no `batch.kubernetes.io/job-tracking` finalizer:
// the controller counts the finished pods that still exist (and never lets the
// counts in status go down), so it never deletes finished pods of a Job, and a
// pod deleted before it finished is not counted as failed.

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "api/selectors.h"
#include "client/events.h"
#include "common/log.h"
#include "controllers/controller.h"
#include "controllers/util.h"
#include "controllers/workloads.h"

namespace minik::controllers {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr const char* kCompletionIndexKey = "batch.kubernetes.io/job-completion-index";
constexpr const char* kCompletionIndexEnv = "JOB_COMPLETION_INDEX";
constexpr const char* kJobControllerName = "kubernetes.io/job-controller";
// Kubernetes' DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff: the
// delay before replacing a failed pod doubles from 10 s with every failure
// since the last success, up to 10 minutes.
constexpr seconds kPodFailureBackoff{10};
constexpr seconds kMaxPodFailureBackoff{600};
constexpr size_t kMaxPodCreateDeletePerSync = 500;
constexpr int64_t kUnknownIndex = -1;

bool ConditionTrue(const json& obj, const char* type) {
  const json* c = GetCondition(obj, type);
  return c && c->value("status", "") == "True";
}

bool IsJobFinished(const json& job) {
  return ConditionTrue(job, "Complete") || ConditionTrue(job, "Failed");
}

bool IsSuspended(const json& job) {
  const json* s = Find(job, "spec.suspend");
  return s && s->is_boolean() && s->get<bool>();
}

bool HasDeletionTimestamp(const json& obj) {
  const json* d = Find(obj, "metadata.deletionTimestamp");
  return d && d->is_string();
}

// The completion index of a pod of an Indexed Job, from its annotation.
int64_t CompletionIndex(const json& pod) {
  const json* a = Find(pod, "metadata.annotations");
  if (!a || !a->is_object() || !a->contains(kCompletionIndexKey) ||
      !(*a)[kCompletionIndexKey].is_string()) {
    return kUnknownIndex;
  }
  std::string v = (*a)[kCompletionIndexKey].get<std::string>();
  if (v.empty() || v.size() > 9 || !std::all_of(v.begin(), v.end(), ::isdigit)) {
    return kUnknownIndex;
  }
  return std::atoll(v.c_str());
}

SystemTime TimeAt(const json& obj, const char* path) {
  SystemTime t{};
  const json* v = Find(obj, path);
  if (v && v->is_string()) {
    ParseTime(v->get<std::string>(), &t);
  }
  return t;
}

// When a pod finished: its containers' last finishedAt, else when it stopped
// being Ready, else its deletion or creation time (Kubernetes' getFinishedTime).
SystemTime FinishedTime(const json& pod) {
  SystemTime latest{};
  bool found = false;
  const json* statuses = Find(pod, "status.containerStatuses");
  if (statuses && statuses->is_array()) {
    for (const auto& s : *statuses) {
      const json* f = Find(s, "state.terminated.finishedAt");
      SystemTime t;
      if (f && f->is_string() && ParseTime(f->get<std::string>(), &t)) {
        latest = found ? std::max(latest, t) : t;
        found = true;
      }
    }
  }
  if (found) {
    return latest;
  }
  const json* ready = GetCondition(pod, "Ready");
  SystemTime t;
  if (ready && ready->value("status", "") == "False" &&
      ParseTime(ready->value("lastTransitionTime", ""), &t)) {
    return t;
  }
  if (HasDeletionTimestamp(pod)) {
    return TimeAt(pod, "metadata.deletionTimestamp");
  }
  return TimeAt(pod, "metadata.creationTimestamp");
}

int64_t MaxRestarts(const json& pod) {
  int64_t n = 0;
  const json* statuses = Find(pod, "status.containerStatuses");
  if (statuses && statuses->is_array()) {
    for (const auto& s : *statuses) {
      n = std::max<int64_t>(n, s.value("restartCount", int64_t{0}));
    }
  }
  return n;
}

// Which active pods go first (Kubernetes' controller.ActivePods): unscheduled,
// pending, not ready, ready for less time, more restarts, newer.
bool RemoveFirst(const json& a, const json& b) {
  bool as = !GetString(a, "spec.nodeName").empty(), bs = !GetString(b, "spec.nodeName").empty();
  if (as != bs) {
    return !as;
  }
  auto phase_rank = [](const json& p) {
    std::string ph = GetString(p, "status.phase");
    return ph == "Pending" ? 0 : ph == "Unknown" ? 1 : ph == "Running" ? 2 : -1;
  };
  if (phase_rank(a) != phase_rank(b)) {
    return phase_rank(a) < phase_rank(b);
  }
  SystemTime ra, rb;
  bool ready_a = PodReadySince(a, &ra), ready_b = PodReadySince(b, &rb);
  if (ready_a != ready_b) {
    return !ready_a;
  }
  if (ready_a && ra != rb) {
    return ra > rb;
  }
  if (MaxRestarts(a) != MaxRestarts(b)) {
    return MaxRestarts(a) > MaxRestarts(b);
  }
  return TimeAt(a, "metadata.creationTimestamp") > TimeAt(b, "metadata.creationTimestamp");
}

// `status.completedIndexes` as Kubernetes writes it: "0-2,4,6,7".
std::set<int64_t> ParseIndexes(const std::string& text, int64_t completions) {
  std::set<int64_t> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t comma = text.find(',', pos);
    std::string part = text.substr(pos, comma == std::string::npos ? comma : comma - pos);
    pos = comma == std::string::npos ? text.size() : comma + 1;
    size_t dash = part.find('-');
    int64_t first = std::atoll(part.substr(0, dash).c_str());
    int64_t last = dash == std::string::npos ? first : std::atoll(part.substr(dash + 1).c_str());
    for (int64_t i = std::max<int64_t>(first, 0); i <= last && i < completions; ++i) {
      out.insert(i);
    }
  }
  return out;
}

std::string FormatIndexes(const std::set<int64_t>& indexes) {
  std::string out;
  for (auto it = indexes.begin(); it != indexes.end();) {
    int64_t first = *it, last = *it;
    for (++it; it != indexes.end() && *it == last + 1; ++it) {
      last = *it;
    }
    if (!out.empty()) {
      out += ',';
    }
    out += std::to_string(first);
    if (last > first) {
      out += (last == first + 1 ? "," : "-") + std::to_string(last);
    }
  }
  return out;
}

// Kubernetes' ensureJobConditionStatus: a condition of `type` that differs is
// replaced (with fresh timestamps); a missing one is added unless its status
// would be "False". Returns whether anything changed.
bool EnsureCondition(json& status, const std::string& type, const std::string& cstatus,
                     const std::string& reason, const std::string& message,
                     const std::string& now) {
  json c = {{"type", type},     {"status", cstatus},  {"lastProbeTime", now},
            {"reason", reason}, {"message", message}, {"lastTransitionTime", now}};
  json& conds = status["conditions"];
  if (!conds.is_array()) {
    conds = json::array();
  }
  for (auto& old : conds) {
    if (old.value("type", "") == type) {
      if (old.value("status", "") == cstatus && old.value("reason", "") == reason &&
          old.value("message", "") == message) {
        return false;
      }
      old = c;
      return true;
    }
  }
  if (cstatus == "False") {
    if (conds.empty()) {
      status.erase("conditions");
    }
    return false;
  }
  conds.push_back(c);
  return true;
}

void SetCount(json& status, const char* field, int64_t n) {
  if (n > 0) {
    status[field] = n;
  } else {
    status.erase(field);
  }
}

// A Job condition to set, e.g. FailureTarget / BackoffLimitExceeded.
struct JobCondition {
  std::string type, reason, message;
};

// What one sync observed of a Job's pods.
struct PodCounts {
  std::vector<json> active;
  int64_t ready = 0;
  int64_t terminating = 0;
};

class JobController : public QueueController {
 public:
  explicit JobController(Context ctx) : QueueController("job", ctx, 2) {
    // Events come from "job-controller", as `kubectl describe` shows in Kubernetes.
    ctx_.events = std::make_shared<client::EventRecorder>(ctx_.client, "job-controller");
    jobs_ = ctx_.informers->For(client::resources::kJobs);
    pods_ = ctx_.informers->For(client::resources::kPods);
    jobs_->AddHandlers(
        {[this](const client::Object& o) { EnqueueObject(o); },
         [this](const client::Object& old, const client::Object& o) {
           if (Replaced(*old, *o)) {
             expectations_.Forget(client::KeyOf(*o));
           }
           EnqueueObject(o);
         },
         [this](const client::Object& o) { expectations_.Forget(client::KeyOf(*o)); }});
    pods_->AddHandlers({[this](const client::Object& p) {
                          if (auto k = OwnerKey(*p); !k.empty()) {
                            // A pod that shows up already being deleted is no creation we wait for.
                            if (IsPodTerminating(*p)) {
                              expectations_.DeletionObserved(k);
                            } else {
                              expectations_.CreationObserved(k);
                            }
                          }
                          PodChanged(*p);
                        },
                        [this](const client::Object& old, const client::Object& p) {
                          // A graceful deletion counts as observed when it starts, so the Job
                          // can replace the pod without waiting for the kubelet.
                          if (!IsPodTerminating(*old) && IsPodTerminating(*p)) {
                            if (auto k = OwnerKey(*p); !k.empty()) {
                              expectations_.DeletionObserved(k);
                            }
                          }
                          PodChanged(*p);
                          if (OwnerKey(*old) != OwnerKey(*p)) {
                            PodChanged(*old);
                          }
                        },
                        [this](const client::Object& p) {
                          if (auto k = OwnerKey(*p); !k.empty() && !IsPodTerminating(*p)) {
                            expectations_.DeletionObserved(k);
                          }
                          PodChanged(*p);
                        }});
  }

 private:
  std::string OwnerKey(const json& pod) const { return ResolveControllerRef(pod, "Job", *jobs_); }

  void PodChanged(const json& pod) {
    std::string key = OwnerKey(pod);
    if (!key.empty()) {
      Enqueue(key);
      return;
    }
    if (ControllerRef(pod)) {
      return;  // someone else's
    }
    // An orphan: every Job that selects it may adopt it.
    const json* labels = Find(pod, "metadata.labels");
    for (const auto& job : jobs_->ListNamespace(GetString(pod, "metadata.namespace"))) {
      const json* sel = Find(*job, "spec.selector");
      api::LabelSelector selector = api::LabelSelector::FromJson(sel ? *sel : json());
      if (!selector.empty() && selector.Matches(labels ? *labels : json())) {
        EnqueueObject(job);
      }
    }
  }

  void Sync(const std::string& key) override {
    client::Object job_obj = jobs_->Get(key);
    if (!job_obj) {
      expectations_.Forget(key);
      return;
    }
    const json& job = *job_obj;
    if (IsJobFinished(job)) {
      CleanUpFinishedJob(job, key);
      return;
    }
    // A Job that names another controller in `spec.managedBy` is that one's.
    std::string managed_by = GetString(job, "spec.managedBy");
    if (!managed_by.empty() && managed_by != kJobControllerName) {
      return;
    }
    std::string mode = GetString(job, "spec.completionMode", "NonIndexed");
    if (mode != "NonIndexed" && mode != "Indexed") {
      ctx_.events->Event(job, "Warning", "UnknownCompletionMode",
                         "Skipped Job sync because completion mode is unknown");
      return;
    }
    bool indexed = mode == "Indexed";
    const json* completions_v = Find(job, "spec.completions");
    bool has_completions = completions_v && completions_v->is_number_integer();
    int64_t completions = has_completions ? completions_v->get<int64_t>() : 0;
    bool suspended = IsSuspended(job);
    bool deleting = HasDeletionTimestamp(job);
    SystemTime now = Now();
    std::string now_text = FormatTime(now);

    // Check expectations before listing pods, so a pod created meanwhile is
    // either seen in the list or makes the expectations unsatisfied.
    bool satisfied = expectations_.Satisfied(key);
    std::vector<json> pods = ClaimObjects(*ctx_.client, *pods_, job, deleting);

    PodCounts counts;
    int64_t succeeded_pods = 0, failed_pods = 0;
    std::set<int64_t> succeeded_indexes;
    if (indexed) {
      succeeded_indexes = ParseIndexes(GetString(job, "status.completedIndexes"), completions);
    }
    for (const auto& p : pods) {
      std::string phase = GetString(p, "status.phase");
      if (IsPodActive(p)) {
        counts.active.push_back(p);
        if (IsPodReady(p)) {
          ++counts.ready;
        }
      } else if (phase != "Succeeded" && phase != "Failed") {
        ++counts.terminating;
      }
      int64_t index = indexed ? CompletionIndex(p) : kUnknownIndex;
      if (indexed && (index == kUnknownIndex || index >= completions)) {
        continue;  // pods with a bad index do not count
      }
      if (phase == "Succeeded") {
        ++succeeded_pods;
        if (indexed) {
          succeeded_indexes.insert(index);
        }
      } else if (phase == "Failed") {
        ++failed_pods;
      }
    }
    // Counts never go down when finished pods are deleted (see the top).
    int64_t succeeded = indexed ? static_cast<int64_t>(succeeded_indexes.size())
                                : std::max(IntAt(job, "status.succeeded"), succeeded_pods);
    int64_t failed = std::max(IntAt(job, "status.failed"), failed_pods);

    json next = job;
    json& st = next["status"];
    if (!st.is_object()) {
      st = json::object();
    }
    // The first start; a Job created suspended starts when resumed.
    if (!Find(job, "status.startTime") && !suspended) {
      st["startTime"] = now_text;
    }

    // Has the Job met its success criteria or failed?
    std::optional<JobCondition> finishing;
    for (const char* interim : {"SuccessCriteriaMet", "FailureTarget"}) {
      if (!finishing && ConditionTrue(job, interim)) {
        const json* c = GetCondition(job, interim);
        finishing = JobCondition{interim, c->value("reason", ""), c->value("message", "")};
      }
    }
    int64_t backoff_limit = IntAt(job, "spec.backoffLimit", 6);
    if (!finishing) {
      if (failed > backoff_limit || PastBackoffLimitOnFailure(job, pods)) {
        finishing = JobCondition{"FailureTarget", "BackoffLimitExceeded",
                                 "Job has reached the specified backoff limit"};
      } else if (const json* ads = Find(job, "spec.activeDeadlineSeconds");
                 ads && ads->is_number_integer() && !suspended) {
        SystemTime deadline = TimeAt(next, "status.startTime") + seconds(ads->get<int64_t>());
        if (now >= deadline) {
          finishing = JobCondition{"FailureTarget", "DeadlineExceeded",
                                   "Job was active longer than specified deadline"};
        } else {
          EnqueueAfter(key, std::chrono::ceil<milliseconds>(deadline - now));
        }
      }
    }

    int64_t active = static_cast<int64_t>(counts.active.size());
    std::string error;
    if (finishing) {
      // A Job that finishes keeps no pod running.
      int64_t deleted_ready = 0;
      int64_t deleted = DeletePods(job, key, counts.active, false, &deleted_ready, &error);
      if (deleted != active || !satisfied) {
        // Pods still to go, or pods the cache has not shown yet: not finished yet.
        finishing.reset();
      } else if (finishing->type == "FailureTarget") {
        // As in Kubernetes, pods stopped because the Job failed count as failed.
        failed += deleted;
      }
      active -= deleted;
      counts.terminating += deleted;
      counts.ready -= deleted_ready;
    } else {
      bool managed = false;
      if (satisfied && !deleting) {
        active = ManageJob(job, key, pods, counts, succeeded,
                           indexed ? &succeeded_indexes : nullptr, now, &error);
        managed = true;
      }
      bool complete =
          has_completions ? succeeded >= completions && active == 0 : succeeded > 0 && active == 0;
      if (complete) {
        finishing = JobCondition{"SuccessCriteriaMet", "CompletionsReached",
                                 "Reached expected number of succeeded pods"};
      } else if (managed && suspended) {
        if (EnsureCondition(st, "Suspended", "True", "JobSuspended", "Job suspended", now_text)) {
          ctx_.events->Event(job, "Normal", "Suspended", "Job suspended");
        }
      } else if (managed) {
        if (EnsureCondition(st, "Suspended", "False", "JobResumed", "Job resumed", now_text)) {
          ctx_.events->Event(job, "Normal", "Resumed", "Job resumed");
          // activeDeadlineSeconds counts the time a Job runs without a break.
          st["startTime"] = now_text;
        }
      }
    }

    SetCount(st, "active", active);
    st["ready"] = std::max<int64_t>(counts.ready, 0);
    st["terminating"] = counts.terminating;
    SetCount(st, "succeeded", succeeded);
    SetCount(st, "failed", failed);
    if (indexed && !succeeded_indexes.empty()) {
      st["completedIndexes"] = FormatIndexes(succeeded_indexes);
    } else {
      st.erase("completedIndexes");
    }
    if (!st.contains("uncountedTerminatedPods")) {
      st["uncountedTerminatedPods"] = json::object();
    }
    std::optional<JobCondition> finished;
    if (finishing) {
      EnsureCondition(st, finishing->type, "True", finishing->reason, finishing->message, now_text);
      // The terminal condition waits until no pod of the Job is terminating.
      if (counts.terminating == 0) {
        finished = JobCondition{finishing->type == "FailureTarget" ? "Failed" : "Complete",
                                finishing->reason, finishing->message};
        EnsureCondition(st, finished->type, "True", finished->reason, finished->message, now_text);
        if (finished->type == "Complete") {
          st["completionTime"] = now_text;
        }
      }
    }

    if (next["status"] != job.value("status", json::object())) {
      std::string path = client::resources::kJobs.Item(GetString(job, "metadata.namespace"),
                                                       GetString(job, "metadata.name")) +
                         "/status";
      try {
        ctx_.client->Put(path, next);
      } catch (const client::ApiError& e) {
        if (e.code == 404) {
          return;
        }
        if (e.code != 409) {
          throw;
        }
        Enqueue(key);
        finished.reset();
      }
      if (finished) {
        RecordFinished(next, *finished);
      }
    }
    if (!error.empty()) {
      throw std::runtime_error(error);
    }
  }

  void RecordFinished(const json& job, const JobCondition& finished) {
    if (finished.type == "Complete") {
      const json* c = Find(job, "spec.completions");
      if (c && c->is_number_integer() && IntAt(job, "status.succeeded") > c->get<int64_t>()) {
        ctx_.events->Event(job, "Warning", "TooManySucceededPods",
                           "Too many succeeded pods running after completion count reached");
      }
      ctx_.events->Event(job, "Normal", "Completed", "Job completed");
    } else {
      ctx_.events->Event(job, "Warning", finished.reason, finished.message);
    }
  }

  // For restartPolicy OnFailure the kubelet restarts containers instead of
  // failing pods, so their restarts count against the backoff limit.
  static bool PastBackoffLimitOnFailure(const json& job, const std::vector<json>& pods) {
    if (GetString(job, "spec.template.spec.restartPolicy") != "OnFailure") {
      return false;
    }
    int64_t restarts = 0;
    for (const auto& p : pods) {
      std::string phase = GetString(p, "status.phase");
      if (phase != "Running" && phase != "Pending") {
        continue;
      }
      for (const char* field : {"status.initContainerStatuses", "status.containerStatuses"}) {
        const json* statuses = Find(p, field);
        if (statuses && statuses->is_array()) {
          for (const auto& s : *statuses) {
            restarts += s.value("restartCount", int64_t{0});
          }
        }
      }
    }
    int64_t limit = IntAt(job, "spec.backoffLimit", 6);
    return limit == 0 ? restarts > 0 : restarts >= limit;
  }

  // How long to wait before creating pods again after failures: 10 s doubling
  // with every failure since the last success, counted from the last failure.
  static milliseconds BackoffRemaining(const std::vector<json>& pods, SystemTime now) {
    std::optional<SystemTime> last_success;
    for (const auto& p : pods) {
      if (GetString(p, "status.phase") == "Succeeded") {
        SystemTime t = FinishedTime(p);
        last_success = last_success ? std::max(*last_success, t) : t;
      }
    }
    int failures = 0;
    SystemTime last_failure{};
    for (const auto& p : pods) {
      if (GetString(p, "status.phase") != "Failed") {
        continue;
      }
      SystemTime t = FinishedTime(p);
      if (!last_success || t > *last_success) {
        ++failures;
        last_failure = std::max(last_failure, t);
      }
    }
    if (failures == 0) {
      return milliseconds(0);
    }
    milliseconds backoff = kPodFailureBackoff;
    for (int i = 1; i < failures; ++i) {
      backoff *= 2;
      if (backoff >= kMaxPodFailureBackoff) {
        backoff = kMaxPodFailureBackoff;
        break;
      }
    }
    auto elapsed = std::chrono::duration_cast<milliseconds>(now - last_failure);
    return backoff < elapsed ? milliseconds(0) : backoff - elapsed;
  }

  // Creates or deletes pods so that the right number runs; returns how many
  // are active now (Kubernetes' manageJob).
  int64_t ManageJob(const json& job, const std::string& key, const std::vector<json>& pods,
                    PodCounts& counts, int64_t succeeded,
                    const std::set<int64_t>* succeeded_indexes, SystemTime now,
                    std::string* error) {
    int64_t active = static_cast<int64_t>(counts.active.size());
    int64_t parallelism = IntAt(job, "spec.parallelism", 1);
    const json* completions_v = Find(job, "spec.completions");
    bool has_completions = completions_v && completions_v->is_number_integer();
    int64_t completions = has_completions ? completions_v->get<int64_t>() : 0;
    int64_t deleted_ready = 0;
    if (IsSuspended(job)) {
      std::vector<json> rm = ActivePodsForRemoval(job, counts.active, active);
      int64_t removed = DeletePods(job, key, rm, true, &deleted_ready, error);
      counts.terminating += removed;
      counts.ready -= deleted_ready;
      return active - removed;
    }
    int64_t want;
    if (!has_completions) {
      // A work queue: once a pod succeeded, let the running ones finish.
      want = succeeded > 0 ? active : parallelism;
    } else {
      want = std::clamp<int64_t>(completions - succeeded, 0, parallelism);
    }
    std::vector<json> rm =
        ActivePodsForRemoval(job, counts.active, std::max<int64_t>(active - want, 0));
    if (rm.size() > kMaxPodCreateDeletePerSync) {
      rm.resize(kMaxPodCreateDeletePerSync);
    }
    if (!rm.empty()) {
      // Deleting takes precedence; pods are created in a later sync.
      int64_t removed = DeletePods(job, key, rm, true, &deleted_ready, error);
      counts.terminating += removed;
      counts.ready -= deleted_ready;
      return active - removed;
    }
    // With podReplacementPolicy Failed, a terminating pod is replaced only
    // once it is gone (TerminatingOrFailed replaces it at once).
    bool only_failed = GetString(job, "spec.podReplacementPolicy") == "Failed";
    int64_t diff = want - (only_failed ? counts.terminating : 0) - active;
    if (diff <= 0) {
      return active;
    }
    milliseconds remaining = BackoffRemaining(pods, now);
    if (remaining.count() > 0) {
      EnqueueAfter(key, remaining);
      return active;
    }
    diff = std::min<int64_t>(diff, kMaxPodCreateDeletePerSync);
    std::vector<int64_t> indexes;
    if (succeeded_indexes) {
      std::set<int64_t> taken = *succeeded_indexes;
      for (const auto& p : pods) {
        std::string phase = GetString(p, "status.phase");
        if (IsPodActive(p) ||
            (only_failed && IsPodTerminating(p) && phase != "Failed" && phase != "Succeeded")) {
          taken.insert(CompletionIndex(p));
        }
      }
      indexes = FirstPendingIndexes(taken, diff, completions);
      diff = static_cast<int64_t>(indexes.size());
    }
    return active + CreatePods(job, key, diff, indexes, error);
  }

  // The lowest indexes not `taken` (succeeded, or with a pod).
  static std::vector<int64_t> FirstPendingIndexes(const std::set<int64_t>& taken, int64_t count,
                                                  int64_t completions) {
    std::vector<int64_t> out;
    for (int64_t i = 0; i < completions && static_cast<int64_t>(out.size()) < count; ++i) {
      if (!taken.count(i)) {
        out.push_back(i);
      }
    }
    return out;
  }

  // At least `at_least` active pods to delete; for Indexed Jobs also those
  // with a missing or out-of-range index and all but one per repeated index.
  static std::vector<json> ActivePodsForRemoval(const json& job, std::vector<json> pods,
                                                int64_t at_least) {
    std::vector<json> rm, left;
    if (GetString(job, "spec.completionMode") == "Indexed") {
      int64_t completions = IntAt(job, "spec.completions");
      std::map<int64_t, std::vector<json>> by_index;
      for (auto& p : pods) {
        int64_t ix = CompletionIndex(p);
        if (ix == kUnknownIndex || ix >= completions) {
          rm.push_back(std::move(p));
        } else {
          by_index[ix].push_back(std::move(p));
        }
      }
      for (auto& [ix, group] : by_index) {
        // Keep the pod furthest along.
        std::sort(group.begin(), group.end(), RemoveFirst);
        for (size_t i = 0; i + 1 < group.size(); ++i) {
          rm.push_back(std::move(group[i]));
        }
        left.push_back(std::move(group.back()));
      }
    } else {
      left = std::move(pods);
    }
    if (static_cast<int64_t>(rm.size()) < at_least) {
      std::sort(left.begin(), left.end(), RemoveFirst);
      size_t more = static_cast<size_t>(at_least) - rm.size();
      for (size_t i = 0; i < more && i < left.size(); ++i) {
        rm.push_back(std::move(left[i]));
      }
    }
    return rm;
  }

  // Deletes `pods`; returns how many are gone (a pod already gone counts).
  // Stops at nothing: an error is kept in `error` and the others still go.
  int64_t DeletePods(const json& job, const std::string& key, const std::vector<json>& pods,
                     bool expect, int64_t* deleted_ready, std::string* error) {
    if (pods.empty()) {
      return 0;
    }
    if (expect) {
      expectations_.Expect(key, 0, static_cast<int>(pods.size()));
    }
    int64_t removed = 0;
    std::string ns = GetString(job, "metadata.namespace");
    for (const auto& p : pods) {
      std::string name = GetString(p, "metadata.name");
      try {
        ctx_.client->Delete(client::resources::kPods.Item(ns, name));
        ctx_.events->Event(job, "Normal", "SuccessfulDelete", "Deleted pod: " + name);
      } catch (const client::ApiError& e) {
        if (expect) {
          expectations_.DeletionObserved(key);
        }
        if (e.code != 404) {
          ctx_.events->Event(job, "Warning", "FailedDelete",
                             std::string("Error deleting: ") + e.what());
          *error = e.what();
          continue;
        }
      }
      ++removed;
      if (IsPodReady(p)) {
        ++*deleted_ready;
      }
    }
    return removed;
  }

  // Creates `n` pods (one per index in `indexes` for Indexed Jobs) in batches
  // that double (1, 2, 4, ...) and stop at the first failure; returns how many
  // were created.
  int64_t CreatePods(const json& job, const std::string& key, int64_t n,
                     const std::vector<int64_t>& indexes, std::string* error) {
    std::string ns = GetString(job, "metadata.namespace");
    std::string name = GetString(job, "metadata.name");
    json tmpl = job["spec"].value("template", json::object());
    if (!indexes.empty()) {
      AddCompletionIndexEnv(tmpl);
    }
    expectations_.Expect(key, static_cast<int>(n), 0);
    int64_t created = 0;
    for (int64_t i = 0; i < n; ++i) {
      json t = tmpl;
      std::string generate = name + "-";
      if (!indexes.empty()) {
        std::string ix = std::to_string(indexes[static_cast<size_t>(i)]);
        t["metadata"]["annotations"][kCompletionIndexKey] = ix;
        t["metadata"]["labels"][kCompletionIndexKey] = ix;
        t["spec"]["hostname"] = name + "-" + ix;
        // Room for the random suffix: generated names stay within 63 characters.
        std::string suffix = "-" + ix + "-";
        generate = (name + suffix).size() > 58 ? name.substr(0, 58 - suffix.size()) + suffix
                                               : name + suffix;
      }
      json pod = PodFromTemplate(t, job, generate);
      try {
        json made = ctx_.client->Post(client::resources::kPods.Collection(ns), pod);
        ctx_.events->Event(job, "Normal", "SuccessfulCreate",
                           "Created pod: " + GetString(made, "metadata.name"));
        ++created;
      } catch (const client::ApiError& e) {
        // What was not created will not be observed.
        for (int64_t k = i; k < n; ++k) {
          expectations_.CreationObserved(key);
        }
        *error = e.what();
        ctx_.events->Event(job, "Warning", "FailedCreate",
                           std::string("Error creating: ") + e.what());
        break;
      }
    }
    return created;
  }

  // Every container learns its index from $JOB_COMPLETION_INDEX.
  static void AddCompletionIndexEnv(json& tmpl) {
    json& spec = tmpl["spec"];
    for (const char* list : {"initContainers", "containers"}) {
      if (!spec.contains(list) || !spec[list].is_array()) {
        continue;
      }
      for (auto& c : spec[list]) {
        json& env = c["env"];
        if (!env.is_array()) {
          env = json::array();
        }
        bool present = std::any_of(env.begin(), env.end(), [](const json& e) {
          return e.value("name", "") == kCompletionIndexEnv;
        });
        if (!present) {
          env.push_back({{"name", kCompletionIndexEnv},
                         {"valueFrom",
                          {{"fieldRef",
                            {{"fieldPath", std::string("metadata.annotations['") +
                                               kCompletionIndexKey + "']"}}}}}});
        }
      }
    }
  }

  // Deletes a finished Job `spec.ttlSecondsAfterFinished` after it finished,
  // as Kubernetes' ttl-after-finished controller does.
  void CleanUpFinishedJob(const json& job, const std::string& key) {
    milliseconds left;
    if (!TtlExpired(job, &left)) {
      if (left.count() > 0) {
        EnqueueAfter(key, left);
      }
      return;
    }
    // The cache may lag a change of the TTL: decide on a fresh copy.
    std::string path = client::resources::kJobs.Item(GetString(job, "metadata.namespace"),
                                                     GetString(job, "metadata.name"));
    json fresh;
    try {
      fresh = ctx_.client->Get(path);
    } catch (const client::ApiError& e) {
      if (e.code == 404) {
        return;
      }
      throw;
    }
    if (!TtlExpired(fresh, &left)) {
      if (left.count() > 0) {
        EnqueueAfter(key, left);
      }
      return;
    }
    log::Info("job controller: deleting {} {}s after it finished", key,
              IntAt(fresh, "spec.ttlSecondsAfterFinished"));
    try {
      ctx_.client->Delete(path, {{"propagationPolicy", "Background"},
                                 {"preconditions", {{"uid", GetString(fresh, "metadata.uid")}}}});
    } catch (const client::ApiError& e) {
      if (e.code != 404 && e.code != 409) {
        throw;
      }
    }
  }

  // True when `job` is finished, has a TTL and it has run out; otherwise
  // `left` is the time until it does (zero when it never will).
  static bool TtlExpired(const json& job, milliseconds* left) {
    *left = milliseconds(0);
    const json* ttl = Find(job, "spec.ttlSecondsAfterFinished");
    if (!ttl || !ttl->is_number_integer() || HasDeletionTimestamp(job) || !IsJobFinished(job)) {
      return false;
    }
    SystemTime finished{};
    bool found = false;
    for (const char* type : {"Complete", "Failed"}) {
      const json* c = GetCondition(job, type);
      if (!found && c && c->value("status", "") == "True" &&
          ParseTime(c->value("lastTransitionTime", ""), &finished)) {
        found = true;
      }
    }
    if (!found) {
      return false;
    }
    SystemTime expire = finished + seconds(ttl->get<int64_t>());
    SystemTime now = Now();
    if (now >= expire) {
      return true;
    }
    *left = std::chrono::ceil<milliseconds>(expire - now);
    return false;
  }

  std::shared_ptr<client::Informer> jobs_, pods_;
  Expectations expectations_;
};

}  // namespace

std::unique_ptr<Controller> NewJobController(Context ctx) {
  return std::make_unique<JobController>(std::move(ctx));
}

}  // namespace minik::controllers
