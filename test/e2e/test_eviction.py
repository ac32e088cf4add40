"""Node-pressure eviction with real containers: thresholds set just below
what the machine has free (`minik start --extra-config kubelet.eviction-hard=...`),
then a pod that fills its emptyDir, or its memory, past them."""

import json
import os
import time
import unittest

from cluster import Cluster, wait_for

NODE = "e2e-evict"


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    raise AssertionError("no MemAvailable in /proc/meminfo")


class EvictionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster(NODE)
        # A first start builds the node's images; the thresholds are set after it,
        # when the node's disk use is settled, by starting it again with them.
        cls.c.start()
        cls.wait_ready()
        cls.c.minik("stop")
        st = os.statvfs(cls.c.dir)
        disk_free_kib = st.f_bavail * st.f_frsize // 1024
        # Pressure once a pod writes 400 MiB, or holds 1.5 GiB more memory than now.
        disk = disk_free_kib - 400 * 1024
        memory = mem_available_kib() - 1536 * 1024
        cls.c.start("--extra-config",
                    f"kubelet.eviction-hard=nodefs.available<{disk}Ki,memory.available<{memory}Ki",
                    "--extra-config", "kubelet.housekeeping-interval=500ms",
                    "--extra-config", "kubelet.eviction-pressure-transition-period=15s")
        cls.wait_ready()

    @classmethod
    def wait_ready(cls):
        def ready():
            r = cls.c.kubectl("get", "node", NODE, "-o", "json", check=False)
            if r.returncode != 0:
                return False
            node = json.loads(r.stdout)
            return any(c["type"] == "Ready" and c["status"] == "True"
                       for c in node["status"]["conditions"]) and node["status"].get("images")
        wait_for(ready, timeout=60, what="the node to be Ready with its images")

    @classmethod
    def tearDownClass(cls):
        cls.c.delete()

    def k(self, *args, **kw):
        return self.c.kubectl(*args, **kw)

    def pod(self, name):
        return json.loads(self.k("get", "pod", name, "-o", "json").stdout)

    def condition(self, type_):
        node = json.loads(self.k("get", "node", NODE, "-o", "json").stdout)
        return next(c for c in node["status"]["conditions"] if c["type"] == type_)

    def taints(self):
        node = json.loads(self.k("get", "node", NODE, "-o", "json").stdout)
        return [t["key"] for t in node["spec"].get("taints") or []]

    def run_pod(self, name, command, extra=""):
        self.k("apply", "-f", "-", input=f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: [sh, -c, '{command}']
    volumeMounts: [{{name: scratch, mountPath: /scratch}}]
{extra}  volumes: [{{name: scratch, emptyDir: {{}}}}]
""")

    def wait_pressure_gone(self, type_):
        wait_for(lambda: self.condition(type_)["status"] == "False", timeout=60,
                 what=f"{type_} to end")
        wait_for(lambda: not self.taints(), timeout=30, what="the pressure taint to go")

    def test_disk_pressure_evicts_the_pod_that_fills_the_disk(self):
        self.run_pod("quiet", "sleep 3600")
        self.k("wait", "--for=condition=Ready", "pod/quiet", "--timeout=60s", timeout=70)
        self.run_pod("filler", "dd if=/dev/zero of=/scratch/fill bs=1M count=600; sleep 3600")
        wait_for(lambda: self.pod("filler")["status"].get("reason") == "Evicted", timeout=90,
                 what="the filler to be evicted")
        st = self.pod("filler")["status"]
        self.assertEqual(st["phase"], "Failed")
        self.assertIn("The node was low on resource: ephemeral-storage", st["message"])
        self.assertIn("DisruptionTarget", [c["type"] for c in st["conditions"]])
        # The pod that did nothing keeps running.
        self.assertEqual(self.pod("quiet")["status"]["phase"], "Running")
        self.assertEqual(self.condition("DiskPressure")["status"], "True")
        self.assertEqual(self.condition("DiskPressure")["reason"], "KubeletHasDiskPressure")
        wait_for(lambda: "node.kubernetes.io/disk-pressure" in self.taints(), timeout=15,
                 what="the disk-pressure taint")
        # A pod bound to the node while it is under pressure is refused.
        self.run_pod("late", "sleep 3600", extra=f"  nodeName: {NODE}\n")
        wait_for(lambda: self.pod("late")["status"].get("reason") == "Evicted", timeout=30,
                 what="the late pod to be refused")
        self.assertIn("DiskPressure", self.pod("late")["status"]["message"])
        events = self.k("get", "events", "--field-selector", "involvedObject.name=filler").stdout
        self.assertIn("Evicted", events)
        # The evicted pod's emptyDir went with it, so the pressure ends.
        self.wait_pressure_gone("DiskPressure")
        self.assertEqual(self.pod("quiet")["status"]["phase"], "Running")
        self.k("delete", "pod", "quiet", "filler", "late", "--wait=false")

    def test_memory_pressure_evicts_the_pod_using_most_memory(self):
        self.run_pod("small", "sleep 3600")
        self.k("wait", "--for=condition=Ready", "pod/small", "--timeout=60s", timeout=70)
        # tail keeps a line without a newline in memory: 3 GiB of zeros.
        self.run_pod("hog", "head -c 3221225472 /dev/zero | tail; sleep 3600")
        wait_for(lambda: self.pod("hog")["status"].get("reason") == "Evicted", timeout=90,
                 what="the hog to be evicted")
        st = self.pod("hog")["status"]
        self.assertEqual(st["phase"], "Failed")
        self.assertIn("The node was low on resource: memory", st["message"])
        self.assertEqual(self.pod("small")["status"]["phase"], "Running")
        self.assertEqual(self.condition("MemoryPressure")["status"], "True")
        # BestEffort pods are refused while memory is short; a pod with requests is not.
        self.run_pod("besteffort", "sleep 3600", extra=f"  nodeName: {NODE}\n")
        wait_for(lambda: self.pod("besteffort")["status"].get("reason") == "Evicted", timeout=30,
                 what="the BestEffort pod to be refused")
        self.assertIn("MemoryPressure", self.pod("besteffort")["status"]["message"])
        self.wait_pressure_gone("MemoryPressure")
        self.assertEqual(self.pod("small")["status"]["phase"], "Running")
        self.k("delete", "pod", "small", "hog", "besteffort", "--wait=false")


if __name__ == "__main__":
    unittest.main()
