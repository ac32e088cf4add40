"""Helpers for end-to-end tests: a `minik start`ed cluster in a private
MINIK_HOME, KUBECONFIG and HOME, driven with the real kubectl and the real
Python client. Everything is deleted at the end."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

MINIK = os.environ.get("MINIK_BIN", "minik")


class Cluster:
    def __init__(self, profile="e2e"):
        self.profile = profile
        self.dir = tempfile.mkdtemp(prefix="minik-e2e-")
        self.env = dict(os.environ)
        self.env.update({
            "MINIK_HOME": os.path.join(self.dir, "minik"),
            "KUBECONFIG": os.path.join(self.dir, "kubeconfig"),
            "HOME": self.dir,
        })

    def minik(self, *args, check=True, timeout=180):
        r = subprocess.run([MINIK, *args, "-p", self.profile], env=self.env, capture_output=True,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"minik {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def kubectl(self, *args, check=True, input=None, timeout=60):
        r = subprocess.run(["kubectl", *args], env=self.env, capture_output=True, text=True,
                           input=input, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def kubectl_json(self, *args):
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def token_kubeconfig(self, token, name="token-kubeconfig"):
        """A kubeconfig with this cluster and no user but the bearer `token`."""
        cfg = json.loads(self.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "t",
                       "clusters": [{"name": "c", "cluster": cfg["clusters"][0]["cluster"]}],
                       "users": [{"name": "u", "user": {"token": token}}],
                       "contexts": [{"name": "t", "context": {"cluster": "c", "user": "u"}}]}, f)
        return path

    def popen_kubectl(self, *args):
        return subprocess.Popen(["kubectl", *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def python_client(self):
        from kubernetes import client, config
        api_client = config.new_client_from_config(config_file=self.env["KUBECONFIG"])
        return client, api_client

    def start(self, *args):
        """Starts the cluster. Most tests need no containers and pass
        --no-kubelet; the kubelet's own tests start the real node."""
        return self.minik("start", *args)

    def delete(self):
        try:
            self.minik("delete", check=False)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def processes():
    """(pid, argv) of every process, for tests and benchmarks that look for theirs."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                yield int(pid), f.read().decode(errors="replace").split("\0")
        except OSError:
            continue


def wait_for(predicate, timeout=30, interval=0.1, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
