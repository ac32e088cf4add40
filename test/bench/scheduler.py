#!/usr/bin/python3
"""The scheduler and the controllers at scale, on simulated nodes (`minik
start --hollow-nodes N --no-kubelet`, as kwok does): no containers run, so
this measures the control plane alone.

- Scheduling while pods come: P pods created at once by 16 client threads;
  pods bound per second, from the first binding to the last (and from the
  first create to the last binding), watched through the API.
- The scheduler's own throughput: P pods waiting before the scheduler may
  work (the bench holds its leader Lease, then releases it); pods bound per
  second from the first binding to the last.
- A Deployment of P replicas: from its create until all P pods are Running
  and the Deployment reports them available.
- The memory of every minik process at that point.

Kubernetes' scheduler is quoted at 100 to 300 pods/s on its own benchmarks.

Usage: test/bench/scheduler.py [--nodes 1000] [--pods 10000]
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
os.environ.setdefault("MINIK_BIN", os.path.join(HERE, "..", "..", "build", "minik"))

from cluster import Cluster, processes, wait_for  # noqa: E402


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def minik_processes(home):
    """role -> pid of the minik processes of this cluster."""
    return {args[1]: pid for pid, args in processes()
            if len(args) > 1 and args[0].endswith("minik") and any(home in a for a in args)}


class Watch:
    """Counts pods as they get a node and as they run, with the times."""

    def __init__(self, c, selector):
        self.bound, self.running = {}, {}
        self.proc = subprocess.Popen(
            ["kubectl", "get", "pods", "-l", selector, "--watch", "--output-watch-events", "-o", "json"],
            env=c.env, stdout=subprocess.PIPE)
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        dec = json.JSONDecoder()
        buf = ""
        fd = self.proc.stdout.fileno()
        for chunk in iter(lambda: os.read(fd, 1 << 20), b""):  # what is there, not a full buffer
            buf += chunk.decode()
            while True:
                buf = buf.lstrip()
                try:
                    ev, end = dec.raw_decode(buf)
                except ValueError:
                    break
                buf = buf[end:]
                pod = ev.get("object", {})
                name = pod.get("metadata", {}).get("name")
                now = time.monotonic()
                if pod.get("spec", {}).get("nodeName") and name not in self.bound:
                    self.bound[name] = now
                if pod.get("status", {}).get("phase") == "Running" and name not in self.running:
                    self.running[name] = now

    def stop(self):
        self.proc.kill()
        self.proc.wait()

    def bind_rate(self, pods):
        """Waits for `pods` bindings, stops; returns (first, last binding time, pods/s)."""
        wait_for(lambda: len(self.bound) >= pods, timeout=900, interval=0.5, what="every pod bound")
        self.stop()
        first, last = min(self.bound.values()), max(self.bound.values())
        return first, last, pods / max(1e-9, last - first)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    args = ap.parse_args()
    c = Cluster("bench-sched")
    try:
        t0 = time.monotonic()
        c.minik("start", "--no-kubelet", "--hollow-nodes", str(args.nodes), timeout=600)
        wait_for(lambda: c.kubectl("get", "nodes", "--no-headers").stdout.count(" Ready ") >= args.nodes,
                 timeout=600, interval=1, what=f"{args.nodes} nodes Ready")
        print(f"{args.nodes} hollow nodes Ready {time.monotonic() - t0:.1f} s after `minik start`", flush=True)
        from kubernetes import client
        _, api = c.python_client()
        v1 = client.CoreV1Api(api)
        apps = client.AppsV1Api(api)

        def create_pods(prefix):
            """Creates P pods from 16 client threads; returns their create times."""
            created = [None] * args.pods

            def make(part):
                for i in part:
                    created[i] = time.monotonic()
                    v1.create_namespaced_pod("default", {
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": f"{prefix}{i}", "labels": {"bench": prefix}},
                        "spec": {"containers": [{"name": "c", "image": "busybox",
                                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})
            threads = [threading.Thread(target=make, args=(range(i, args.pods, 16),)) for i in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return created

        def delete_pods(prefix):
            v1.delete_collection_namespaced_pod("default", label_selector=f"bench={prefix}",
                                                grace_period_seconds=0)
            wait_for(lambda: not c.kubectl("get", "pods", "-l", f"bench={prefix}", "--no-headers",
                                           "-o", "name").stdout.strip(),
                     timeout=900, interval=1, what="the pods to go")

        # 1. P pods created while the scheduler runs: bound as they come.
        w = Watch(c, "bench=live")
        time.sleep(1)
        created = create_pods("live")
        _, last_bind, rate = w.bind_rate(args.pods)
        first_create, last_create = min(created), max(created)
        print(f"{args.pods} pods created while scheduling: created in {last_create - first_create:.1f} s "
              f"({args.pods / max(1e-9, last_create - first_create):,.0f}/s), bound at "
              f"{rate:,.0f} pods/s (first to last binding), "
              f"all bound {last_bind - first_create:.1f} s after the first create", flush=True)
        delete_pods("live")

        # 2. P pods waiting, then the scheduler let go: its own throughput. The
        # bench takes the scheduler's leader Lease, so the scheduler exits (as
        # kube-scheduler does when it loses its lease) and its restart stands
        # by; the pods are created; then the Lease is released.
        coord = client.CoordinationV1Api(api)
        old = minik_processes(c.env["MINIK_HOME"])["scheduler"]
        lease = coord.read_namespaced_lease("kube-scheduler", "kube-system")
        lease.spec.holder_identity = "bench"
        lease.spec.lease_duration_seconds = 3600
        lease.spec.renew_time = datetime.datetime.now(datetime.timezone.utc)
        coord.replace_namespaced_lease("kube-scheduler", "kube-system", lease)
        wait_for(lambda: minik_processes(c.env["MINIK_HOME"]).get("scheduler") not in (None, old),
                 timeout=60, interval=0.2, what="the scheduler to stand by")
        w = Watch(c, "bench=backlog")
        time.sleep(1)
        create_pods("backlog")
        time.sleep(1)
        waiting = len(w.bound)
        t = time.monotonic()
        coord.delete_namespaced_lease("kube-scheduler", "kube-system")
        first_bind, last_bind, rate = w.bind_rate(args.pods)
        print(f"{args.pods} pods waiting ({waiting} bound before the scheduler was let go): "
              f"bound at {rate:,.0f} pods/s (first to last "
              f"binding), the first {first_bind - t:.1f} s and the last {last_bind - t:.1f} s after the "
              f"Lease was released", flush=True)
        delete_pods("backlog")

        # 3. A Deployment of P replicas.
        w = Watch(c, "app=big")
        time.sleep(1)
        t = time.monotonic()
        apps.create_namespaced_deployment("default", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "big"},
            "spec": {"replicas": args.pods, "selector": {"matchLabels": {"app": "big"}},
                     "template": {"metadata": {"labels": {"app": "big"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx",
                                                           "resources": {"requests": {"cpu": "10m"}}}]}}}})
        wait_for(lambda: len(w.running) >= args.pods, timeout=1200, interval=0.5, what="every replica Running")
        all_running = max(w.running.values()) - t
        wait_for(lambda: (apps.read_namespaced_deployment_status("big", "default").status.available_replicas or 0)
                 >= args.pods, timeout=600, interval=0.5, what="the Deployment to be available")
        available = time.monotonic() - t
        w.stop()
        print(f"Deployment of {args.pods}: all Running {all_running:.1f} s after its create, "
              f"available {available:.1f} s", flush=True)
        procs = minik_processes(c.env["MINIK_HOME"])
        print("memory (RSS MiB) with it running: " +
              ", ".join(f"{role} {rss_mib(pid):.0f}" for role, pid in sorted(procs.items())))
    finally:
        c.delete()


if __name__ == "__main__":
    main()
