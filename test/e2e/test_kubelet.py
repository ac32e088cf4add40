"""The kubelet with real containers (runc, CNI, overlayfs) on a `minik
start`ed cluster (native driver), driven with the real kubectl."""

import base64
import json
import os
import signal
import subprocess
import time
import unittest
import urllib.request

import dockerd
import images
from cluster import Cluster, wait_for


class KubeletTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.c = Cluster("e2e-kubelet")
        cls.c.start()
        wait_for(lambda: "Ready" in cls.c.kubectl("get", "node", "e2e-kubelet", check=False).stdout,
                 timeout=60, what="the node to be Ready")

    @classmethod
    def tearDownClass(cls):
        cls.c.delete()
        # Nothing of the node's network may outlive it.
        nat = subprocess.run(["iptables", "-w", "-t", "nat", "-S"], capture_output=True, text=True).stdout
        assert "MINIK-MASQ-mk-e2e-kubelet" not in nat, nat
        assert subprocess.run(["ip", "link", "show", "mk-e2e-kubelet"], capture_output=True).returncode != 0

    def k(self, *args, **kw):
        return self.c.kubectl(*args, **kw)

    def apply(self, manifest):
        self.k("apply", "-f", "-", input=manifest)

    def ready(self, name, ns="default", timeout=60):
        self.k("-n", ns, "wait", "--for=condition=Ready", f"pod/{name}", f"--timeout={timeout}s", timeout=timeout + 10)

    def succeeds(self, name, what, timeout=60):
        """Waits for pod `name` to succeed; on timeout says what the pod and node show."""
        try:
            wait_for(lambda: self.pod(name)["status"].get("phase") == "Succeeded", timeout=timeout,
                     what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.k('describe', 'pod', name, check=False).stdout}\n"
                                 f"{self.k('describe', 'node', check=False).stdout}") from None

    def pod(self, name, ns="default"):
        return json.loads(self.k("-n", ns, "get", "pod", name, "-o", "json").stdout)

    def test_echo_server_logs_exec_port_forward_cp(self):
        self.k("run", "echo", "--image=minik/echo-server", "--port=8080")
        self.ready("echo")
        ip = self.pod("echo")["status"]["podIP"]
        self.assertRegex(ip, r"^10\.244\.0\.\d+$")
        body = urllib.request.urlopen(f"http://{ip}:8080/hello?x=1", timeout=5).read().decode()
        self.assertIn("Hostname: echo", body)
        self.assertIn("real path=/hello", body)
        self.assertIn("echo-server listening on :8080", self.k("logs", "echo").stdout)

        r = self.k("exec", "echo", "--", "/minik", "version", check=False)
        self.assertIn("minik version", r.stdout)
        self.k("run", "shell", "--image=busybox", "--", "sleep", "3600")
        self.ready("shell")
        r = self.k("exec", "shell", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
        self.assertEqual(r.returncode, 3)
        self.assertEqual(r.stdout, "out\n")
        self.assertIn("err", r.stderr)
        self.assertEqual(self.k("exec", "-i", "shell", "--", "cat", input="piped\n").stdout, "piped\n")

        local = os.path.join(self.c.dir, "up.txt")
        with open(local, "w") as f:
            f.write("copied up\n")
        self.k("cp", local, "shell:/tmp/up.txt")
        self.assertEqual(self.k("exec", "shell", "--", "cat", "/tmp/up.txt").stdout, "copied up\n")
        self.k("exec", "shell", "--", "sh", "-c", "echo copied down > /tmp/down.txt")
        back = os.path.join(self.c.dir, "down.txt")
        self.k("cp", "shell:/tmp/down.txt", back)
        with open(back) as f:
            self.assertEqual(f.read(), "copied down\n")

        pf = subprocess.Popen(["kubectl", "port-forward", "pod/echo", "0:8080"], env=self.c.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = pf.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
            port = int(line.split(":")[1].split()[0])
            for i in range(3):
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/pf{i}", timeout=5).read().decode()
                self.assertIn(f"real path=/pf{i}", body)
        finally:
            pf.terminate()
            pf.wait(timeout=10)

    def test_configmap_and_secret_as_files_and_env(self):
        self.k("create", "configmap", "app-cfg", "--from-literal=greeting=hello", "--from-literal=color=blue")
        self.k("create", "secret", "generic", "app-sec", "--from-literal=password=s3cret")
        self.apply("""apiVersion: v1
kind: Pod
metadata: {name: configured}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    env:
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: app-cfg, key: greeting}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: app-sec, key: password}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    envFrom: [{prefix: CFG_, configMapRef: {name: app-cfg}}]
    volumeMounts:
    - {name: cfg, mountPath: /etc/cfg}
    - {name: sec, mountPath: /etc/sec, readOnly: true}
    - {name: scratch, mountPath: /scratch}
  volumes:
  - {name: cfg, configMap: {name: app-cfg}}
  - {name: sec, secret: {secretName: app-sec, defaultMode: 0400}}
  - {name: scratch, emptyDir: {medium: Memory}}
""")
        self.ready("configured")
        env = self.k("exec", "configured", "--", "env").stdout
        for line in ["GREETING=hello", "PASSWORD=s3cret", "POD_NAME=configured", "CFG_color=blue"]:
            self.assertIn(line, env)
        self.assertEqual(self.k("exec", "configured", "--", "cat", "/etc/cfg/greeting").stdout, "hello")
        self.assertEqual(self.k("exec", "configured", "--", "cat", "/etc/sec/password").stdout, "s3cret")
        mode = self.k("exec", "configured", "--", "stat", "-L", "-c", "%a", "/etc/sec/password").stdout.strip()
        self.assertEqual(mode, "400")
        self.assertIn("tmpfs", self.k("exec", "configured", "--", "sh", "-c", "grep /scratch /proc/mounts").stdout)
        # A changed ConfigMap reaches the mounted file.
        self.k("patch", "configmap", "app-cfg", "-p", '{"data":{"greeting":"changed"}}')
        wait_for(lambda: self.k("exec", "configured", "--", "cat", "/etc/cfg/greeting").stdout == "changed",
                 timeout=40, interval=1, what="the configmap update in the volume")

    def test_crash_loop_backs_off(self):
        self.k("run", "crasher", "--image=busybox", "--", "sh", "-c", "echo about to fail; exit 2")

        def restarts():
            st = self.pod("crasher")["status"].get("containerStatuses", [{}])[0]
            return st.get("restartCount", 0), st
        wait_for(lambda: restarts()[0] >= 2, timeout=60, interval=1, what="two restarts")
        count, st = restarts()
        self.assertEqual(st["lastState"]["terminated"]["exitCode"], 2)
        self.assertEqual(st["lastState"]["terminated"]["reason"], "Error")
        wait_for(lambda: "CrashLoopBackOff" in self.k("get", "pod", "crasher").stdout, timeout=30,
                 what="CrashLoopBackOff in kubectl get")
        self.assertRegex(self.k("get", "pod", "crasher").stdout, r"crasher\s+0/1\s+CrashLoopBackOff\s+[2-9]")
        self.assertIn("about to fail", self.k("logs", "crasher", "--previous").stdout)

    def test_readiness_probe_keeps_pod_out_of_ready(self):
        self.apply("""apiVersion: v1
kind: Pod
metadata: {name: unready}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    readinessProbe:
      exec: {command: [cat, /tmp/ready]}
      periodSeconds: 1
""")
        wait_for(lambda: self.pod("unready")["status"].get("phase") == "Running", what="running")
        time.sleep(3)
        conds = {c["type"]: c["status"] for c in self.pod("unready")["status"]["conditions"]}
        self.assertEqual(conds["Ready"], "False")
        self.assertIn("0/1", self.k("get", "pod", "unready").stdout)
        self.k("exec", "unready", "--", "touch", "/tmp/ready")
        self.ready("unready", timeout=20)

    def test_graceful_deletion_sends_sigterm_first(self):
        marker_dir = os.path.join(self.c.dir, "graceful")
        self.apply(f"""apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 5
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'trap "echo got TERM > /out/term; exit 0" TERM; while true; do sleep 0.2; done']
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: {marker_dir}, type: DirectoryOrCreate}}}}
""")
        self.ready("graceful")
        t0 = time.time()
        self.k("delete", "pod", "graceful", timeout=30)
        self.assertLess(time.time() - t0, 5)
        with open(os.path.join(marker_dir, "term")) as f:
            self.assertEqual(f.read(), "got TERM\n")

    def test_images_from_a_registry_and_an_archive(self):
        reg = images.Registry()
        try:
            ref = reg.push("e2e/marker", "1.0", "from the registry\n")
            self.k("run", "pulled", f"--image={ref}", "--restart=Never")
            self.succeeds("pulled", "the pulled image to run")
            self.assertEqual(self.k("logs", "pulled").stdout, "from the registry\n")
        finally:
            reg.stop()
        archive = os.path.join(self.c.dir, "saved.tar")
        images.docker_save_archive(archive, "example.com/saved:2", "from the archive\n")
        out = self.c.minik("image", "load", archive).stdout
        self.assertIn("example.com/saved:2", out)
        self.assertIn("example.com/saved", self.c.minik("image", "ls").stdout)
        self.k("run", "loaded", "--image=example.com/saved:2", "--restart=Never", "--image-pull-policy=Never")
        self.succeeds("loaded", "the loaded image to run")
        self.assertEqual(self.k("logs", "loaded").stdout, "from the archive\n")
        # A missing image says where it looked.
        self.k("run", "missing", "--image=127.0.0.1:1/nowhere:1")
        st = wait_for(lambda: (self.pod("missing")["status"].get("containerStatuses") or [{}])[0]
                      .get("state", {}).get("waiting"), what="a waiting reason")
        wait_for(lambda: (self.pod("missing")["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                          in ("ErrImagePull", "ImagePullBackOff")), what="ErrImagePull")
        self.assertIn("127.0.0.1:1", self.pod("missing")["status"]["containerStatuses"][0]["state"]["waiting"]["message"])

    @unittest.skipUnless(dockerd.available(), "dockerd is missing: scripts/deps.sh --test installs docker.io")
    def test_image_load_from_the_docker_engine(self):
        d = dockerd.Dockerd().start()
        try:
            archive = os.path.join(self.c.dir, "for-docker.tar")
            images.docker_save_archive(archive, "example.com/from-docker:3", "from the docker engine\n")
            d.docker("load", "-i", archive)
            env = dict(self.c.env, DOCKER_HOST=d.env["DOCKER_HOST"])
            r = subprocess.run([os.environ.get("MINIK_BIN", "minik"), "image", "load", "--daemon",
                                "example.com/from-docker:3", "-p", self.c.profile], env=env,
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("example.com/from-docker:3", r.stdout)
            r = subprocess.run([os.environ.get("MINIK_BIN", "minik"), "image", "load", "--daemon",
                                "example.com/not-there:1", "-p", self.c.profile], env=env,
                               capture_output=True, text=True, timeout=120)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("not-there", r.stderr)
        finally:
            d.stop()
        self.k("run", "from-docker", "--image=example.com/from-docker:3", "--restart=Never",
               "--image-pull-policy=Never")
        wait_for(lambda: self.pod("from-docker")["status"].get("phase") == "Succeeded", timeout=60,
                 what="the image from the docker engine to run")
        self.assertEqual(self.k("logs", "from-docker").stdout, "from the docker engine\n")

    def test_service_account_token_in_the_pod(self):
        self.k("run", "sa-reader", "--image=busybox", "--", "sleep", "3600")
        self.ready("sa-reader")
        d = "/var/run/secrets/kubernetes.io/serviceaccount"
        token = self.k("exec", "sa-reader", "--", "cat", d + "/token").stdout
        self.assertEqual(self.k("exec", "sa-reader", "--", "cat", d + "/namespace").stdout, "default")
        cfg = json.loads(self.k("config", "view", "--raw", "--minify", "-o", "json").stdout)
        cluster = cfg["clusters"][0]["cluster"]
        self.assertEqual(self.k("exec", "sa-reader", "--", "cat", d + "/ca.crt").stdout,
                         base64.b64decode(cluster["certificate-authority-data"]).decode())
        claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        self.assertEqual(claims["kubernetes.io"]["pod"]["name"], "sa-reader")
        self.assertEqual(claims["kubernetes.io"]["node"]["name"], "e2e-kubelet")
        # The token in the pod is a working credential for the API server.
        path = self.c.token_kubeconfig(token)
        who = json.loads(self.k("--kubeconfig", path, "auth", "whoami", "-o", "json").stdout)
        self.assertEqual(who["status"]["userInfo"]["username"], "system:serviceaccount:default:default")
        self.assertEqual(who["status"]["userInfo"]["extra"]["authentication.kubernetes.io/pod-name"], ["sa-reader"])
        # The volume is refreshed every few seconds, but the token is kept until it ages.
        time.sleep(12)
        self.assertEqual(self.k("exec", "sa-reader", "--", "cat", d + "/token").stdout, token)

    def test_memory_limit_oom_killed(self):
        self.apply("""apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: [sh, -c, 'echo filling; tail /dev/zero']
    resources: {limits: {memory: 24Mi}}
""")
        wait_for(lambda: self.pod("hog")["status"].get("phase") == "Failed", timeout=60, what="the pod to fail")
        term = self.pod("hog")["status"]["containerStatuses"][0]["state"]["terminated"]
        self.assertEqual(term["reason"], "OOMKilled")
        self.assertEqual(term["exitCode"], 137)

    def test_logs_of_several_containers_and_attach(self):
        self.apply("""apiVersion: v1
kind: Pod
metadata: {name: chatty}
spec:
  restartPolicy: Never
  containers:
  - name: one
    image: busybox
    command: [sh, -c, 'for i in 1 2 3; do echo one-$i; done; sleep 3600']
  - name: two
    image: busybox
    command: [sh, -c, 'echo two-1; echo two-2; sleep 3600']
  - name: talk
    image: busybox
    stdin: true
    command: [sh, -c, 'read line; echo "heard $line"']
""")
        self.ready("chatty")
        wait_for(lambda: "two-2" in self.k("logs", "chatty", "-c", "two").stdout, what="two's output")
        everything = self.k("logs", "chatty", "--all-containers").stdout
        for line in ["one-1", "one-3", "two-1", "two-2"]:
            self.assertIn(line, everything)
        self.assertEqual(self.k("logs", "chatty", "-c", "one", "--tail=1").stdout, "one-3\n")
        stamped = self.k("logs", "chatty", "-c", "two", "--timestamps").stdout.splitlines()
        self.assertRegex(stamped[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z two-1$")
        self.assertEqual(self.k("logs", "chatty", "-c", "one", "--since=1h").stdout.count("one-"), 3)
        # Attach to the container's stdin: it answers on the attached stdout,
        # and the attach ends when the container exits.
        r = self.k("attach", "-i", "chatty", "-c", "talk", input="hello there\n", check=False, timeout=30)
        self.assertIn("heard hello there", r.stdout)
        self.assertIn("heard hello there", self.k("logs", "chatty", "-c", "talk").stdout)

    def test_traffic_leaving_the_pod_network_is_masqueraded(self):
        # A "remote" host: a network namespace behind a veth pair, serving HTTP
        # that answers with the address the request came from.
        ns = "minik-e2e-remote"
        run = lambda *a: subprocess.run(list(a), check=True, capture_output=True)
        run("ip", "netns", "add", ns)
        server = None
        try:
            run("ip", "link", "add", "mke2e-host", "type", "veth", "peer", "name", "mke2e-remote")
            run("ip", "link", "set", "mke2e-remote", "netns", ns)
            run("ip", "addr", "add", "10.213.9.1/30", "dev", "mke2e-host")
            run("ip", "link", "set", "mke2e-host", "up")
            run("ip", "-n", ns, "addr", "add", "10.213.9.2/30", "dev", "mke2e-remote")
            run("ip", "-n", ns, "link", "set", "mke2e-remote", "up")
            server = subprocess.Popen(
                ["ip", "netns", "exec", ns, "/usr/bin/python3", "-c",
                 "import http.server as h\n"
                 "class H(h.BaseHTTPRequestHandler):\n"
                 "  def do_GET(s):\n"
                 "    b=s.client_address[0].encode(); s.send_response(200); s.end_headers(); s.wfile.write(b)\n"
                 "h.HTTPServer(('10.213.9.2', 8099), H).serve_forever()"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.k("run", "caller", "--image=busybox", "--restart=Never", "--",
                   "sh", "-c", "sleep 1; wget -q -O - http://10.213.9.2:8099/")
            wait_for(lambda: self.pod("caller")["status"].get("phase") in ("Succeeded", "Failed"),
                     timeout=60, what="the request from the pod")
            # The remote host saw the node's address on that link, not the pod's.
            self.assertEqual(self.k("logs", "caller").stdout.strip(), "10.213.9.1")
        finally:
            if server:
                server.kill()
                server.wait()
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
            subprocess.run(["ip", "link", "del", "mke2e-host"], capture_output=True)

    def test_port_forward_to_a_service(self):
        self.k("run", "echo-svc", "--image=minik/echo-server", "--port=8080", "--labels=app=echo-svc")
        self.k("expose", "pod", "echo-svc", "--port=80", "--target-port=8080")
        self.ready("echo-svc")
        pf = subprocess.Popen(["kubectl", "port-forward", "svc/echo-svc", "0:80"], env=self.c.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = pf.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
            self.assertIn("-> 8080", line)
            port = int(line.split(":")[1].split()[0])
            # Several connections at once.
            import concurrent.futures
            with concurrent.futures.ThreadPoolExecutor(4) as ex:
                bodies = list(ex.map(lambda i: urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/svc{i}", timeout=10).read().decode(), range(8)))
            for i, body in enumerate(bodies):
                self.assertIn(f"real path=/svc{i}", body)
        finally:
            pf.terminate()
            pf.wait(timeout=10)

    def test_secret_string_data_reaches_the_pod(self):
        # The tutorial pattern: a Secret written with stringData, read by key.
        self.apply("""apiVersion: v1
kind: Secret
metadata: {name: api-token}
stringData: {token: tok-123}
---
apiVersion: v1
kind: Pod
metadata: {name: token-reader}
spec:
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    env:
    - {name: TOKEN, valueFrom: {secretKeyRef: {name: api-token, key: token}}}
""")
        self.ready("token-reader")
        self.assertIn("TOKEN=tok-123", self.k("exec", "token-reader", "--", "env").stdout)
        self.k("delete", "pod", "token-reader", "--wait=false")
        self.k("delete", "secret", "api-token")

    def test_python_client_port_forward_over_websocket(self):
        # As the Python client's own e2e test does it: one WebSocket, three
        # ports, the third with nothing listening.
        self.apply("""apiVersion: v1
kind: Pod
metadata: {name: pf-echo}
spec:
  containers:
  - name: c
    image: busybox
    command: [sh, -c, "nc -ll -p 1234 -e /bin/cat & nc -ll -p 1235 -e /bin/cat & wait"]
""")
        self.ready("pf-echo")
        client, api = self.c.python_client()
        from kubernetes.stream import portforward
        v1 = client.CoreV1Api(api)
        wait_for(lambda: "1235" in self.k("exec", "pf-echo", "--", "netstat", "-ltn").stdout, 20,
                 what="both listeners")
        pf = portforward(v1.connect_get_namespaced_pod_portforward, "pf-echo", "default",
                         ports="1234,1235,1236")
        try:
            self.assertTrue(pf.connected)
            for port in (1234, 1235):
                sock = pf.socket(port)
                sock.setblocking(True)
                sock.sendall(f"hello {port}\n".encode())
                got = b""
                deadline = time.time() + 10
                while not got.endswith(b"\n") and time.time() < deadline:
                    got += sock.recv(1024)
                self.assertEqual(got, f"hello {port}\n".encode())
                self.assertIsNone(pf.error(port))
            # The refused port reports its error and its socket closes (the
            # client's own test expects BrokenPipeError); the others go on.
            bad = pf.socket(1236)
            bad.setblocking(True)
            wait_for(lambda: pf.error(1236), 10, what="the refused port's error")
            self.assertIn("error forwarding port 1236 to pod pf-echo", pf.error(1236))
            with self.assertRaises(BrokenPipeError):
                for _ in range(200):
                    bad.sendall(b"anyone?")
                    time.sleep(0.05)
            self.assertTrue(pf.connected)
            sock = pf.socket(1234)
            sock.sendall(b"still here\n")
            got = b""
            deadline = time.time() + 10
            while not got.endswith(b"\n") and time.time() < deadline:
                got += sock.recv(1024)
            self.assertEqual(got, b"still here\n")
        finally:
            pf.close()
            self.k("delete", "pod", "pf-echo", "--wait=false")

    def test_zz_kubelet_kill_9_keeps_containers(self):
        self.k("create", "namespace", "survivors")
        self.k("-n", "survivors", "create", "deployment", "sleepers", "--image=busybox", "--replicas=20",
               "--", "sleep", "3600")
        self.k("-n", "survivors", "rollout", "status", "deploy/sleepers", "--timeout=120s", timeout=150)
        before = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["containerID"]
                  for p in json.loads(self.k("-n", "survivors", "get", "pods", "-o", "json").stdout)["items"]}
        self.assertEqual(len(before), 20)
        status = json.load(open(os.path.join(self.c.env["MINIK_HOME"], "profiles", self.c.profile, "node",
                                             "status.json")))
        os.kill(status["components"]["kubelet"]["pid"], signal.SIGKILL)
        time.sleep(2)

        def back():
            s = json.load(open(os.path.join(self.c.env["MINIK_HOME"], "profiles", self.c.profile, "node",
                                            "status.json")))
            return s["components"]["kubelet"]["state"] == "Running" and s["components"]["kubelet"]["pid"]
        wait_for(back, timeout=30, what="the kubelet to be restarted")
        # After it is back: same containers, no restarts, all Ready.
        time.sleep(3)
        pods = json.loads(self.k("-n", "survivors", "get", "pods", "-o", "json").stdout)["items"]
        after = {p["metadata"]["name"]: p["status"]["containerStatuses"][0]["containerID"] for p in pods}
        self.assertEqual(before, after)
        for p in pods:
            self.assertEqual(p["status"]["containerStatuses"][0]["restartCount"], 0, p["metadata"]["name"])
        wait_for(lambda: all(c["status"] == "True" for p in json.loads(self.k("-n", "survivors", "get", "pods", "-o", "json").stdout)["items"]
                             for c in p["status"]["conditions"] if c["type"] == "Ready"), what="all Ready")


if __name__ == "__main__":
    unittest.main(verbosity=2)
