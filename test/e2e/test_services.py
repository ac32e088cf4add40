"""Services with real containers: `minik proxy` programs iptables for
ClusterIPs and node ports; tested with the real kubectl, a client pod and the
host."""

import json
import signal
import socket
import struct
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

from cluster import MINIK, Cluster, wait_for

NODE = "e2e-svc"


def iptables_save():
    return subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout


class FakeUpstream:
    """A resolver on loopback standing in for the node's upstream: it knows
    outside.test (A 192.0.2.55) and answers NXDOMAIN for everything else."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            qid, _, qd = struct.unpack(">HHH", data[:6])
            labels, i = [], 12
            while data[i]:
                labels.append(data[i + 1:i + 1 + data[i]].decode().lower())
                i += 1 + data[i]
            question = data[12:i + 5]
            name = ".".join(labels)
            qtype = struct.unpack(">H", data[i + 1:i + 3])[0]
            self.queries.append(name)
            if name == "outside.test" and qtype == 1:
                answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("192.0.2.55")
                reply = struct.pack(">HHHHHH", qid, 0x8180, 1, 1, 0, 0) + question + answer
            else:
                rcode = 0 if name == "outside.test" else 3
                reply = struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, 0, 0, 0) + question
            self.sock.sendto(reply, peer)

    def close(self):
        self.sock.close()


class ServicesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.upstream = FakeUpstream()
        cls.c = Cluster(NODE)
        cls.c.start("--extra-config", f"dns.upstream=127.0.0.1:{cls.upstream.port}")
        wait_for(lambda: "Ready" in cls.c.kubectl("get", "node", NODE, check=False).stdout,
                 timeout=60, what="the node to be Ready")
        cls.c.kubectl("create", "deployment", "web", "--image=minik/echo-server", "--replicas=3",
                      "--port=8080")
        cls.c.kubectl("expose", "deployment", "web", "--port=80", "--target-port=8080")
        cls.c.kubectl("run", "client", "--image=busybox", "--", "sleep", "3600")
        cls.c.kubectl("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
        cls.c.kubectl("wait", "--for=condition=Ready", "pod/client", "--timeout=60s", timeout=70)

    @classmethod
    def tearDownClass(cls):
        cls.c.delete()
        cls.upstream.close()
        rules = iptables_save()
        assert "MINIK-" not in rules, "minik's rules outlived the cluster:\n" + rules

    def k(self, *args, **kw):
        return self.c.kubectl(*args, **kw)

    def from_client(self, script, timeout=60):
        return self.k("exec", "client", "--", "sh", "-c", script, check=False, timeout=timeout)

    def cluster_ip(self, name):
        return self.k("get", "svc", name, "-o", "jsonpath={.spec.clusterIP}").stdout

    def test_cluster_ip_reaches_every_ready_pod_and_refuses_without_them(self):
        ip = self.cluster_ip("web")
        pods = set(self.k("get", "pods", "-l", "app=web", "-o",
                          "jsonpath={.items[*].metadata.name}").stdout.split())
        self.assertEqual(len(pods), 3)
        name = "web.default.svc.cluster.local"
        wait_for(lambda: "Hostname:" in self.from_client(f"timeout 5 wget -q -O - http://{name}/").stdout,
                 timeout=30, what="the service to answer")
        out = self.from_client(f"for i in $(seq 1 40); do timeout 5 wget -q -O - http://{name}/ | grep Hostname; done")
        seen = {line.split()[-1] for line in out.stdout.splitlines() if line.startswith("Hostname:")}
        self.assertEqual(seen, pods, out.stdout + out.stderr)

        self.k("scale", "deployment", "web", "--replicas=0")
        wait_for(lambda: not self.k("get", "pods", "-l", "app=web", "-o", "name").stdout,
                 timeout=60, what="the pods to go")
        def refused():
            t0 = time.time()
            r = self.from_client(f"timeout 10 wget -q -O - http://{name}/")
            return "refused" in r.stderr and time.time() - t0 < 5
        wait_for(refused, timeout=20, what="a refused connection, at once")

        self.k("scale", "deployment", "web", "--replicas=3")
        self.k("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
        wait_for(lambda: "Hostname:" in self.from_client(f"timeout 5 wget -q -O - http://{name}/").stdout,
                 timeout=30, what="the service to answer again")
        # The cluster IP itself, too.
        self.assertIn("Hostname:", self.from_client(f"timeout 5 wget -q -O - http://{ip}/").stdout)

    def test_client_ip_affinity_keeps_a_client_on_one_pod(self):
        self.k("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)
        self.k("expose", "deployment", "web", "--name=sticky", "--port=80", "--target-port=8080",
               "--session-affinity=ClientIP")
        name = "sticky.default.svc.cluster.local"
        wait_for(lambda: "Hostname:" in self.from_client(f"timeout 5 wget -q -O - http://{name}/").stdout,
                 timeout=30, what="the sticky service to answer")
        out = self.from_client(f"for i in $(seq 1 20); do timeout 5 wget -q -O - http://{name}/ | grep Hostname; done")
        seen = {line.split()[-1] for line in out.stdout.splitlines() if line.startswith("Hostname:")}
        self.assertEqual(len(seen), 1, out.stdout)

    def test_node_port_answers_on_the_node(self):
        self.k("expose", "deployment", "web", "--name=web-np", "--type=NodePort", "--port=80",
               "--target-port=8080")
        port = int(self.k("get", "svc", "web-np", "-o", "jsonpath={.spec.ports[0].nodePort}").stdout)
        self.k("rollout", "status", "deployment/web", "--timeout=90s", timeout=100)

        def answer():
            try:
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/np", timeout=3).read().decode()
            except (urllib.error.URLError, OSError):
                return ""
        body = wait_for(answer, timeout=30, what="the node port to answer")
        self.assertIn("real path=/np", body)
        # `minik service --url` prints a URL that answers from the host.
        url = self.c.minik("service", "web-np", "--url").stdout.strip()
        self.assertEqual(url, f"http://127.0.0.1:{port}")
        self.assertIn("real path=/via-url", urllib.request.urlopen(url + "/via-url", timeout=5).read().decode())
        r = self.c.minik("service", "web", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("has no node port", r.stderr)
        self.assertIn("web-np", self.c.minik("service", "list").stdout)
        # The node port and the cluster IP are rules of minik's own chains.
        rules = iptables_save()
        self.assertIn(f"--dport {port} -j MINIK-EXT-", rules)
        self.assertIn(f"-d {self.cluster_ip('web-np')}/32", rules)

    def test_a_pod_reaches_itself_through_its_service(self):
        # Hairpin: the only endpoint is the caller itself.
        self.k("run", "self", "--image=busybox", "--port=8080", "--labels=app=self", "--",
               "sh", "-c", "mkdir /www && hostname > /www/index.html && httpd -f -p 8080 -h /www")
        self.k("expose", "pod", "self", "--port=80", "--target-port=8080")
        self.k("wait", "--for=condition=Ready", "pod/self", "--timeout=60s", timeout=70)
        ip = self.cluster_ip("self")
        wait_for(lambda: self.k("exec", "self", "--", "timeout", "5", "wget", "-q", "-O", "-",
                                f"http://{ip}/", check=False).stdout.strip() == "self",
                 timeout=30, what="the pod to reach itself through its service")

    def test_tunnel_gives_load_balancers_an_external_ip(self):
        self.k("expose", "deployment", "web", "--name=web-lb", "--type=LoadBalancer", "--port=8088",
               "--target-port=8080")
        tunnel = subprocess.Popen([MINIK, "tunnel", "-p", self.c.profile], env=self.c.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ip = wait_for(lambda: self.k("get", "svc", "web-lb", "-o",
                                         "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout,
                          timeout=30, what="an external IP")
            def answer():
                try:
                    return urllib.request.urlopen(f"http://{ip}:8088/lb", timeout=3).read().decode()
                except (urllib.error.URLError, OSError):
                    return ""
            self.assertIn("real path=/lb", wait_for(answer, timeout=30, what="the load balancer"))
        finally:
            tunnel.send_signal(signal.SIGINT)
            out, err = tunnel.communicate(timeout=30)
        self.assertEqual(tunnel.returncode, 0, err)
        self.assertIn("external IP", out)
        self.assertEqual(self.k("get", "svc", "web-lb", "-o",
                                "jsonpath={.status.loadBalancer.ingress}").stdout, "")

    def test_names_resolve_in_the_pods(self):
        ip = self.cluster_ip("web")
        r = self.from_client("nslookup web.default.svc.cluster.local")
        self.assertIn(f"Address: {ip}", r.stdout, r.stdout + r.stderr)
        # By the short name, through the search path, as a pod's HTTP client does.
        wait_for(lambda: "Hostname:" in self.from_client("timeout 5 wget -q -O - http://web/").stdout,
                 timeout=30, what="http://web/ to answer")
        self.assertIn("Address: 10.244.0.1", self.from_client("nslookup host.minik.internal").stdout)
        # The kube-dns Service is what the pods' resolv.conf names.
        self.assertEqual(self.k("-n", "kube-system", "get", "svc", "kube-dns", "-o",
                                "jsonpath={.spec.clusterIP}").stdout, "10.96.0.10")
        r = self.from_client("nslookup nothing-here.default.svc.cluster.local")
        self.assertIn("NXDOMAIN", r.stdout + r.stderr)

    def test_pods_reach_the_api_server_through_the_kubernetes_service(self):
        # What in-cluster clients do: KUBERNETES_SERVICE_HOST and the name.
        env = self.from_client("echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT").stdout.strip()
        self.assertEqual(env, "10.96.0.1:443")
        # Service links of the pod's namespace (the client started after web existed).
        links = self.from_client("echo $WEB_SERVICE_HOST $WEB_PORT_80_TCP").stdout.split()
        ip = self.cluster_ip("web")
        self.assertEqual(links, [ip, f"tcp://{ip}:80"])
        for target in ["10.96.0.1", "kubernetes.default.svc"]:
            r = self.from_client(f"printf '' | nc -w 3 {target} 443 && echo open")
            self.assertIn("open", r.stdout, r.stderr)

    def test_names_outside_the_cluster_go_to_the_upstream(self):
        r = self.from_client("nslookup outside.test")
        self.assertIn("Address: 192.0.2.55", r.stdout, r.stdout + r.stderr)
        self.assertIn("outside.test", self.upstream.queries)
        r = self.from_client("nslookup missing.test")
        self.assertIn("NXDOMAIN", r.stdout + r.stderr)

    def test_headless_service_names_each_statefulset_pod(self):
        self.k("apply", "-f", "-", input="""apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: tcp, port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: busybox, command: [sleep, "3600"], ports: [{containerPort: 5432, name: tcp}]}
""")
        self.k("rollout", "status", "statefulset/db", "--timeout=90s", timeout=100)
        for i in range(2):
            pod_ip = self.k("get", "pod", f"db-{i}", "-o", "jsonpath={.status.podIP}").stdout
            wait_for(lambda: f"Address: {pod_ip}" in
                     self.from_client(f"nslookup db-{i}.db.default.svc.cluster.local").stdout,
                     timeout=30, what=f"db-{i}'s own name")
        both = self.from_client("nslookup db.default.svc.cluster.local").stdout
        self.assertEqual(both.count("Address: 10.244."), 2, both)


if __name__ == "__main__":
    unittest.main()
