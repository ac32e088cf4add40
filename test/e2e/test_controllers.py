"""The control plane's loops with real kubectl on a `minik start`ed cluster
with hollow nodes: deployments (scale, rolling update, rollout status and
undo), self-healing, garbage collection with every propagation policy,
namespaces, services' endpoints, storage, scheduling, node failure."""

import json
import subprocess
import time
import unittest

from cluster import Cluster, wait_for


def names(c, *args):
    return sorted(c.kubectl("get", *args, "-o", "jsonpath={.items[*].metadata.name}").stdout.split())


class ControllersTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster("e2e-ctl")
        # Room for a big Deployment on three nodes.
        cls.c.minik("start", "--hollow-nodes", "3", "--no-kubelet", "--extra-config", "hollow-nodes.pods=1000")
        wait_for(lambda: len(names(cls.c, "nodes")) == 3, what="3 hollow nodes")

    @classmethod
    def tearDownClass(cls):
        cls.c.delete()

    def k(self, *args, **kw):
        return self.c.kubectl(*args, **kw)

    def ns(self, name):
        self.k("create", "namespace", name)
        wait_for(lambda: self.k("-n", name, "get", "sa", "default", check=False).returncode == 0,
                 what="the default service account")
        return name

    def test_deployment_scale_rollout_undo(self):
        ns = self.ns("dep")
        self.k("-n", ns, "create", "deployment", "web", "--image=nginx:1.27", "--replicas=2")
        self.k("-n", ns, "rollout", "status", "deploy/web", "--timeout=60s")
        out = self.k("-n", ns, "get", "deploy", "web").stdout
        self.assertRegex(out, r"web\s+2/2\s+2\s+2")
        self.k("-n", ns, "scale", "deploy/web", "--replicas=5")
        self.k("-n", ns, "rollout", "status", "deploy/web", "--timeout=60s")
        wait_for(lambda: len(names(self.c, "-n", ns, "pods", "--field-selector=status.phase=Running")) == 5,
                 what="5 running pods")
        pods = json.loads(self.k("-n", ns, "get", "pods", "-o", "json").stdout)["items"]
        self.assertGreaterEqual(len({p["spec"]["nodeName"] for p in pods}), 2, "pods spread over nodes")
        self.k("-n", ns, "scale", "deploy/web", "--replicas=3")
        wait_for(lambda: len(names(self.c, "-n", ns, "pods")) == 3, what="scale down to 3")

        self.k("-n", ns, "set", "image", "deploy/web", "nginx=nginx:1.28")
        out = self.k("-n", ns, "rollout", "status", "deploy/web", "--timeout=60s").stdout
        self.assertIn('deployment "web" successfully rolled out', out)
        rs = json.loads(self.k("-n", ns, "get", "rs", "-o", "json").stdout)["items"]
        self.assertEqual(len(rs), 2)
        by_rev = {r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]: r for r in rs}
        self.assertEqual(by_rev["2"]["spec"]["replicas"], 3)
        self.assertEqual(by_rev["1"]["spec"]["replicas"], 0)
        self.assertEqual(by_rev["2"]["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.28")
        images = {p["spec"]["containers"][0]["image"]
                  for p in json.loads(self.k("-n", ns, "get", "pods", "-o", "json").stdout)["items"]}
        self.assertEqual(images, {"nginx:1.28"})
        hist = self.k("-n", ns, "rollout", "history", "deploy/web").stdout
        self.assertRegex(hist, r"(?m)^1\s")
        self.assertRegex(hist, r"(?m)^2\s")

        self.k("-n", ns, "rollout", "undo", "deploy/web")
        self.k("-n", ns, "rollout", "status", "deploy/web", "--timeout=60s")
        d = json.loads(self.k("-n", ns, "get", "deploy", "web", "-o", "json").stdout)
        self.assertEqual(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.27")
        self.assertEqual(d["metadata"]["annotations"]["deployment.kubernetes.io/revision"], "3")
        self.assertEqual(d["status"]["observedGeneration"], d["metadata"]["generation"])
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        self.assertEqual(conds["Available"]["status"], "True")
        self.assertEqual(conds["Progressing"]["reason"], "NewReplicaSetAvailable")
        events = self.k("-n", ns, "describe", "deploy", "web").stdout
        self.assertIn("ScalingReplicaSet", events)

    def test_big_deployment_creates_exactly_its_replicas(self):
        # Pods are created 16 at a time while the informer reports them: a
        # sync that lists pods and then finds its expectations met must not
        # create (and then delete) more than asked.
        ns = self.ns("big")
        self.k("-n", ns, "create", "deployment", "big", "--image=nginx", "--replicas=2000")
        self.k("-n", ns, "rollout", "status", "deploy/big", "--timeout=120s")

        def reasons():
            events = json.loads(self.k("-n", ns, "get", "events", "-o", "json").stdout)["items"]
            return [e["reason"] for e in events if e["involvedObject"]["kind"] == "ReplicaSet"]
        # Events are written behind the pods, by the recorder's own thread:
        # wait for them rather than for a fixed time, then a little longer
        # for any extra create that would follow.
        wait_for(lambda: reasons().count("SuccessfulCreate") >= 2000, 60, interval=1,
                 what="an event per created pod")
        time.sleep(2)
        reasons = reasons()
        self.assertEqual(reasons.count("SuccessfulCreate"), 2000)
        self.assertEqual(reasons.count("SuccessfulDelete"), 0)
        self.assertEqual(len(names(self.c, "-n", ns, "pods")), 2000)
        self.k("delete", "namespace", ns, "--timeout=120s")

    def test_recreate_and_pause(self):
        ns = self.ns("rec")
        self.k("-n", ns, "create", "deployment", "db", "--image=postgres:16", "--replicas=2")
        self.k("-n", ns, "patch", "deploy/db", "-p", '{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}')
        self.k("-n", ns, "rollout", "status", "deploy/db", "--timeout=60s")
        self.k("-n", ns, "rollout", "pause", "deploy/db")
        self.k("-n", ns, "set", "image", "deploy/db", "postgres=postgres:17")
        time.sleep(2)
        self.assertEqual(len(names(self.c, "-n", ns, "rs")), 1, "a paused deployment does not roll out")
        self.k("-n", ns, "rollout", "resume", "deploy/db")
        self.k("-n", ns, "rollout", "status", "deploy/db", "--timeout=60s")
        images = {p["spec"]["containers"][0]["image"]
                  for p in json.loads(self.k("-n", ns, "get", "pods", "-o", "json").stdout)["items"]}
        self.assertEqual(images, {"postgres:17"})

    def test_progress_deadline_exceeded(self):
        ns = self.ns("stuck")
        self.k("-n", ns, "apply", "-f", "-", input="""apiVersion: apps/v1
kind: Deployment
metadata: {name: stuck}
spec:
  replicas: 1
  progressDeadlineSeconds: 3
  selector: {matchLabels: {app: stuck}}
  template:
    metadata: {labels: {app: stuck}}
    spec:
      containers:
      - {name: c, image: nginx, resources: {requests: {cpu: "100"}}}
""")
        r = self.k("-n", ns, "rollout", "status", "deploy/stuck", "--timeout=30s", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('deployment "stuck" exceeded its progress deadline', r.stderr)
        d = json.loads(self.k("-n", ns, "get", "deploy", "stuck", "-o", "json").stdout)
        prog = [c for c in d["status"]["conditions"] if c["type"] == "Progressing"][0]
        self.assertEqual((prog["status"], prog["reason"]), ("False", "ProgressDeadlineExceeded"))

    def test_leader_election_keeps_one_controller_manager(self):
        lease = lambda: json.loads(self.k("-n", "kube-system", "get", "lease", "kube-controller-manager",
                                          "-o", "json").stdout)["spec"]
        holder = lease()["holderIdentity"]
        certs = f"{self.c.env['MINIK_HOME']}/profiles/{self.c.profile}/node/certs"
        with open(f"{self.c.env['MINIK_HOME']}/profiles/{self.c.profile}/config.json") as f:
            port = json.load(f)["apiserverPort"]
        import cluster
        second = subprocess.Popen(
            [cluster.MINIK, "controller-manager", "--server", f"https://127.0.0.1:{port}", "--cert-dir", certs,
             "--data-dir", self.c.dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(4)
            self.assertEqual(lease()["holderIdentity"], holder)
            self.assertIsNone(second.poll(), "the stand-by keeps running")
        finally:
            second.terminate()
            out, _ = second.communicate(timeout=10)
        self.assertIn("standing by", out)
        self.assertNotIn("started", out)

    def test_deleted_pods_come_back(self):
        ns = self.ns("heal")
        self.k("-n", ns, "create", "deployment", "web", "--image=nginx", "--replicas=3")
        self.k("-n", ns, "rollout", "status", "deploy/web", "--timeout=60s")
        victim = names(self.c, "-n", ns, "pods")[0]
        t0 = time.time()
        self.k("-n", ns, "delete", "pod", victim, "--wait=false")
        wait_for(lambda: victim not in names(self.c, "-n", ns, "pods") and
                 len(names(self.c, "-n", ns, "pods", "--field-selector=status.phase=Running")) == 3,
                 timeout=10, interval=0.05, what="a replacement pod")
        self.assertLess(time.time() - t0, 2.0)
        # An orphan matching the selector is adopted; a pod that stops matching is released.
        pod = names(self.c, "-n", ns, "pods")[0]
        self.k("-n", ns, "label", "pod", pod, "app=other", "--overwrite")
        wait_for(lambda: len(names(self.c, "-n", ns, "pods", "-l", "app=web")) == 3, what="replacement of a released pod")
        p = json.loads(self.k("-n", ns, "get", "pod", pod, "-o", "json").stdout)
        self.assertFalse(p["metadata"].get("ownerReferences"))

    def test_cascading_deletion(self):
        ns = self.ns("gc")
        for name in ["bg", "fg", "orph"]:
            self.k("-n", ns, "create", "deployment", name, "--image=nginx", "--replicas=2")
        for name in ["bg", "fg", "orph"]:
            self.k("-n", ns, "rollout", "status", f"deploy/{name}", "--timeout=60s")
        self.k("-n", ns, "delete", "deploy", "bg")
        wait_for(lambda: not names(self.c, "-n", ns, "pods", "-l", "app=bg"), what="background deletion")
        self.k("-n", ns, "delete", "deploy", "fg", "--cascade=foreground", timeout=60)
        self.assertEqual(names(self.c, "-n", ns, "rs", "-l", "app=fg"), [])
        wait_for(lambda: not names(self.c, "-n", ns, "pods", "-l", "app=fg"), what="foreground deletion")
        self.k("-n", ns, "delete", "deploy", "orph", "--cascade=orphan")
        time.sleep(2)
        rs = names(self.c, "-n", ns, "rs", "-l", "app=orph")
        self.assertEqual(len(rs), 1, "the ReplicaSet is orphaned, not deleted")
        r = json.loads(self.k("-n", ns, "get", "rs", rs[0], "-o", "json").stdout)
        self.assertFalse(r["metadata"].get("ownerReferences"))
        self.assertEqual(len(names(self.c, "-n", ns, "pods", "-l", "app=orph")), 2)

    def test_namespace_deletion_empties_it(self):
        ns = self.ns("doomed")
        self.k("-n", ns, "create", "deployment", "web", "--image=nginx", "--replicas=2")
        self.k("-n", ns, "create", "configmap", "c", "--from-literal=a=b")
        self.k("-n", ns, "create", "service", "clusterip", "web", "--tcp=80:80")
        self.k("-n", ns, "rollout", "status", "deploy/web", "--timeout=60s")
        self.k("delete", "namespace", ns, timeout=90)
        self.assertNotEqual(self.k("get", "namespace", ns, check=False).returncode, 0)
        self.assertEqual(self.k("get", "all,cm", "-n", ns, "-o", "name").stdout.strip(), "")

    def test_endpoints_follow_ready_pods(self):
        ns = self.ns("svc")
        self.k("-n", ns, "create", "deployment", "web", "--image=nginx", "--replicas=3", "--port=8080")
        self.k("-n", ns, "expose", "deploy/web", "--port=80", "--target-port=8080")
        self.k("-n", ns, "rollout", "status", "deploy/web", "--timeout=60s")

        def ips():
            ep = json.loads(self.k("-n", ns, "get", "endpoints", "web", "-o", "json").stdout)
            return sorted(a["ip"] for s in ep.get("subsets", []) for a in s.get("addresses", []))
        pod_ips = lambda: sorted(p["status"]["podIP"] for p in json.loads(
            self.k("-n", ns, "get", "pods", "-o", "json").stdout)["items"] if p["status"].get("podIP"))
        wait_for(lambda: len(ips()) == 3 and ips() == pod_ips(), what="endpoints for 3 pods")
        slices = json.loads(self.k("-n", ns, "get", "endpointslices", "-l", "kubernetes.io/service-name=web", "-o", "json").stdout)["items"]
        self.assertEqual(len(slices), 1)
        self.assertEqual(sorted(e["addresses"][0] for e in slices[0]["endpoints"]), pod_ips())
        self.assertEqual(slices[0]["ports"][0]["port"], 8080)
        self.k("-n", ns, "scale", "deploy/web", "--replicas=0")
        wait_for(lambda: ips() == [], what="empty endpoints")
        self.k("-n", ns, "scale", "deploy/web", "--replicas=2")
        wait_for(lambda: len(ips()) == 2, what="endpoints back")

    def test_endpoint_slices_hold_100_and_change_one_at_a_time(self):
        ns = self.ns("many")
        self.k("-n", ns, "create", "deployment", "big", "--image=nginx", "--replicas=150", "--port=80")
        self.k("-n", ns, "expose", "deploy/big", "--port=80")
        self.k("-n", ns, "rollout", "status", "deploy/big", "--timeout=120s", timeout=150)

        def slices():
            return json.loads(self.k("-n", ns, "get", "endpointslices", "-l", "kubernetes.io/service-name=big",
                                     "-o", "json").stdout)["items"]
        wait_for(lambda: sum(len(s.get("endpoints") or []) for s in slices()) == 150, timeout=60,
                 what="150 endpoints in slices")
        before = slices()
        self.assertEqual(len(before), 2)
        self.assertEqual(sorted(len(s["endpoints"]) for s in before), [50, 100])
        # One pod goes: its slice is rewritten, the other is left alone.
        victim = before[0]["endpoints"][0]["targetRef"]["name"]
        untouched = before[1]
        self.k("-n", ns, "delete", "pod", victim, "--wait=false")
        wait_for(lambda: all(victim not in [e["targetRef"]["name"] for e in s.get("endpoints") or []]
                             for s in slices()) and sum(len(s.get("endpoints") or []) for s in slices()) == 150,
                 timeout=60, what="the replacement in the slices")
        after = {s["metadata"]["name"]: s for s in slices()}
        self.assertEqual(after[untouched["metadata"]["name"]]["metadata"]["resourceVersion"],
                         untouched["metadata"]["resourceVersion"])
        self.k("delete", "namespace", ns, "--wait=false")

    def test_storage_provisioning(self):
        ns = self.ns("store")
        sc = self.k("get", "storageclass").stdout
        self.assertRegex(sc, r"standard \(default\)\s+minik.dev/hostpath\s+Delete\s+Immediate")
        self.k("-n", ns, "apply", "-f", "-", input="""apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 2Gi}}
""")
        wait_for(lambda: self.k("-n", ns, "get", "pvc", "data", "-o", "jsonpath={.status.phase}").stdout == "Bound",
                 what="the claim to bind")
        pvc = json.loads(self.k("-n", ns, "get", "pvc", "data", "-o", "json").stdout)
        self.assertEqual(pvc["spec"]["storageClassName"], "standard")
        pv = json.loads(self.k("get", "pv", pvc["spec"]["volumeName"], "-o", "json").stdout)
        self.assertEqual(pv["spec"]["capacity"]["storage"], "2Gi")
        self.assertEqual(pv["spec"]["claimRef"]["name"], "data")
        path = pv["spec"]["hostPath"]["path"]
        import os
        self.assertTrue(os.path.isdir(path))
        self.k("-n", ns, "delete", "pvc", "data")
        wait_for(lambda: self.k("get", "pv", pv["metadata"]["name"], check=False).returncode != 0,
                 what="the volume to be deleted with its claim")
        self.assertFalse(os.path.exists(path))

    def test_unschedulable_pod_reports_why(self):
        ns = self.ns("sched")
        self.k("-n", ns, "run", "huge", "--image=nginx", "--overrides",
               '{"spec":{"containers":[{"name":"huge","image":"nginx","resources":{"requests":{"cpu":"64"}}}]}}')

        def cond():
            p = json.loads(self.k("-n", ns, "get", "pod", "huge", "-o", "json").stdout)
            return [c for c in p["status"].get("conditions", []) if c["type"] == "PodScheduled"]
        c = wait_for(cond, what="PodScheduled condition")[0]
        self.assertEqual(c["status"], "False")
        self.assertEqual(c["reason"], "Unschedulable")
        self.assertIn("0/3 nodes are available: 3 Insufficient cpu", c["message"])
        ev = self.k("-n", ns, "get", "events", "--field-selector", "reason=FailedScheduling").stdout
        self.assertIn("Insufficient cpu", ev)
        # A node selector that only one node matches.
        node = names(self.c, "nodes")[1]
        self.k("label", "node", node, "disk=ssd")
        self.k("-n", ns, "run", "picky", "--image=nginx", "--overrides", '{"spec":{"nodeSelector":{"disk":"ssd"}}}')
        wait_for(lambda: self.k("-n", ns, "get", "pod", "picky", "-o", "jsonpath={.spec.nodeName}").stdout == node,
                 what="the pod on the labelled node")

    def test_zz_node_that_stops_heartbeating(self):
        ns = self.ns("failover")
        certs = f"{self.c.env['MINIK_HOME']}/profiles/{self.c.profile}/node/certs"
        port = json.load(open(f"{self.c.env['MINIK_HOME']}/profiles/{self.c.profile}/config.json"))["apiserverPort"]
        import cluster
        lonely = subprocess.Popen(
            [cluster.MINIK, "hollow-nodes", "--server", f"https://127.0.0.1:{port}", "--cert-dir", certs,
             "--count", "1", "--name-prefix", "lonely-", "--first-index", "40"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: "lonely-40" in names(self.c, "nodes"), what="the extra node")
            # Spread over 4 nodes, 6 pods leave at least one on the extra node. They
            # tolerate a lost node for 2 s instead of the default 300 s.
            self.k("-n", ns, "apply", "-f", "-", input="""apiVersion: apps/v1
kind: Deployment
metadata: {name: mover}
spec:
  replicas: 6
  selector: {matchLabels: {app: mover}}
  template:
    metadata: {labels: {app: mover}}
    spec:
      tolerations:
      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}
      containers: [{name: c, image: nginx}]
""")
            r = self.k("-n", ns, "rollout", "status", "deploy/mover", "--timeout=60s", check=False, timeout=90)
            if r.returncode != 0:
                dump = self.k("-n", ns, "get", "deploy,rs,pods", "-o", "wide", check=False).stdout
                dump += self.k("get", "nodes", "-o", "wide", check=False).stdout
                dump += self.k("-n", ns, "get", "events", check=False).stdout
                self.fail("rollout did not finish:\n" + r.stdout + r.stderr + dump)
        finally:
            lonely.terminate()
            lonely.wait(timeout=10)
        pods = lambda: json.loads(self.k("-n", ns, "get", "pods", "-o", "json").stdout)["items"]
        on_lonely = lambda: [p["metadata"]["name"] for p in pods()
                             if p["spec"].get("nodeName") == "lonely-40" and not p["metadata"].get("deletionTimestamp")]
        self.assertGreaterEqual(len(on_lonely()), 1)
        ready = lambda: self.k("get", "node", "lonely-40", "-o",
                               'jsonpath={.status.conditions[?(@.type=="Ready")].status}').stdout
        wait_for(lambda: ready() == "Unknown", timeout=70, interval=1, what="the node to go NotReady")
        self.assertIn("NotReady", self.k("get", "node", "lonely-40").stdout)
        taints = self.k("get", "node", "lonely-40", "-o", "jsonpath={.spec.taints[*].key}").stdout
        self.assertIn("node.kubernetes.io/unreachable", taints)
        wait_for(lambda: on_lonely() == [], timeout=30, interval=0.5, what="pods to leave the lost node")
        running = lambda: [p for p in pods() if p["status"].get("phase") == "Running"
                           and not p["metadata"].get("deletionTimestamp")]
        wait_for(lambda: len(running()) == 6 and all(p["spec"]["nodeName"] != "lonely-40" for p in running()),
                 what="6 running pods on the other nodes")
        self.k("delete", "node", "lonely-40", "--wait=false")


if __name__ == "__main__":
    unittest.main(verbosity=2)
