#!/usr/bin/python3
"""Capture the exact request bodies kubectl 1.32 sends for `kubectl create <generator>`.

Runs a tiny fake kube-apiserver over HTTPS on 127.0.0.1 (throwaway CA + server
cert made with the `openssl` CLI), points a temp kubeconfig at it, runs each
generator command from FIXTURES below, and writes into the output directory
(default: test/fixtures/protobuf next to this tools/ directory):

  <name>.pb    raw body of the create POST, byte for byte (starts with b"k8s\\0")
  <name>.json  stdout of the same command with `--dry-run=client -o json` added
  index.json   {name: {path, query, requestTarget, contentType, accept,
                       command, kubectlVersion, requests}}

Python 3 standard library only.  Usage:

  /usr/bin/python3 test/tools/capture_kubectl_bodies.py [--kubectl PATH]
      [--out DIR] [--only NAME ...] [--verbose]

The server logs every request it cannot answer (404) to stderr, so new kubectl
versions that ask for more are easy to spot.
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "fixtures", "protobuf"))
DEFAULT_KUBECTL_CANDIDATES = [
    "/usr/lib/google-cloud-sdk/bin/kubectl.1.32",
    # Dispatcher: it GETs /version first. When the server's minor is 32 it
    # handles the command itself as kubectl v1.32.4 and does not exec
    # kubectl.1.32. The bodies it sends were byte-identical in testing.
    "/usr/bin/kubectl",
]
PB_MAGIC = b"k8s\x00"

# Placeholders in FIXTURES commands, replaced by files made in the temp dir.
# index.json keeps the placeholder form so it does not depend on the temp path.
CONFIG_FILE_NAME = "settings.conf"
CONFIG_FILE_CONTENT = b"mode=test\nlevel=3\n"

FIXTURES = [
    # (name, kubectl args, namespaced)
    ("deployment", ["create", "deployment", "web", "--image=nginx:1.27",
                    "--replicas=3", "--port=8080"], True),
    # kubectl refuses a command together with more than one --image
    # ("cannot specify multiple --image options and command"), so the
    # multi-container fixture has no `-- sleep 3600`.
    ("deployment-multi", ["create", "deployment", "multi", "--image=busybox",
                          "--image=nginx"], True),
    ("namespace", ["create", "namespace", "team-a"], False),
    ("configmap", ["create", "configmap", "cfg", "--from-literal=a=1",
                   "--from-literal=b=two",
                   "--from-file=<tmp>/" + CONFIG_FILE_NAME], True),
    ("secret-generic", ["create", "secret", "generic", "s1",
                        "--from-literal=user=admin",
                        "--from-literal=pass=p@ss w"], True),
    ("secret-tls", ["create", "secret", "tls", "tls1",
                    "--cert=<tmp>/tls.crt", "--key=<tmp>/tls.key"], True),
    ("secret-docker-registry", ["create", "secret", "docker-registry", "reg1",
                                "--docker-server=registry.local:5000",
                                "--docker-username=u", "--docker-password=p",
                                "--docker-email=e@x.io"], True),
    ("service-clusterip", ["create", "service", "clusterip", "web",
                           "--tcp=80:8080", "--tcp=443:8443"], True),
    ("service-clusterip-headless", ["create", "service", "clusterip",
                                    "headless", "--clusterip=None"], True),
    ("service-nodeport", ["create", "service", "nodeport", "np",
                          "--tcp=80:8080", "--node-port=30080"], True),
    ("service-loadbalancer", ["create", "service", "loadbalancer", "lb",
                              "--tcp=80:8080"], True),
    ("service-externalname", ["create", "service", "externalname", "ext",
                              "--external-name=example.com"], True),
    ("serviceaccount", ["create", "serviceaccount", "builder"], True),
    ("job", ["create", "job", "j1", "--image=busybox", "--", "echo", "hi"], True),
    ("cronjob", ["create", "cronjob", "cj", "--image=busybox",
                 "--schedule=*/1 * * * *", "--", "date"], True),
    ("ingress", ["create", "ingress", "ing", "--class=default",
                 "--rule=foo.com/bar*=svc:8080,tls=my-cert",
                 "--rule=bar.com/=svc2:http"], True),
    ("role", ["create", "role", "pod-reader", "--verb=get,list,watch",
              "--resource=pods,pods/log", "--resource-name=a"], True),
    ("rolebinding", ["create", "rolebinding", "rb", "--role=pod-reader",
                     "--user=alice", "--group=devs",
                     "--serviceaccount=default:builder"], True),
    ("clusterrole", ["create", "clusterrole", "cr", "--verb=get",
                     "--resource=nodes", "--non-resource-url=/healthz"], False),
    ("clusterrole-aggregate", ["create", "clusterrole", "agg",
                               "--aggregation-rule=rbac.example.com/aggregate=true"],
     False),
    ("clusterrolebinding", ["create", "clusterrolebinding", "crb",
                            "--clusterrole=cr", "--user=bob"], False),
    ("quota", ["create", "quota", "q",
               "--hard=cpu=1,memory=1G,pods=2,services=3",
               "--scopes=BestEffort"], True),
    ("priorityclass", ["create", "priorityclass", "high", "--value=1000",
                       "--description=high prio",
                       "--preemption-policy=Never"], False),
    ("pdb", ["create", "poddisruptionbudget", "pdb1", "--selector=app=web",
             "--min-available=50%"], True),
    ("pdb-max", ["create", "pdb", "pdb2", "--selector=app=db",
                 "--max-unavailable=1"], True),
]

# --------------------------------------------------------------------------
# Discovery documents (legacy, non-aggregated)
# --------------------------------------------------------------------------

VERBS_NS = ["create", "delete", "deletecollection", "get", "list", "patch",
            "update", "watch"]


def res(name, kind, namespaced, short=None, verbs=None, singular=None):
    r = {
        "name": name,
        "singularName": singular if singular is not None else kind.lower(),
        "namespaced": namespaced,
        "kind": kind,
        "verbs": verbs if verbs is not None else VERBS_NS,
    }
    if short:
        r["shortNames"] = short
    return r


def sub(name, kind, namespaced, verbs):
    return {"name": name, "singularName": "", "namespaced": namespaced,
            "kind": kind, "verbs": verbs}


GROUP_RESOURCES = {
    ("", "v1"): [
        res("configmaps", "ConfigMap", True, ["cm"]),
        res("endpoints", "Endpoints", True, ["ep"], singular="endpoints"),
        res("events", "Event", True, ["ev"]),
        res("namespaces", "Namespace", False, ["ns"],
            ["create", "delete", "get", "list", "patch", "update", "watch"]),
        res("nodes", "Node", False, ["no"]),
        res("persistentvolumeclaims", "PersistentVolumeClaim", True, ["pvc"]),
        res("persistentvolumes", "PersistentVolume", False, ["pv"]),
        res("pods", "Pod", True, ["po"]),
        sub("pods/log", "Pod", True, ["get"]),
        sub("pods/exec", "PodExecOptions", True, ["create", "get"]),
        sub("pods/status", "Pod", True, ["get", "patch", "update"]),
        res("replicationcontrollers", "ReplicationController", True, ["rc"]),
        res("resourcequotas", "ResourceQuota", True, ["quota"]),
        sub("resourcequotas/status", "ResourceQuota", True,
            ["get", "patch", "update"]),
        res("secrets", "Secret", True),
        res("serviceaccounts", "ServiceAccount", True, ["sa"]),
        sub("serviceaccounts/token", "TokenRequest", True, ["create"]),
        res("services", "Service", True, ["svc"]),
        sub("services/status", "Service", True, ["get", "patch", "update"]),
    ],
    ("apps", "v1"): [
        res("controllerrevisions", "ControllerRevision", True),
        res("daemonsets", "DaemonSet", True, ["ds"]),
        res("deployments", "Deployment", True, ["deploy"]),
        sub("deployments/scale", "Scale", True, ["get", "patch", "update"]),
        sub("deployments/status", "Deployment", True,
            ["get", "patch", "update"]),
        res("replicasets", "ReplicaSet", True, ["rs"]),
        res("statefulsets", "StatefulSet", True, ["sts"]),
    ],
    ("batch", "v1"): [
        res("cronjobs", "CronJob", True, ["cj"]),
        sub("cronjobs/status", "CronJob", True, ["get", "patch", "update"]),
        res("jobs", "Job", True),
        sub("jobs/status", "Job", True, ["get", "patch", "update"]),
    ],
    ("networking.k8s.io", "v1"): [
        res("ingressclasses", "IngressClass", False),
        res("ingresses", "Ingress", True, ["ing"]),
        sub("ingresses/status", "Ingress", True, ["get", "patch", "update"]),
        res("networkpolicies", "NetworkPolicy", True, ["netpol"]),
    ],
    ("rbac.authorization.k8s.io", "v1"): [
        res("clusterrolebindings", "ClusterRoleBinding", False),
        res("clusterroles", "ClusterRole", False),
        res("rolebindings", "RoleBinding", True),
        res("roles", "Role", True),
    ],
    ("scheduling.k8s.io", "v1"): [
        res("priorityclasses", "PriorityClass", False, ["pc"]),
    ],
    ("policy", "v1"): [
        res("poddisruptionbudgets", "PodDisruptionBudget", True, ["pdb"]),
        sub("poddisruptionbudgets/status", "PodDisruptionBudget", True,
            ["get", "patch", "update"]),
    ],
}

# plural -> (kind, apiVersion) for answering POSTs whose body we cannot parse
PLURAL_INFO = {}
for (_g, _v), _rs in GROUP_RESOURCES.items():
    for _r in _rs:
        if "/" not in _r["name"]:
            PLURAL_INFO[(_g, _r["name"])] = (_r["kind"],
                                            _v if not _g else _g + "/" + _v)

SERVER_ADDRESSES = [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]


def api_versions_doc():
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": SERVER_ADDRESSES}


def api_group_list_doc():
    groups = []
    for (g, v) in GROUP_RESOURCES:
        if not g:
            continue
        gv = {"groupVersion": g + "/" + v, "version": v}
        groups.append({"name": g, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group_doc(group):
    for (g, v) in GROUP_RESOURCES:
        if g == group:
            gv = {"groupVersion": g + "/" + v, "version": v}
            return {"kind": "APIGroup", "apiVersion": "v1", "name": g,
                    "versions": [gv], "preferredVersion": gv}
    return None


def resource_list_doc(group, version):
    rs = GROUP_RESOURCES.get((group, version))
    if rs is None:
        return None
    return {"kind": "APIResourceList", "apiVersion": "v1",
            "groupVersion": version if not group else group + "/" + version,
            "resources": rs}


VERSION_DOC = {
    "major": "1", "minor": "32", "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z",
    "goVersion": "go1.23.3", "compiler": "gc", "platform": "linux/amd64",
}

# --------------------------------------------------------------------------
# Minimal protobuf reading (only to echo apiVersion/kind/name/namespace)
# --------------------------------------------------------------------------


def _varint(b, i):
    shift = 0
    val = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        val |= (c & 0x7F) << shift
        if not c & 0x80:
            return val, i
        shift += 7


def pb_fields(b):
    """Yield (field_number, wire_type, value) for one message level."""
    i = 0
    while i < len(b):
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("unsupported wire type %d" % wt)
        yield num, wt, v


def pb_first(b, num):
    for n, wt, v in pb_fields(b):
        if n == num and wt == 2:
            return v
    return None


def describe_protobuf_body(body):
    """Return (apiVersion, kind, name, namespace) from a k8s protobuf body."""
    if not body.startswith(PB_MAGIC):
        raise ValueError("missing k8s\\0 magic")
    unknown = body[len(PB_MAGIC):]
    type_meta = pb_first(unknown, 1) or b""
    raw = pb_first(unknown, 2) or b""
    api_version = (pb_first(type_meta, 1) or b"").decode()
    kind = (pb_first(type_meta, 2) or b"").decode()
    meta = pb_first(raw, 1) or b""
    name = (pb_first(meta, 1) or b"").decode()
    namespace = (pb_first(meta, 3) or b"").decode()
    return api_version, kind, name, namespace


# --------------------------------------------------------------------------
# Fake apiserver
# --------------------------------------------------------------------------


class Recorder:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.unanswered = []

    def reset(self):
        with self.lock:
            self.requests = []

    def add(self, entry):
        with self.lock:
            self.requests.append(entry)

    def snapshot(self):
        with self.lock:
            return list(self.requests)


RECORDER = Recorder()
VERBOSE = False


def status_doc(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason,
            "details": {}, "code": code}


def split_resource_path(path):
    """/api/v1/namespaces/ns/pods -> ("", "v1", "ns", "pods");
    /apis/g/v/clusterroles -> ("g", "v", "", "clusterroles")."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    ns = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if len(rest) != 1:
        return None
    return group, version, ns, rest[0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "minik-fixture-capture"

    def log_message(self, fmt, *args):  # silence default access log
        if VERBOSE:
            sys.stderr.write("[server] " + (fmt % args) + "\n")

    def _read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, code, obj, content_type="application/json"):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body, code):
        RECORDER.add({
            "method": self.command,
            "target": self.path,
            "contentType": self.headers.get("Content-Type"),
            "accept": self.headers.get("Accept"),
            "userAgent": self.headers.get("User-Agent"),
            "body": body,
            "code": code,
        })

    def _not_found(self, body=b""):
        msg = "unanswered request: %s %s (Accept: %s)" % (
            self.command, self.path, self.headers.get("Accept"))
        RECORDER.unanswered.append(msg)
        sys.stderr.write("[server] " + msg + "\n")
        self._record(body, 404)
        self._send(404, status_doc(404, "NotFound",
                                   "the server could not find the requested resource"))

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path.rstrip("/") or "/"
        doc = None
        if path == "/version":
            doc = VERSION_DOC
        elif path == "/api":
            doc = api_versions_doc()
        elif path == "/apis":
            doc = api_group_list_doc()
        else:
            parts = [p for p in path.split("/") if p]
            if len(parts) == 2 and parts[0] == "api":
                doc = resource_list_doc("", parts[1])
            elif len(parts) == 2 and parts[0] == "apis":
                doc = api_group_doc(parts[1])
            elif len(parts) == 3 and parts[0] == "apis":
                doc = resource_list_doc(parts[1], parts[2])
        if doc is None:
            self._not_found()
            return
        self._record(b"", 200)
        self._send(200, doc)

    def do_POST(self):
        body = self._read_body()
        url = urllib.parse.urlsplit(self.path)
        loc = split_resource_path(url.path)
        if loc is None:
            self._not_found(body)
            return
        group, version, ns, plural = loc
        api_version = kind = name = namespace = ""
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            if ctype == "application/vnd.kubernetes.protobuf":
                api_version, kind, name, namespace = describe_protobuf_body(body)
            else:
                obj = json.loads(body.decode() or "{}")
                api_version = obj.get("apiVersion", "")
                kind = obj.get("kind", "")
                name = obj.get("metadata", {}).get("name", "")
                namespace = obj.get("metadata", {}).get("namespace", "")
        except Exception as e:  # still answer; the capture is what matters
            sys.stderr.write("[server] could not read POST body: %s\n" % e)
        if not kind or not api_version:
            kind2, av2 = PLURAL_INFO.get((group, plural), ("", ""))
            kind = kind or kind2
            api_version = api_version or av2
        meta = {"name": name,
                "uid": "00000000-0000-0000-0000-000000000001",
                "resourceVersion": "1",
                "creationTimestamp": datetime.datetime.now(
                    datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        if ns or namespace:
            meta["namespace"] = namespace or ns
        self._record(body, 201)
        self._send(201, {"apiVersion": api_version, "kind": kind,
                         "metadata": meta})

    def _other(self):
        body = self._read_body()
        self._not_found(body)

    do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _other


# --------------------------------------------------------------------------
# Setup helpers
# --------------------------------------------------------------------------


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kw)


def make_certs(d):
    """Throwaway CA, server cert for 127.0.0.1, and a cert/key for secret-tls."""
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    srv_key, srv_csr = os.path.join(d, "server.key"), os.path.join(d, "server.csr")
    srv_crt, ext = os.path.join(d, "server.crt"), os.path.join(d, "server.ext")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", ca_key,
         "-out", ca_crt, "-days", "1", "-subj", "/CN=minik-fixture-ca"])
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", srv_key,
         "-out", srv_csr, "-subj", "/CN=127.0.0.1"])
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "extendedKeyUsage=serverAuth\n"
                "keyUsage=digitalSignature,keyEncipherment\n")
    run(["openssl", "x509", "-req", "-in", srv_csr, "-CA", ca_crt,
         "-CAkey", ca_key, "-CAcreateserial", "-out", srv_crt, "-days", "1",
         "-extfile", ext])
    make_secret_tls_pair(d)
    return ca_crt, srv_crt, srv_key


