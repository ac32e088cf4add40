#!/usr/bin/python3
"""Pod create-to-Running latency on a `minik start`ed node (native driver,
real runc and CNI), with the same image started by `runc run` alone and by
`docker run` (a private Docker engine) in the same run as peers.

For each batch size N, N pods (or containers) are started at once; a pod's
latency runs from just before its create request until a watch sees its
phase Running, a peer's from just before `runc run -d` / `docker run -d`
until the command returns with the container running. N = 1 is repeated
ten times so its percentiles mean something.

Usage: test/bench/pods.py [--counts 1,10,100] (as root; MINIK_BIN names the binary)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
os.environ.setdefault("MINIK_BIN", os.path.join(HERE, "..", "..", "build", "minik"))

import dockerd  # noqa: E402
import images  # noqa: E402
from cluster import Cluster, processes, wait_for  # noqa: E402

IMAGE = "bench/busybox:1"


def percentile(values, p):
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def rounds_for(n):
    return 10 if n == 1 else 1


def run_parallel(argvs, env=None):
    """Starts every command at once; returns each one's seconds to exit 0."""
    lat = [None] * len(argvs)
    errors = []

    def one(i):
        # Not pipes: a detached container inherits them, and reading to their
        # end would wait for the container to exit.
        with tempfile.TemporaryFile() as err:
            t0 = time.monotonic()
            r = subprocess.run(argvs[i], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=err)
            lat[i] = time.monotonic() - t0
            if r.returncode != 0:
                err.seek(0)
                errors.append(f"{' '.join(argvs[i])}: {err.read().decode(errors='replace').strip()}")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(argvs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return lat


def pss_mib(pids):
    """Proportional set size: memory a process holds alone, plus its share of
    what it shares (the minik binary's pages are shared by every shim)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


def processes_under(path, word):
    """PIDs whose command line has `word` as an argument and mentions `path`."""
    return [pid for pid, args in processes() if word in args and any(path in a for a in args)]


class MinikPods:
    def __init__(self, archive):
        self.c = Cluster("bench-pods")
        try:
            self.setup(archive)
        except BaseException:
            self.c.delete()
            raise

    def setup(self, archive):
        self.c.start()
        wait_for(lambda: "Ready" in self.c.kubectl("get", "node", "bench-pods", check=False).stdout,
                 timeout=60, what="the node to be Ready")
        self.c.minik("image", "load", archive)
        from kubernetes import client, watch
        self.client, api_client = self.c.python_client()
        self.v1 = client.CoreV1Api(api_client)
        self.watch = watch
        self.home = self.c.env["MINIK_HOME"]

    def batch(self, n, tag):
        running = {}
        created = {}
        names = [f"{tag}-{i}" for i in range(n)]
        stop = threading.Event()
        rv = self.v1.list_namespaced_pod("default").metadata.resource_version

        def watcher():
            w = self.watch.Watch()
            for ev in w.stream(self.v1.list_namespaced_pod, "default", resource_version=rv,
                               label_selector=f"batch={tag}", timeout_seconds=300):
                pod = ev["object"]
                if pod.status and pod.status.phase == "Running" and pod.metadata.name not in running:
                    running[pod.metadata.name] = time.monotonic()
                if len(running) == n or stop.is_set():
                    w.stop()

        wt = threading.Thread(target=watcher)
        wt.start()
        time.sleep(0.2)  # the watch is open before the first create

        def create(names_part):
            for name in names_part:
                body = {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": name, "labels": {"batch": tag}},
                    "spec": {"terminationGracePeriodSeconds": 0, "containers": [{
                        "name": "c", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                        "command": ["sleep", "3600"]}]},
                }
                created[name] = time.monotonic()
                self.v1.create_namespaced_pod("default", body)

        creators = [threading.Thread(target=create, args=(names[i::8],)) for i in range(min(8, n))]
        for t in creators:
            t.start()
        for t in creators:
            t.join()
        wt.join(timeout=300)
        stop.set()
        if len(running) != n:
            raise RuntimeError(f"only {len(running)} of {n} pods reached Running")
        mem = (pss_mib(processes_under(self.home, "kubelet")),
               pss_mib(processes_under(self.home, "shim")) / n)
        self.v1.delete_collection_namespaced_pod("default", label_selector=f"batch={tag}",
                                                 grace_period_seconds=0)
        wait_for(lambda: not self.v1.list_namespaced_pod("default").items and
                 not processes_under(self.home, "shim"), timeout=300, interval=0.2,
                 what="the pods and their containers to go")
        return [running[nm] - created[nm] for nm in names], mem

    def close(self):
        self.c.delete()


class RuncPeer:
    """`runc run -d` of the image's rootfs, read-only and shared, state in a temp root."""

    def __init__(self, archive):
        self.dir = tempfile.mkdtemp(prefix="minik-bench-runc-")
        self.root = os.path.join(self.dir, "state")
        bundle = os.path.join(self.dir, "bundle")
        rootfs = os.path.join(bundle, "rootfs")
        os.makedirs(rootfs)
        with tarfile.open(archive) as outer:
            manifest = json.load(outer.extractfile("manifest.json"))
            for layer in manifest[0]["Layers"]:
                with tarfile.open(fileobj=outer.extractfile(layer)) as t:
                    t.extractall(rootfs)
        subprocess.run(["runc", "spec", "--bundle", bundle], check=True)
        with open(os.path.join(bundle, "config.json")) as f:
            spec = json.load(f)
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["sleep", "3600"]
        spec["root"]["readonly"] = True
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(spec, f)
        self.bundle = bundle
        self.ids = []

    def batch(self, n, tag):
        ids = [f"minik-bench-{tag}-{i}" for i in range(n)]
        self.ids += ids
        lat = run_parallel([["runc", "--root", self.root, "run", "-d", "--bundle", self.bundle, i]
                            for i in ids])
        self.clean()
        return lat

    def clean(self):
        for i in self.ids:
            subprocess.run(["runc", "--root", self.root, "delete", "-f", i], capture_output=True)
        self.ids = []

    def close(self):
        self.clean()
        shutil.rmtree(self.dir, ignore_errors=True)


class DockerPeer:
    def __init__(self, archive):
        self.d = dockerd.Dockerd()
        try:
            self.d.start()
            self.d.docker("load", "-i", archive)
        except BaseException:
            self.d.stop()
            raise

    def batch(self, n, tag):
        lat = run_parallel([["docker", "run", "-d", "--name", f"{tag}-{i}", IMAGE, "sleep", "3600"]
                            for i in range(n)], env=self.d.env)
        # containerd's shim, one per container, is the peer of minik's.
        self.shim_pss = pss_mib(processes_under(self.d.dir, "-address")) / n
        ids = self.d.docker("ps", "-aq").stdout.split()
        if ids:
            self.d.docker("rm", "-f", *ids, timeout=300)
        return lat

    def close(self):
        self.d.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--counts", default="1,10,100", help="batch sizes, comma-separated")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("pods.py runs containers and needs root")
    counts = [int(x) for x in args.counts.split(",")]
    work = tempfile.mkdtemp(prefix="minik-bench-pods-")
    archive = os.path.join(work, "image.tar")
    images.docker_save_archive(archive, IMAGE, "bench\n")
    results = {}  # (who, n) -> latencies
    memory = {}
    peers = {}
    try:
        sides = [("minik", MinikPods), ("runc", RuncPeer)]
        if dockerd.available():
            sides.append(("docker", DockerPeer))
        else:
            print("docker: dockerd is not installed (apt-get install docker.io); no docker column")
        for who, cls in sides:
            print(f"{who}: setting up", flush=True)
            peers[who] = cls(archive)
            for n in counts:
                lat = []
                for r in range(rounds_for(n)):
                    out = peers[who].batch(n, f"b{n}r{r}")
                    if who == "minik":
                        out, memory[n] = out
                    lat += out
                    if who == "docker":
                        memory[n] = memory[n] + (peers[who].shim_pss,)
                results[(who, n)] = lat
                print(f"{who}: {n} at once: p50 {percentile(lat, 50) * 1000:.0f} ms, "
                      f"p99 {percentile(lat, 99) * 1000:.0f} ms", flush=True)
            peers.pop(who).close()
    finally:
        for p in peers.values():
            p.close()
        shutil.rmtree(work, ignore_errors=True)

    who_all = [w for w, _ in sides]
    print()
    print("| pods at once | " + " | ".join(f"{w} p50 ms | {w} p99 ms" for w in who_all) +
          " | minik p99 / " + " / ".join(who_all[1:]) + " p99 |")
    print("| ---: |" + " ---: | ---: |" * len(who_all) + " ---: |")
    for n in counts:
        row = [f"{percentile(results[(w, n)], q) * 1000:,.0f}" for w in who_all for q in (50, 99)]
        ratios = [f"{percentile(results[('minik', n)], 99) / percentile(results[(w, n)], 99):.2f}x"
                  for w in who_all[1:]]
        print(f"| {n} | " + " | ".join(row) + " | " + " / ".join(ratios) + " |")
    print()
    for n in counts:
        kubelet, shim, *docker_shim = memory[n]
        peer = f" (docker's containerd-shim: {docker_shim[-1]:.1f} MiB)" if docker_shim else ""
        print(f"with {n} pods running: kubelet PSS {kubelet:.1f} MiB, "
              f"shim PSS {shim:.1f} MiB per container{peer}")


if __name__ == "__main__":
    main()
