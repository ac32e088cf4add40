"""Test images made from scratch: a layer holding busybox from the host, as a
`docker save` archive or pushed to a registry over the distribution API."""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.request


def _busybox_layer(marker):
    """A gzip'd tar: /bin/busybox, its applets as links, and /marker."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for d in ["bin", "tmp"]:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            t.addfile(info)
        t.add("/bin/busybox", arcname="bin/busybox")
        for applet in ["sh", "cat", "echo", "sleep", "ls"]:
            info = tarfile.TarInfo("bin/" + applet)
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            t.addfile(info)
        data = marker.encode()
        info = tarfile.TarInfo("marker")
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    uncompressed = raw.getvalue()
    return uncompressed, gzip.compress(uncompressed)


def _config(diff_id):
    return json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["cat", "/marker"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
    }).encode()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def docker_save_archive(path, repo_tag, marker):
    """Writes a `docker save` tar of one image."""
    layer, _ = _busybox_layer(marker)
    config = _config(sha(layer))
    with tarfile.open(path, "w") as t:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        add(f"{sha(layer)}/layer.tar", layer)
        add(f"{sha(config)}.json", config)
        add("manifest.json", json.dumps([{"Config": f"{sha(config)}.json", "RepoTags": [repo_tag],
                                          "Layers": [f"{sha(layer)}/layer.tar"]}]).encode())


class Registry:
    """Debian's docker-registry on 127.0.0.1 with storage in a temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="minik-registry-")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.dir}/data\n"
                    f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: minik-e2e\n")
        self.log = open(os.path.join(self.dir, "registry.log"), "w")
        self.proc = subprocess.Popen(["docker-registry", "serve", config], stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v2/", timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        raise RuntimeError("docker-registry did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _blob(self, repo, data):
        base = f"http://127.0.0.1:{self.port}"
        r = urllib.request.urlopen(urllib.request.Request(f"{base}/v2/{repo}/blobs/uploads/", method="POST"))
        loc = r.headers["Location"]
        loc = loc if loc.startswith("http") else base + loc
        sep = "&" if "?" in loc else "?"
        req = urllib.request.Request(f"{loc}{sep}digest=sha256:{sha(data)}", data=data, method="PUT",
                                     headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(req)

    def push(self, repo, tag, marker):
        layer, layer_gz = _busybox_layer(marker)
        config = _config(sha(layer))
        self._blob(repo, layer_gz)
        self._blob(repo, config)
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": len(config), "digest": "sha256:" + sha(config)},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": len(layer_gz), "digest": "sha256:" + sha(layer_gz)}],
        }).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/v2/{repo}/manifests/{tag}", data=manifest,
                                     method="PUT",
                                     headers={"Content-Type": "application/vnd.docker.distribution.manifest.v2+json"})
        urllib.request.urlopen(req)
        return f"127.0.0.1:{self.port}/{repo}:{tag}"
