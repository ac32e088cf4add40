#!/usr/bin/python3
"""Services on a `minik start`ed node (native driver, real iptables):

- HTTP through a ClusterIP Service against the same client hitting the pod IP
  directly, in the same run: `ab` (apache2-utils) from the host, a new
  connection per request, so every request goes through conntrack and DNAT;
- the proxy's time to reprogram the rules when one Service changes while
  1,000 are present (as the proxy logs each sync), and from the API write to
  the new rules in the kernel;
- cluster DNS: queries/s with `dnsperf` and the p50/p99 of single queries.

Usage: test/bench/services.py [--requests 5000] [--services 1000] (as root)
"""

import argparse
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
os.environ.setdefault("MINIK_BIN", os.path.join(HERE, "..", "..", "build", "minik"))

from cluster import Cluster, wait_for  # noqa: E402

NODE = "bench-svc"


def percentile(values, p):
    s = sorted(values)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def ab(url, n, c, workdir):
    csv = os.path.join(workdir, "ab.csv")
    r = subprocess.run(["ab", "-q", "-n", str(n), "-c", str(c), "-e", csv, url], capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ab {url}: {r.stderr.strip()}")
    rps = float(re.search(r"Requests per second:\s+([\d.]+)", r.stdout).group(1))
    # ab's CSV: the time (ms, with fractions) within which each percentage was served.
    with open(csv) as f:
        served = dict(tuple(map(float, line.split(","))) for line in f.readlines()[1:])
    p50, p99 = served[50], served[99]
    failed = int(re.search(r"Failed requests:\s+(\d+)", r.stdout).group(1))
    if failed:
        raise RuntimeError(f"ab {url}: {failed} failed requests")
    return rps, p50, p99


def dns_query(name, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", 1, 1)


class Bench:
    def __init__(self, args):
        self.args = args
        self.c = Cluster(NODE)
        self.c.start()
        wait_for(lambda: "Ready" in self.c.kubectl("get", "node", NODE, check=False).stdout,
                 timeout=60, what="the node to be Ready")
        self.log = os.path.join(self.c.env["MINIK_HOME"], "profiles", NODE, "node", "logs", "proxy.log")

    def k(self, *a, **kw):
        return self.c.kubectl(*a, **kw)

    def http(self):
        # The Service's pod and the pod hit directly are two pods of the same image:
        # a run leaves thousands of closed connections (TIME_WAIT, conntrack)
        # behind, which must not stand in the way of the other run.
        self.k("create", "deployment", "echo", "--image=minik/echo-server", "--port=8080")
        self.k("expose", "deployment", "echo", "--port=80", "--target-port=8080")
        self.k("run", "direct", "--image=minik/echo-server", "--port=8080")
        self.k("rollout", "status", "deployment/echo", "--timeout=60s", timeout=70)
        self.k("wait", "--for=condition=Ready", "pod/direct", "--timeout=60s", timeout=70)
        pod_ip = self.k("get", "pod", "direct", "-o", "jsonpath={.status.podIP}").stdout
        svc_ip = self.k("get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}").stdout
        wait_for(lambda: subprocess.run(["curl", "-sf", "-m", "2", f"http://{svc_ip}/"],
                                        capture_output=True).returncode == 0,
                 timeout=30, what="the service to answer")
        rows = []
        for conc in (1, 16):
            direct = ab(f"http://{pod_ip}:8080/", self.args.requests, conc, self.c.dir)
            via = ab(f"http://{svc_ip}/", self.args.requests, conc, self.c.dir)
            rows.append((conc, direct, via))
        return rows

    def sync_lines(self):
        with open(self.log) as f:
            return [l for l in f if "synced" in l]

    def reprogram(self):
        n = self.args.services
        t0 = time.time()
        from kubernetes import client
        core, api = self.c.python_client()
        v1 = client.CoreV1Api(api)

        def make(part):
            for i in part:
                v1.create_namespaced_service("default", {
                    "apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
                    "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": 8080}]}})
        threads = [threading.Thread(target=make, args=(range(i, n, 8),)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        def programmed():
            lines = self.sync_lines()
            m = re.search(r"synced (\d+) service ports", lines[-1]) if lines else None
            return m and int(m.group(1)) >= n + 1 and \
                "MINIK-SVC" in subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                                              text=True).stdout.split(f"default/s{n - 1} cluster IP")[-1][:400]
        wait_for(programmed, timeout=300, interval=0.5, what=f"{n} services in the rules")
        setup = time.time() - t0
        nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True).stdout
        rules = sum(1 for l in nat.splitlines() if l.startswith("-A MINIK-"))
        time.sleep(1)
        sync_ms, e2e_ms = [], []
        for i in range(20):
            before = len(self.sync_lines())
            port = 81 + i
            t = time.monotonic()
            v1.patch_namespaced_service(f"s{i}", "default",
                                        [{"op": "replace", "path": "/spec/ports/0/port", "value": port}])
            ip = v1.read_namespaced_service(f"s{i}", "default").spec.cluster_ip
            # The rule lives in the chain of its address's /20.
            a = struct.unpack(">I", socket.inet_aton(ip))[0] & 0xFFFFF000
            bucket = f"MINIK-SVCS-{a:08X}"
            while True:
                out = subprocess.run(["iptables", "-w", "-t", "nat", "-S", bucket],
                                     capture_output=True, text=True).stdout
                if f"--dport {port} " in out and ip in out:
                    break
                time.sleep(0.002)
            e2e_ms.append((time.monotonic() - t) * 1000)
            lines = self.sync_lines()[before:]
            for l in lines:
                sync_ms.append(int(re.search(r"in (\d+) ms", l).group(1)))
            time.sleep(0.2)
        return setup, rules, sync_ms, e2e_ms

    def dns(self):
        name = "echo.default.svc.cluster.local"
        data = os.path.join(self.c.dir, "queries.txt")
        with open(data, "w") as f:
            f.write(f"{name} A\n")
        r = subprocess.run(["dnsperf", "-s", "10.96.0.10", "-d", data, "-l", "5", "-c", "8", "-q", "64"],
                           capture_output=True, text=True)
        qps = float(re.search(r"Queries per second:\s+([\d.]+)", r.stdout).group(1))
        lost = int(re.search(r"Queries lost:\s+(\d+)", r.stdout).group(1))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        lat = []
        for i in range(2000):
            q = dns_query(name, i)
            t = time.monotonic()
            s.sendto(q, ("10.96.0.10", 53))
            s.recv(4096)
            lat.append((time.monotonic() - t) * 1000)
        s.close()
        return qps, lost, percentile(lat, 50), percentile(lat, 99)

    def close(self):
        self.c.delete()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=5000, help="per run (a new connection each)")
    ap.add_argument("--services", type=int, default=1000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("services.py programs iptables and runs containers: it needs root")
    b = Bench(args)
    try:
        http = b.http()
        dns = b.dns()
        setup, rules, sync_ms, e2e_ms = b.reprogram()
    finally:
        b.close()
    print()
    print("| clients | pod IP req/s | p50 ms | p99 ms | ClusterIP req/s | p50 ms | p99 ms | ClusterIP / pod IP |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for conc, d, v in http:
        print(f"| {conc} | {d[0]:,.0f} | {d[1]:.2f} | {d[2]:.2f} | {v[0]:,.0f} | {v[1]:.2f} | {v[2]:.2f} | "
              f"{v[0] / d[0]:.2f}x |")
    print()
    print(f"{args.services} services created and programmed in {setup:.1f} s ({rules} nat rules)")
    print(f"one service changed among them: proxy sync p50 {percentile(sync_ms, 50)} ms, "
          f"p99 {percentile(sync_ms, 99)} ms; API write to rule in the kernel p50 "
          f"{percentile(e2e_ms, 50):.0f} ms, p99 {percentile(e2e_ms, 99):.0f} ms")
    qps, lost, p50, p99 = dns
    print(f"cluster DNS: {qps:,.0f} queries/s (dnsperf, 8 clients, {lost} lost); single queries "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    main()