# Fixed Ed25519 seed for the secret-tls input.  Ed25519 signatures are
# deterministic and `openssl ca` takes fixed validity dates and serial, so the
# cert, the key and hence secret-tls.pb/.json come out byte-identical on every
# run.  This is test-only key material, not a secret.
TLS_SEED = bytes(range(32))
TLS_CA_CNF = """\
[ ca ]
default_ca = fx
[ fx ]
database = index.txt
serial = serial
new_certs_dir = .
default_md = default
policy = pol
unique_subject = no
email_in_dn = no
copy_extensions = none
[ pol ]
commonName = supplied
[ ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:fixture.local
"""


def make_secret_tls_pair(d):
    """Write d/tls.crt and d/tls.key (deterministic self-signed Ed25519)."""
    w = os.path.join(d, "tls-work")
    os.mkdir(w)
    # PKCS#8 DER wrapping of a raw Ed25519 private key (RFC 8410)
    with open(os.path.join(w, "key.der"), "wb") as f:
        f.write(bytes.fromhex("302e020100300506032b657004220420") + TLS_SEED)
    with open(os.path.join(w, "ca.cnf"), "w") as f:
        f.write(TLS_CA_CNF)
    with open(os.path.join(w, "index.txt"), "w"):
        pass
    with open(os.path.join(w, "serial"), "w") as f:
        f.write("1234\n")
    key = os.path.join(d, "tls.key")
    run(["openssl", "pkey", "-inform", "DER", "-in", "key.der", "-out", key],
        cwd=w)
    run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=fixture.local",
         "-out", "csr.pem"], cwd=w)
    run(["openssl", "ca", "-batch", "-config", "ca.cnf", "-selfsign",
         "-keyfile", key, "-in", "csr.pem", "-out", os.path.join(d, "tls.crt"),
         "-notext", "-startdate", "20250101000000Z",
         "-enddate", "20350101000000Z", "-extensions", "ext"], cwd=w)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_kubeconfig(path, port, ca_crt):
    # JSON is valid YAML, so no YAML writer is needed.
    cfg = {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "fixture", "cluster": {
            "server": "https://127.0.0.1:%d" % port,
            "certificate-authority": ca_crt}}],
        "users": [{"name": "fixture", "user": {"token": "fixture-token"}}],
        "contexts": [{"name": "fixture", "context": {
            "cluster": "fixture", "user": "fixture", "namespace": "default"}}],
        "current-context": "fixture",
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def is_group_version_get(r):
    if r["method"] != "GET":
        return False
    parts = [p for p in urllib.parse.urlsplit(r["target"]).path.split("/") if p]
    return ((len(parts) == 2 and parts[0] == "api")
            or (len(parts) == 3 and parts[0] == "apis"))


