"""A private Docker engine for tests and benchmarks: Debian's dockerd with its
data, state and socket in a temp dir, attached to a bridge of its own and
kept out of iptables, so stopping it leaves nothing behind on the host."""

import os
import shutil
import subprocess
import tempfile
import time

BRIDGE = "mkdock0"
BRIDGE_CIDR = "10.213.0.1/24"


def available():
    return shutil.which("dockerd") is not None and shutil.which("docker") is not None


class Dockerd:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="minik-dockerd-")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.env = dict(os.environ, DOCKER_HOST="unix://" + self.sock,
                        DOCKER_CONFIG=os.path.join(self.dir, "client"))
        self.proc = None
        self.bridge = False
        # Directories the engine and its shims create outside their roots; the
        # ones that were not there before are removed again when empty.
        self.outside = [d for d in ["/run/containerd/s", "/run/containerd", "/run/docker/plugins",
                                    "/run/docker"] if not os.path.exists(d)]

    def start(self, timeout=60):
        """Starts the engine; on failure, whatever was made is removed again."""
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout):
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        self.bridge = True
        subprocess.run(["ip", "addr", "add", BRIDGE_CIDR, "dev", BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
        log = open(os.path.join(self.dir, "dockerd.log"), "w")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", os.path.join(self.dir, "data"),
             "--exec-root", os.path.join(self.dir, "exec"),
             "--pidfile", os.path.join(self.dir, "dockerd.pid"),
             "-H", "unix://" + self.sock, "--bridge", BRIDGE, "--iptables=false",
             "--ip-masq=false", "--ip-forward=false", "--userland-proxy=false"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("dockerd exited: " + self.log_tail())
            if self.docker("version", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("dockerd did not answer within %ss: %s" % (timeout, self.log_tail()))

    def log_tail(self):
        try:
            with open(os.path.join(self.dir, "dockerd.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def docker(self, *args, check=True, timeout=120, input=None):
        r = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            ids = self.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                self.docker("rm", "-f", *ids, check=False)
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        # Whatever the engine left mounted under its directories goes, deepest first.
        with open("/proc/self/mounts") as f:
            mounts = [line.split()[1] for line in f]
        for m in sorted((m for m in mounts if m.startswith(self.dir)), key=len, reverse=True):
            subprocess.run(["umount", "-l", m], check=False)
        if self.bridge:
            subprocess.run(["ip", "link", "del", BRIDGE], check=False)
            self.bridge = False
        shutil.rmtree(self.dir, ignore_errors=True)
        for d in self.outside:
            try:
                os.rmdir(d)
            except OSError:
                pass
