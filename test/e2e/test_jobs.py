"""Jobs and CronJobs on a cluster made by `minik start --hollow-nodes 2`, driven
with the real kubectl: pods run to completion, failures end in
BackoffLimitExceeded, Indexed Jobs, suspend and resume,
ttlSecondsAfterFinished, and a CronJob that fires on its schedule."""

import json
import re
import time
import unittest

from cluster import Cluster, wait_for

# Hollow nodes finish pods that are not restarted after a second, with the
# exit code of this annotation (0 when absent).
EXIT_CODE = "hollow.minik.dev/exit-code"

CRONJOB = """
apiVersion: batch/v1
kind: CronJob
metadata:
  name: tick
spec:
  schedule: "*/1 * * * *"
  jobTemplate:
    metadata:
      labels: {app: tick}
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox, command: ["true"]}]
"""


def job(name, spec, annotations=None):
    """A Job manifest whose pod template has `annotations`."""
    template = {"spec": {"restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                       "spec": dict(spec, template=template)})


def conditions(obj):
    return {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}


class JobsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster("e2e-jobs")
        out = cls.c.minik("start", "--hollow-nodes", "2", "--no-kubelet").stdout
        assert "Done!" in out, out
        wait_for(lambda: len(cls.c.kubectl_json("get", "nodes")["items"]) == 2, timeout=30,
                 what="two hollow nodes")
        # The CronJob goes first: it fires at the next full minute, while the
        # other tests run.
        cls.c.kubectl("apply", "-f", "-", input=CRONJOB)
        cls.cronjob_created = time.time()

    @classmethod
    def tearDownClass(cls):
        cls.c.delete()

    def test_job_runs_to_completion(self):
        k = self.c.kubectl
        k("apply", "-f", "-", input=job("three", {"completions": 3, "parallelism": 2}))
        self.assertIn("condition met",
                      k("wait", "--for=condition=complete", "job/three", "--timeout=60s").stdout)
        j = self.c.kubectl_json("get", "job", "three")
        st = j["status"]
        self.assertEqual(st["succeeded"], 3)
        self.assertNotIn("active", st)
        self.assertNotIn("failed", st)
        self.assertEqual(st["ready"], 0)
        self.assertIn("startTime", st)
        self.assertIn("completionTime", st)
        conds = conditions(j)
        for t in ("SuccessCriteriaMet", "Complete"):
            self.assertEqual(conds[t]["status"], "True")
            self.assertEqual(conds[t]["reason"], "CompletionsReached")
            self.assertEqual(conds[t]["message"], "Reached expected number of succeeded pods")
            self.assertIn("lastProbeTime", conds[t])
            self.assertIn("lastTransitionTime", conds[t])
        self.assertEqual(st["completionTime"], conds["Complete"]["lastTransitionTime"])

        rows = k("get", "job", "three").stdout.splitlines()
        self.assertRegex(rows[0], r"^NAME\s+STATUS\s+COMPLETIONS\s+DURATION\s+AGE$")
        self.assertRegex(rows[1], r"^three\s+\S+\s+3/3\s+\d+s\s+\d+s$")

        pods = self.c.kubectl_json("get", "pods", "-l", "job-name=three")["items"]
        self.assertEqual(sorted(p["status"]["phase"] for p in pods), ["Succeeded"] * 3)
        for p in pods:
            self.assertEqual(p["metadata"]["generateName"], "three-")
            ref = p["metadata"]["ownerReferences"][0]
            self.assertEqual((ref["kind"], ref["name"], ref["uid"], ref["controller"]),
                             ("Job", "three", j["metadata"]["uid"], True))
            self.assertEqual(p["metadata"]["labels"]["batch.kubernetes.io/job-name"], "three")

        desc = k("describe", "job", "three").stdout
        self.assertRegex(desc, r"Pods Statuses:\s+0 Active \(0 Ready\) / 3 Succeeded / 0 Failed")
        self.assertRegex(desc, r"Normal\s+SuccessfulCreate\s+.*job-controller\s+Created pod: three-")
        self.assertRegex(desc, r"Normal\s+Completed\s+.*job-controller\s+Job completed")

    def test_job_fails_after_backoff_limit(self):
        # Two pods fail together: the second failure exceeds backoffLimit 1
        # without waiting out the 10 s backoff before a replacement.
        k = self.c.kubectl
        k("apply", "-f", "-", input=job("doomed", {"completions": 4, "parallelism": 2, "backoffLimit": 1},
                                        {EXIT_CODE: "1"}))
        k("wait", "--for=condition=failed", "job/doomed", "--timeout=60s")
        j = self.c.kubectl_json("get", "job", "doomed")
        conds = conditions(j)
        for t in ("FailureTarget", "Failed"):
            self.assertEqual(conds[t]["status"], "True")
            self.assertEqual(conds[t]["reason"], "BackoffLimitExceeded")
            self.assertEqual(conds[t]["message"], "Job has reached the specified backoff limit")
        self.assertNotIn("Complete", conds)
        self.assertNotIn("completionTime", j["status"])
        self.assertGreaterEqual(j["status"]["failed"], 2)
        self.assertNotIn("active", j["status"])
        self.assertRegex(k("get", "job", "doomed").stdout.splitlines()[1], r"^doomed\s+\S+\s+0/4\s+")
        desc = k("describe", "job", "doomed").stdout
        self.assertRegex(desc, r"Warning\s+BackoffLimitExceeded\s+.*Job has reached the specified backoff limit")
        # No pod is left running and none was replaced.
        pods = self.c.kubectl_json("get", "pods", "-l", "job-name=doomed")["items"]
        self.assertFalse([p for p in pods if p["status"].get("phase") not in ("Failed", "Succeeded")])
        self.assertLessEqual(len(pods), 2)

    def test_indexed_job(self):
        k = self.c.kubectl
        k("apply", "-f", "-", input=job("idx", {"completions": 3, "parallelism": 3, "completionMode": "Indexed"}))
        k("wait", "--for=condition=complete", "job/idx", "--timeout=60s")
        j = self.c.kubectl_json("get", "job", "idx")
        self.assertEqual(j["status"]["completedIndexes"], "0-2")
        self.assertEqual(j["status"]["succeeded"], 3)
        pods = self.c.kubectl_json("get", "pods", "-l", "job-name=idx")["items"]
        indexes = set()
        for p in pods:
            ix = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            self.assertEqual(p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"], ix)
            self.assertEqual(p["spec"]["hostname"], "idx-" + ix)
            self.assertTrue(p["metadata"]["name"].startswith("idx-%s-" % ix), p["metadata"]["name"])
            env = p["spec"]["containers"][0]["env"]
            self.assertEqual(env[0]["name"], "JOB_COMPLETION_INDEX")
            indexes.add(ix)
        self.assertEqual(indexes, {"0", "1", "2"})

    def test_suspend_and_resume(self):
        k = self.c.kubectl
        k("apply", "-f", "-", input=job("later", {"suspend": True}))
        wait_for(lambda: conditions(self.c.kubectl_json("get", "job", "later")).get("Suspended", {}).get("status")
                 == "True", timeout=20, what="job/later Suspended")
        j = self.c.kubectl_json("get", "job", "later")
        self.assertEqual(conditions(j)["Suspended"]["reason"], "JobSuspended")
        self.assertNotIn("startTime", j["status"])
        self.assertEqual(self.c.kubectl_json("get", "pods", "-l", "job-name=later")["items"], [])
        self.assertRegex(k("get", "job", "later").stdout.splitlines()[1], r"^later\s+Suspended\s+0/1\s+")
        k("patch", "job", "later", "--type=merge", "-p", '{"spec":{"suspend":false}}')
        k("wait", "--for=condition=complete", "job/later", "--timeout=60s")
        j = self.c.kubectl_json("get", "job", "later")
        suspended = conditions(j)["Suspended"]
        self.assertEqual((suspended["status"], suspended["reason"]), ("False", "JobResumed"))
        self.assertIn("startTime", j["status"])
        desc = k("describe", "job", "later").stdout
        self.assertRegex(desc, r"Normal\s+Suspended\s+.*Job suspended")
        self.assertRegex(desc, r"Normal\s+Resumed\s+.*Job resumed")

    def test_ttl_after_finished_deletes_job(self):
        k = self.c.kubectl
        k("apply", "-f", "-", input=job("brief", {"ttlSecondsAfterFinished": 2}))
        k("wait", "--for=condition=complete", "job/brief", "--timeout=60s")
        finished = time.time()
        wait_for(lambda: "NotFound" in k("get", "job", "brief", check=False).stderr, timeout=20,
                 interval=0.5, what="job/brief deleted by its TTL")
        self.assertGreaterEqual(time.time() - finished, 1)

    def test_zz_cronjob_fires(self):
        # Runs last (unittest sorts by name): the CronJob was made in setUpClass.
        k = self.c.kubectl
        deadline = self.cronjob_created + 75 - time.time()

        def fired():
            jobs = self.c.kubectl_json("get", "jobs", "-l", "app=tick")["items"]
            return jobs[0] if jobs else None
        j = wait_for(fired, timeout=max(deadline, 5), interval=1, what="a Job from cronjob/tick")
        name = j["metadata"]["name"]
        self.assertRegex(name, r"^tick-\d+$")
        minutes = int(name.split("-")[1])
        ref = j["metadata"]["ownerReferences"][0]
        self.assertEqual((ref["kind"], ref["name"], ref["controller"]), ("CronJob", "tick", True))
        self.assertEqual(j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
                         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minutes * 60)))
        k("wait", "--for=condition=complete", "job/" + name, "--timeout=60s")

        def seen_complete():
            cj = self.c.kubectl_json("get", "cronjob", "tick")
            return cj if "lastSuccessfulTime" in cj["status"] and not cj["status"].get("active") else None
        cj = wait_for(seen_complete, timeout=20, what="cronjob/tick saw its job complete")
        self.assertEqual(cj["status"]["lastScheduleTime"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minutes * 60)))
        rows = k("get", "cronjob", "tick").stdout.splitlines()
        self.assertRegex(rows[0], r"^NAME\s+SCHEDULE\s+TIMEZONE\s+SUSPEND\s+ACTIVE\s+LAST SCHEDULE\s+AGE$")
        # Kubernetes prints SUSPEND as "False"; minik's table cell is a JSON boolean for now.
        self.assertRegex(rows[1], r"^tick\s+\*/1 \* \* \* \*\s+<none>\s+[Ff]alse\s+0\s+\d+s\s+\d+s$")
        desc = k("describe", "cronjob", "tick").stdout
        self.assertRegex(desc, r"Normal\s+SuccessfulCreate\s+.*cronjob-controller\s+Created job " + name)
        self.assertRegex(desc, r"Normal\s+SawCompletedJob\s+.*Saw completed job: %s, condition: Complete" % name)


if __name__ == "__main__":
    unittest.main()
