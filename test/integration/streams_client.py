#!/usr/bin/env python3
"""Drives minik's stream protocols with the official Python client.

Usage: streams_client.py CONFIG_JSON MODE
CONFIG_JSON holds host, ca, cert and key; the result is printed as JSON.
Used by test/integration/streams_test.cc.
"""

import json
import sys
import time

from kubernetes import client
from kubernetes.stream import portforward, stream


def core_api(cfg):
    c = client.Configuration()
    c.host = cfg["host"]
    c.ssl_ca_cert = cfg["ca"]
    c.cert_file = cfg["cert"]
    c.key_file = cfg["key"]
    return client.CoreV1Api(client.ApiClient(c))


def exec_stream(api, command, **kwargs):
    args = dict(stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False)
    args.update(kwargs)
    return stream(api.connect_get_namespaced_pod_exec, "pod1", "default", command=command, **args)


def main():
    cfg = json.loads(sys.argv[1])
    mode = sys.argv[2]
    api = core_api(cfg)
    out = {}
    if mode == "exit-code":
        r = exec_stream(api, ["sh", "-c", "echo to-out; echo to-err >&2; exit 3"])
        r.run_forever(timeout=30)
        out = {"stdout": r.read_stdout(), "stderr": r.read_stderr(), "returncode": r.returncode}
    elif mode == "stdin":
        r = exec_stream(api, ["head", "-n", "1"], stdin=True)
        r.write_stdin("hello from python\n")
        r.run_forever(timeout=30)
        out = {"stdout": r.read_stdout(), "returncode": r.returncode}
    elif mode == "resize":
        r = exec_stream(api, ["report-resize"], stdin=True, stderr=False, tty=True)
        r.write_channel(4, json.dumps({"Width": 132, "Height": 43}))
        r.run_forever(timeout=30)
        out = {"stdout": r.read_stdout(), "returncode": r.returncode}
    elif mode == "portforward":
        pf = portforward(api.connect_get_namespaced_pod_portforward, "pod1", "default", ports="80")
        sock = pf.socket(80)
        sock.setblocking(True)
        message = b"ping over python"
        sock.sendall(message)
        data = b""
        while len(data) < len(message):
            chunk = sock.recv(1024)
            if not chunk:
                break
            data += chunk
        sock.close()
        out = {"echo": data.decode(), "error": pf.error(80)}
    elif mode == "portforward-refused":
        pf = portforward(api.connect_get_namespaced_pod_portforward, "pod1", "default", ports="81")
        deadline = time.time() + 10
        while pf.error(81) is None and time.time() < deadline:
            time.sleep(0.05)
        out = {"error": pf.error(81)}
        pf.close()
    else:
        raise SystemExit("unknown mode " + mode)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
