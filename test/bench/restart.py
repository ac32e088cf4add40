#!/usr/bin/python3
"""A cluster's way back after `minik stop` and `minik start` (native driver):

- how long `minik start` takes on a cluster that exists;
- from the start to the Deployment's pod Running and Ready again;
- from the pod Ready to its NodePort answering on the host (the endpoint
  slice, then the proxy's rules: before the leader leases were given up on
  stop, the controller manager stood by until the old lease expired, and
  this took about 17 s);
- how long `minik stop` takes.

Each figure is the median of the rounds (--rounds, default 3).

Usage: test/bench/restart.py [--rounds 3] (as root)
"""

import argparse
import json
import os
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
os.environ.setdefault("MINIK_BIN", os.path.join(HERE, "..", "..", "build", "minik"))

from cluster import Cluster, wait_for  # noqa: E402


def answers(port):
    # A short timeout: a SYN dropped while the rules change must not cost a
    # second of the measurement.
    s = socket.socket()
    s.settimeout(0.2)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET /r HTTP/1.0\r\n\r\n")
        return b"real path=" in s.recv(4096)
    except OSError:
        return False
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    c = Cluster("bench-restart")
    try:
        c.start()
        wait_for(lambda: "Ready" in c.kubectl("get", "node", "bench-restart", check=False).stdout, 60,
                 what="the node")
        c.kubectl("create", "deployment", "web", "--image=minik/echo-server", "--port=8080")
        c.kubectl("expose", "deployment", "web", "--type=NodePort", "--port=80", "--target-port=8080")
        port = int(c.kubectl("get", "svc", "web", "-o", "jsonpath={.spec.ports[0].nodePort}").stdout)
        wait_for(lambda: answers(port), 90, what="the node port")
        stops, starts, to_ready, to_answer = [], [], [], []
        for i in range(args.rounds):
            t = time.monotonic()
            c.minik("stop")
            stops.append(time.monotonic() - t)
            t0 = time.monotonic()
            c.minik("start")
            starts.append(time.monotonic() - t0)

            def ready():
                try:
                    pods = json.loads(c.kubectl("get", "pods", "-l", "app=web", "-o", "json",
                                                check=False).stdout or "{}").get("items", [])
                except json.JSONDecodeError:
                    return False
                return any(p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp") and
                           any(cd["type"] == "Ready" and cd["status"] == "True"
                               for cd in p["status"].get("conditions", []))
                           for p in pods)
            wait_for(ready, 120, interval=0.05, what="the pod Ready again")
            t1 = time.monotonic()
            to_ready.append(t1 - t0)
            wait_for(lambda: answers(port), 120, interval=0.05, what="the node port again")
            to_answer.append(time.monotonic() - t1)
            print(f"round {i + 1}: stop {stops[-1]:.2f} s, start {starts[-1]:.2f} s, "
                  f"start -> pod Ready {to_ready[-1]:.2f} s, pod Ready -> NodePort answers "
                  f"{to_answer[-1]:.2f} s", flush=True)
        med = statistics.median
        print(f"restart (median of {args.rounds}): minik stop {med(stops):.2f} s, minik start "
              f"{med(starts):.2f} s, start -> pod Ready {med(to_ready):.2f} s, "
              f"pod Ready -> NodePort answers {med(to_answer):.2f} s")
    finally:
        c.delete()


if __name__ == "__main__":
    main()