def request_summary(reqs):
    """Requests in arrival order, except that the per-group-version discovery
    GETs (which kubectl sends in parallel) are listed sorted, so that
    index.json does not change from run to run."""
    out = [{"method": r["method"], "target": r["target"],
            "contentType": r["contentType"], "accept": r["accept"],
            "status": r["code"]} for r in reqs]
    idx = [i for i, r in enumerate(reqs) if is_group_version_get(r)]
    gv = sorted((out[i] for i in idx), key=lambda e: e["target"])
    for i, e in zip(idx, gv):
        out[i] = e
    return out


def pick_kubectl(arg):
    if arg:
        return arg
    for c in DEFAULT_KUBECTL_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    sys.exit("no kubectl found; pass --kubectl")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kubectl", help="kubectl binary (default: %s)"
                    % " or ".join(DEFAULT_KUBECTL_CANDIDATES))
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory")
    ap.add_argument("--only", nargs="*", help="only these fixture names")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    VERBOSE = args.verbose
    kubectl = pick_kubectl(args.kubectl)

    fixtures = FIXTURES
    if args.only:
        unknown = set(args.only) - {f[0] for f in FIXTURES}
        if unknown:
            sys.exit("unknown fixture(s): %s" % ", ".join(sorted(unknown)))
        fixtures = [f for f in FIXTURES if f[0] in args.only]

    tmp = tempfile.mkdtemp(prefix="minik-capture-")
    server = None
    thread = None
    failures = []
    try:
        ca_crt, srv_crt, srv_key = make_certs(tmp)
        with open(os.path.join(tmp, CONFIG_FILE_NAME), "wb") as f:
            f.write(CONFIG_FILE_CONTENT)
        port = free_port()
        kubeconfig = os.path.join(tmp, "kubeconfig")
        write_kubeconfig(kubeconfig, port, ca_crt)
        home = os.path.join(tmp, "home")
        os.mkdir(home)

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(srv_crt, srv_key)
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()

        env = {k: v for k, v in os.environ.items()
               if not k.startswith("KUBE")}
        env["HOME"] = home
        env["KUBECONFIG"] = kubeconfig

        ver = subprocess.run([kubectl, "version", "--client", "-o", "json"],
                             env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=60)
        try:
            kubectl_version = json.loads(ver.stdout)["clientVersion"]["gitVersion"]
        except Exception:
            kubectl_version = "unknown"
        print("kubectl: %s (%s)" % (kubectl, kubectl_version))
        print("server:  https://127.0.0.1:%d" % port)

        def kubectl_run(argv, tag):
            # A fresh discovery cache per run, so every run shows the full
            # request sequence kubectl needs against a cold server.
            cache = tempfile.mkdtemp(prefix="cache-" + tag + "-", dir=tmp)
            cmd = [kubectl, "--kubeconfig", kubeconfig, "--cache-dir", cache] + argv
            RECORDER.reset()
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
            return p, RECORDER.snapshot()

        os.makedirs(args.out, exist_ok=True)
        index_path = os.path.join(args.out, "index.json")
        index = {}
        if args.only and os.path.exists(index_path):
            with open(index_path) as f:
                index = json.load(f)

        all_paths = []
        for name, argv, namespaced in fixtures:
            shown = list(argv)
            if namespaced:
                # put -n before a `--` separator, if there is one
                pos = shown.index("--") if "--" in shown else len(shown)
                shown[pos:pos] = ["-n", "default"]
            real = [a.replace("<tmp>", tmp) for a in shown]

            p, reqs = kubectl_run(real, name)
            all_paths.extend((name, r["method"], r["target"], r["code"], r["accept"])
                             for r in reqs)
            if p.returncode != 0:
                failures.append("%s: create failed (rc=%d): %s" % (
                    name, p.returncode, p.stderr.decode(errors="replace").strip()))
                continue
            posts = [r for r in reqs if r["method"] == "POST"]
            if len(posts) != 1:
                failures.append("%s: expected 1 POST, saw %d" % (name, len(posts)))
                continue
            post = posts[0]
            body = post["body"]
            if not body.startswith(PB_MAGIC):
                failures.append("%s: body does not start with k8s\\0 (Content-Type %s)"
                                % (name, post["contentType"]))

            pos = real.index("--") if "--" in real else len(real)
            dry = real[:pos] + ["--dry-run=client", "-o", "json"] + real[pos:]
            dp, dreqs = kubectl_run(dry, name + "-dry")
            all_paths.extend((name + " (dry-run)", r["method"], r["target"], r["code"],
                              r["accept"]) for r in dreqs)
            if dp.returncode != 0:
                failures.append("%s: dry-run failed (rc=%d): %s" % (
                    name, dp.returncode, dp.stderr.decode(errors="replace").strip()))
                continue
            if any(r["method"] != "GET" for r in dreqs):
                failures.append("%s: dry-run sent a non-GET request" % name)

            with open(os.path.join(args.out, name + ".pb"), "wb") as f:
                f.write(body)
            with open(os.path.join(args.out, name + ".json"), "wb") as f:
                f.write(dp.stdout)
            url = urllib.parse.urlsplit(post["target"])
            index[name] = {
                "path": url.path,
                "query": url.query,
                "requestTarget": post["target"],
                "contentType": post["contentType"],
                "command": ["kubectl"] + shown,
                "kubectlVersion": kubectl_version,
                "accept": post["accept"],
                "requests": request_summary(reqs),
            }
            print("ok   %-28s %5d bytes  POST %s" % (name, len(body), post["target"]))
            if VERBOSE:
                print("     Content-Type: %s  Accept: %s  User-Agent: %s" % (
                    post["contentType"], post["accept"], post["userAgent"]))

        ordered = {n: index[n] for n, _, _ in FIXTURES if n in index}
        with open(index_path, "w") as f:
            json.dump(ordered, f, indent=2)
            f.write("\n")

        print("\nrequests seen (fixture, method, target, status):")
        for name, m, t, c, a in all_paths:
            print("  %-36s %-4s %s -> %d%s" % (
                name, m, t, c, ("  [Accept: %s]" % a) if VERBOSE else ""))
        if RECORDER.unanswered:
            print("\nunanswered (404) requests:")
            for u in sorted(set(RECORDER.unanswered)):
                print("  " + u)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)

    if failures:
        print("\nFAILURES:")
        for fl in failures:
            print("  " + fl)
        return 1
    print("\nall %d fixtures written to %s" % (len(fixtures), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
