"""StatefulSets and DaemonSets with real kubectl on a `minik start`ed cluster
with three hollow nodes: ordered creation with stable names, hostnames and
claims; scale down in reverse order that keeps the claims; partitioned
rolling updates through ControllerRevisions; one daemon pod per node, or per
selected node.

The claims of the StatefulSet are bound to hostPath PersistentVolumes of a
class `manual` that the test creates by hand (the default provisioner is not
involved), so that the pods get scheduled and become Ready."""

import json
import subprocess
import time
import unittest

from cluster import Cluster, wait_for

WATCH_FORMAT = ("jsonpath={.type} {.object.metadata.name} {.object.status.phase} "
                "{.object.status.conditions[?(@.type==\"Ready\")].status} "
                "{.object.metadata.deletionTimestamp}{\"\\n\"}")

PVS = "".join(f"""
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: e2e-sts-www-{i}
spec:
  capacity:
    storage: 1Gi
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath:
    path: /tmp/e2e-sts-www-{i}
""" for i in range(3))

WEB = """
apiVersion: v1
kind: Service
metadata:
  name: nginx
spec:
  clusterIP: None
  selector:
    app: nginx
  ports:
  - port: 80
    name: web
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: nginx
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: registry.k8s.io/nginx-slim:0.24
        ports:
        - containerPort: 80
          name: web
        volumeMounts:
        - name: www
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: www
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: manual
      resources:
        requests:
          storage: 1Gi
"""

DB = """
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: postgres:16
"""

DAEMONS = """
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: agent
        image: busybox:1.36
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ssd
spec:
  selector:
    matchLabels:
      app: ssd
  template:
    metadata:
      labels:
        app: ssd
    spec:
      nodeSelector:
        disk: ssd
      containers:
      - name: ssd
        image: busybox:1.36
"""


def names(c, *args):
    return sorted(c.kubectl("get", *args, "-o", "jsonpath={.items[*].metadata.name}").stdout.split())


class StatefulSetDaemonSetTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster("e2e-sts")
        cls.c.minik("start", "--hollow-nodes", "3", "--no-kubelet")
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

    def get(self, *args):
        return json.loads(self.k(*args, "-o", "json").stdout)

    def watch_pods(self, ns):
        """Starts `kubectl get pods -w` and returns it once its watch is open."""
        w = self.c.popen_kubectl("-n", ns, "get", "pods", "-w", "--output-watch-events",
                                 "-o", WATCH_FORMAT)
        time.sleep(1.0)
        return w

    @staticmethod
    def stop_watch(w):
        w.terminate()
        try:
            out, _ = w.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            w.kill()
            out, _ = w.communicate()
        return [line.split() for line in out.splitlines() if line.strip()]

    def events(self, ns, obj, reason):
        items = self.get("-n", ns, "get", "events", "--field-selector",
                         f"involvedObject.name={obj},reason={reason}")["items"]
        items.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
        return [e["message"] for e in items]

    def pod_revisions(self, ns, app):
        pods = self.get("-n", ns, "get", "pods", "-l", f"app={app}")["items"]
        return {p["metadata"]["name"]: p["metadata"]["labels"].get("controller-revision-hash")
                for p in pods}

    def test_ordered_identity_claims_and_scaling(self):
        ns = self.ns("sts")
        self.k("apply", "-f", "-", input=PVS)
        w = self.watch_pods(ns)
        self.k("-n", ns, "apply", "-f", "-", input=WEB)
        self.k("-n", ns, "rollout", "status", "sts/web", "--timeout=60s")
        wait_for(lambda: self.get("-n", ns, "get", "sts", "web")["status"].get("readyReplicas") == 3,
                 what="3 ready replicas")
        lines = self.stop_watch(w)

        # OrderedReady: each ordinal is created only once the one before is Running and Ready.
        def first(pred):
            return next(i for i, l in enumerate(lines) if pred(l))
        for prev, nxt in (("web-0", "web-1"), ("web-1", "web-2")):
            ready = first(lambda l: l[1] == prev and l[2:4] == ["Running", "True"])
            added = first(lambda l: l[0] == "ADDED" and l[1] == nxt)
            self.assertLess(ready, added, f"{nxt} created before {prev} was ready:\n{lines}")
        self.assertEqual([m for m in self.events(ns, "web", "SuccessfulCreate") if m.startswith("create Pod")],
                         [f"create Pod web-{i} in StatefulSet web successful" for i in range(3)])
        self.assertIn("create Claim www-web-0 Pod web-0 in StatefulSet web success",
                      self.events(ns, "web", "SuccessfulCreate"))

        sts = self.get("-n", ns, "get", "sts", "web")
        st = sts["status"]
        self.assertEqual((st["replicas"], st["availableReplicas"], st["currentReplicas"],
                          st["updatedReplicas"], st["observedGeneration"]),
                         (3, 3, 3, 3, sts["metadata"]["generation"]))
        self.assertEqual(st["currentRevision"], st["updateRevision"])
        self.assertTrue(st["updateRevision"].startswith("web-"))
        revs = self.get("-n", ns, "get", "controllerrevisions")["items"]
        self.assertEqual([r["metadata"]["name"] for r in revs], [st["updateRevision"]])
        self.assertEqual(revs[0]["revision"], 1)
        self.assertEqual(revs[0]["metadata"]["ownerReferences"][0]["name"], "web")
        self.assertEqual(revs[0]["data"]["spec"]["template"]["spec"]["containers"][0]["image"],
                         "registry.k8s.io/nginx-slim:0.24")

        # Stable identity: hostname, subdomain, labels, and a claim per ordinal.
        for i in range(3):
            pod = self.get("-n", ns, "get", "pod", f"web-{i}")
            self.assertEqual(pod["spec"]["hostname"], f"web-{i}")
            self.assertEqual(pod["spec"]["subdomain"], "nginx")
            labels = pod["metadata"]["labels"]
            self.assertEqual(labels["statefulset.kubernetes.io/pod-name"], f"web-{i}")
            self.assertEqual(labels["apps.kubernetes.io/pod-index"], str(i))
            self.assertEqual(labels["controller-revision-hash"], st["updateRevision"])
            self.assertEqual(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet")
            vols = {v["name"]: v for v in pod["spec"]["volumes"]}
            self.assertEqual(vols["www"]["persistentVolumeClaim"]["claimName"], f"www-web-{i}")
        claims = self.get("-n", ns, "get", "pvc")["items"]
        self.assertEqual(sorted(c["metadata"]["name"] for c in claims),
                         ["www-web-0", "www-web-1", "www-web-2"])
        for c in claims:
            self.assertEqual(c["metadata"]["labels"], {"app": "nginx"})
            self.assertEqual(c["status"]["phase"], "Bound")
        out = self.k("-n", ns, "get", "sts", "web").stdout
        self.assertRegex(out, r"web\s+3/3")

        # Scale down: the highest ordinal first, each gone before the next; claims stay.
        w = self.watch_pods(ns)
        self.k("-n", ns, "scale", "sts/web", "--replicas=1")
        wait_for(lambda: names(self.c, "-n", ns, "pods") == ["web-0"], what="only web-0 left")
        lines = self.stop_watch(w)
        gone2 = next(i for i, l in enumerate(lines) if l[0] == "DELETED" and l[1] == "web-2")
        term1 = next(i for i, l in enumerate(lines) if l[1] == "web-1" and len(l) == 5)
        self.assertLess(gone2, term1, f"web-1 deleted before web-2 was gone:\n{lines}")
        self.assertEqual(self.events(ns, "web", "SuccessfulDelete"),
                         ["delete Pod web-2 in StatefulSet web successful",
                          "delete Pod web-1 in StatefulSet web successful"])
        self.assertEqual(names(self.c, "-n", ns, "pvc"), ["www-web-0", "www-web-1", "www-web-2"])
        wait_for(lambda: self.get("-n", ns, "get", "sts", "web")["status"]["replicas"] == 1,
                 what="status.replicas 1")

        # Scale up again: the same names reuse their claims.
        self.k("-n", ns, "scale", "sts/web", "--replicas=3")
        self.k("-n", ns, "rollout", "status", "sts/web", "--timeout=60s")
        self.assertEqual(names(self.c, "-n", ns, "pods"), ["web-0", "web-1", "web-2"])
        self.assertEqual(names(self.c, "-n", ns, "pvc"), ["www-web-0", "www-web-1", "www-web-2"])
        pod = self.get("-n", ns, "get", "pod", "web-2")
        self.assertEqual(pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"], "www-web-2")

    def test_partitioned_rolling_update_and_replacement(self):
        ns = self.ns("roll")
        self.k("-n", ns, "apply", "-f", "-", input=DB)
        self.k("-n", ns, "rollout", "status", "sts/db", "--timeout=60s")
        old = self.get("-n", ns, "get", "sts", "db")["status"]["currentRevision"]

        # Only ordinals at or above the partition move to the new revision.
        self.k("-n", ns, "patch", "sts/db", "-p",
               '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}')
        self.k("-n", ns, "set", "image", "sts/db", "db=postgres:17")
        out = self.k("-n", ns, "rollout", "status", "sts/db", "--timeout=60s").stdout
        self.assertIn("partitioned roll out complete: 1 new pods have been updated", out)
        st = self.get("-n", ns, "get", "sts", "db")["status"]
        new = st["updateRevision"]
        self.assertNotEqual(new, old)
        self.assertEqual(st["currentRevision"], old)
        self.assertEqual((st["updatedReplicas"], st["currentReplicas"]), (1, 2))
        self.assertEqual(self.pod_revisions(ns, "db"), {"db-0": old, "db-1": old, "db-2": new})
        self.assertEqual(self.get("-n", ns, "get", "pod", "db-0")["spec"]["containers"][0]["image"],
                         "postgres:16")
        self.assertEqual(self.get("-n", ns, "get", "pod", "db-2")["spec"]["containers"][0]["image"],
                         "postgres:17")
        revs = sorted((r["revision"], r["metadata"]["name"])
                      for r in self.get("-n", ns, "get", "controllerrevisions")["items"])
        self.assertEqual(revs, [(1, old), (2, new)])

        # A deleted pod comes back with its name, at the revision its ordinal should have.
        uid = self.get("-n", ns, "get", "pod", "db-1")["metadata"]["uid"]
        self.k("-n", ns, "delete", "pod", "db-1", "--wait=false")
        wait_for(lambda: self.k("-n", ns, "get", "pod", "db-1", "-o", "jsonpath={.metadata.uid}",
                                check=False).stdout not in ("", uid),
                 what="db-1 replaced")
        self.k("-n", ns, "rollout", "status", "sts/db", "--timeout=60s")
        self.assertEqual(self.pod_revisions(ns, "db")["db-1"], old)

        # Lowering the partition finishes the rollout, from the highest ordinal down.
        self.k("-n", ns, "patch", "sts/db", "-p",
               '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
        self.k("-n", ns, "rollout", "status", "sts/db", "--timeout=60s")
        wait_for(lambda: self.get("-n", ns, "get", "sts", "db")["status"].get("currentRevision") == new,
                 what="the update revision to become current")
        self.assertEqual(self.pod_revisions(ns, "db"), {"db-0": new, "db-1": new, "db-2": new})
        deletes = self.events(ns, "db", "SuccessfulDelete")
        self.assertEqual(deletes[-2:], ["delete Pod db-1 in StatefulSet db successful",
                                        "delete Pod db-0 in StatefulSet db successful"])

        # Undo goes back to the first template; its revision becomes the newest.
        self.k("-n", ns, "rollout", "undo", "sts/db")
        self.k("-n", ns, "rollout", "status", "sts/db", "--timeout=60s")
        wait_for(lambda: self.pod_revisions(ns, "db") == {"db-0": old, "db-1": old, "db-2": old},
                 what="every pod back at the first revision")
        revs = {r["metadata"]["name"]: r["revision"]
                for r in self.get("-n", ns, "get", "controllerrevisions")["items"]}
        self.assertEqual(revs, {old: 3, new: 2})

    def test_daemonsets_one_pod_per_eligible_node(self):
        ns = self.ns("ds")
        self.k("-n", ns, "apply", "-f", "-", input=DAEMONS)
        self.k("-n", ns, "rollout", "status", "ds/agent", "--timeout=60s")
        nodes = names(self.c, "nodes")
        pods = self.get("-n", ns, "get", "pods", "-l", "app=agent")["items"]
        self.assertEqual(sorted(p["spec"]["nodeName"] for p in pods), nodes)
        for p in pods:
            term = p["spec"]["affinity"]["nodeAffinity"][
                "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
            self.assertEqual(term, [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                      "values": [p["spec"]["nodeName"]]}]}])
            keys = {(t.get("key"), t.get("effect")) for t in p["spec"]["tolerations"]}
            self.assertIn(("node.kubernetes.io/unschedulable", "NoSchedule"), keys)
            self.assertIn(("node.kubernetes.io/not-ready", "NoExecute"), keys)
        st = self.get("-n", ns, "get", "ds", "agent")["status"]
        self.assertEqual((st["desiredNumberScheduled"], st["currentNumberScheduled"],
                          st["numberReady"], st["numberAvailable"], st["updatedNumberScheduled"],
                          st["numberMisscheduled"]), (3, 3, 3, 3, 3, 0))
        self.assertEqual(names(self.c, "-n", ns, "pods", "-l", "app=ssd"), [])

        # A node that gets the label gets the second daemon set's pod, and only it.
        self.k("label", "node", nodes[1], "disk=ssd")
        try:
            wait_for(lambda: [p["spec"].get("nodeName") for p in
                              self.get("-n", ns, "get", "pods", "-l", "app=ssd")["items"]] == [nodes[1]],
                     what=f"one ssd pod on {nodes[1]}")
            self.k("-n", ns, "rollout", "status", "ds/ssd", "--timeout=60s")
            self.assertRegex(self.k("-n", ns, "get", "ds", "ssd").stdout,
                             r"ssd\s+1\s+1\s+1\s+1\s+1\s+disk=ssd")
        finally:
            self.k("label", "node", nodes[1], "disk-")
        wait_for(lambda: names(self.c, "-n", ns, "pods", "-l", "app=ssd") == [],
                 what="the ssd pod gone with the label")

        # A rolling update replaces every pod, one node at a time.
        before = set(names(self.c, "-n", ns, "pods", "-l", "app=agent"))
        self.k("-n", ns, "set", "image", "ds/agent", "agent=busybox:1.37")
        out = self.k("-n", ns, "rollout", "status", "ds/agent", "--timeout=60s").stdout
        self.assertIn('daemon set "agent" successfully rolled out', out)
        wait_for(lambda: len(names(self.c, "-n", ns, "pods", "-l", "app=agent")) == 3,
                 what="3 agent pods")
        pods = self.get("-n", ns, "get", "pods", "-l", "app=agent")["items"]
        self.assertFalse(before & {p["metadata"]["name"] for p in pods})
        self.assertEqual(sorted(p["spec"]["nodeName"] for p in pods), nodes)
        self.assertEqual({p["spec"]["containers"][0]["image"] for p in pods}, {"busybox:1.37"})
        hashes = {p["metadata"]["labels"]["controller-revision-hash"] for p in pods}
        self.assertEqual(len(hashes), 1)
        revs = {r["metadata"]["name"]: r["revision"] for r in
                self.get("-n", ns, "get", "controllerrevisions", "-l", "app=agent")["items"]}
        self.assertEqual(revs[f"agent-{hashes.pop()}"], 2)
        self.assertEqual(len(revs), 2)


if __name__ == "__main__":
    unittest.main()
