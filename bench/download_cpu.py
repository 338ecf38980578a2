"""The CPU one gunicorn worker spends on one large video download, by the way the bytes leave.

    .venv/bin/python bench/download_cpu.py [--size-mb 100] [--repeat 3]

One generation with a video of `--size-mb` MB (random bytes) is created on a throwaway
SQLite database (DATABASE_URL if set), and then downloaded in full by its owner's API token
through `GET /media/generations/<id>/video.mp4`, from a gunicorn of one sync worker
(`DEBUG=0`), once per mode, each on a fresh gunicorn:

* `python`: Django streams the file (`veoproject/ranges.py`) and gunicorn runs with
  `--no-sendfile`: every block goes through the Python worker.
* `sendfile`: the same Django answer, gunicorn's default: Django hands the open file to
  gunicorn's `wsgi.file_wrapper`, which sends it with `os.sendfile` (the kernel copies, the
  worker stays busy for the whole transfer).
* `nginx`: `MEDIA_ACCEL=nginx` behind Debian's nginx (`/usr/sbin/nginx`, the README's
  `internal` location): Django answers the access check with `X-Accel-Redirect` and no body;
  nginx sends the bytes and the worker is free at once.
* `s3`: `STORAGE=s3` on moto (in this process, on loopback): Django answers 302 to a
  presigned URL; the client fetches the bytes from the bucket.

The figure is the CPU time of the gunicorn worker (all its threads; /proc/<pid>/schedstat,
nanoseconds, user and kernel) across the one download, after a warm-up request, and the
nginx worker's for the nginx mode; wall time is the whole download as the client saw it. The
median of `--repeat` downloads is printed. In the python and sendfile modes the worker is
also busy for the whole transfer (one sync worker per download in flight, a slow client's
for minutes); in the nginx and s3 modes it is free once the headers are sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import httpx
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
TICKS = os.sysconf("SC_CLK_TCK")
BUCKET = "veo-bench-media"
REGION = "us-east-1"
MODES = ("python", "sendfile", "nginx", "s3")

SETUP = """
import json, django
django.setup()
from accounts import ledger
from accounts.models import User
from accounts.tokens import create_token
from generations import services
from generations.services.settlement import succeed

user = User.objects.create_user(username="bench-download", email="bench@example.com")
ledger.grant(user=user, amount=1_000_000, reason="benchmark")
params = {{
    "prompt": "A lighthouse at dusk, waves breaking", "image_url": "https://images.example.com/x.jpg",
    "aspect_ratio": "16:9", "duration": "8s", "resolution": "1080p", "generate_audio": True,
}}
generation = services.accept(user=user, params=params).generation
name = f"videos/bench-{{generation.pk}}.mp4"
assert succeed(generation=generation, video_name=name, video_bytes={size})
print(json.dumps({{"token": create_token(user=user, name="bench")[1],
                  "generation": str(generation.pk), "name": name}}))
"""

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    fastcgi_temp_path {work}/nginx-fastcgi;
    uwsgi_temp_path {work}/nginx-uwsgi;
    scgi_temp_path {work}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location /protected-media/ {{
            internal;
            alias {media}/;
            add_header X-Content-Type-Options $upstream_http_x_content_type_options always;
            add_header Content-Security-Policy $upstream_http_content_security_policy always;
        }}
        location / {{
            proxy_pass http://127.0.0.1:{upstream};
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU time of one process, its threads included: the scheduler's nanoseconds on a CPU
    (/proc/<pid>/schedstat), else utime + stime from /proc/<pid>/stat (10 ms ticks)."""
    try:
        return (
            sum(
                int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
                for task in os.listdir(f"/proc/{pid}/task")
            )
            / 1e9
        )
    except (FileNotFoundError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def wait_until(url: str, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"{what} did not come up")
        time.sleep(0.2)


def download(url: str, token: str) -> tuple[int, float]:
    """GET the whole video (following a redirect to the bucket) and count its bytes."""
    started = time.perf_counter()
    size = 0
    with httpx.stream(
        "GET",
        url,
        headers={"Authorization": f"Bearer {token}"},
        follow_redirects=True,
        timeout=120,
    ) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(1024 * 1024):
            size += len(chunk)
    return size, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--modes", default=",".join(MODES))
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request lines
    modes = [mode for mode in args.modes.split(",") if mode]
    if "nginx" in modes and not os.path.exists(NGINX):
        sys.exit(f"{NGINX} not found (Debian: apt-get install nginx), or leave out --modes nginx")
    size = args.size_mb * 1024 * 1024

    work = Path(tempfile.mkdtemp(prefix="veo-bench-download-"))
    work.chmod(0o755)  # nginx's workers (nobody) read the media under it
    media = work / "media"
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, moto_port = moto.get_host_and_port()
    endpoint = f"http://{host}:{moto_port}"
    credentials = {"aws_access_key_id": "bench-key", "aws_secret_access_key": "bench-secret"}
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "veoproject.settings",
        "PYTHONPATH": str(ROOT),
        "DEBUG": "0",
        "SECRET_KEY": "benchmark-only-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": os.environ.get("DATABASE_URL") or f"sqlite:///{work}/db.sqlite3",
        "MEDIA_ROOT": str(media),
        "FAL_SIMULATED": "1",
        "IMAGE_URL_CHECK": "0",
        "API_READ_RATE": "",
    }
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        setup = subprocess.run(
            [sys.executable, "-c", SETUP.format(size=size)],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if setup.returncode:
            sys.exit(f"setup failed:\n{setup.stderr[-3000:]}")
        made = json.loads(setup.stdout.strip().splitlines()[-1])
        video = media / made["name"]
        video.parent.mkdir(parents=True, exist_ok=True)
        with video.open("wb") as out:
            for _ in range(args.size_mb):
                out.write(os.urandom(1024 * 1024))
        for path in (media, video.parent):
            path.chmod(0o755)
        video.chmod(0o644)
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, **credentials)
        s3.create_bucket(Bucket=BUCKET)
        s3.upload_file(str(video), BUCKET, made["name"])
        s3_env = {
            "STORAGE": "s3",
            "AWS_STORAGE_BUCKET_NAME": BUCKET,
            "AWS_S3_REGION_NAME": REGION,
            "AWS_S3_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
        }
        path = f"/media/generations/{made['generation']}/video.mp4"
        rows = []
        for mode in modes:
            extra = {"nginx": {"MEDIA_ACCEL": "nginx"}, "s3": s3_env}.get(mode, {})
            flags = ["--no-sendfile"] if mode == "python" else []
            rows.append(
                measure(mode, {**env, **extra}, flags, work, media, path, made["token"], args)
            )
    finally:
        moto.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\none download of {args.size_mb} MB, median of {args.repeat}; gunicorn 1 sync worker")
    print(
        "| mode | bytes sent by | gunicorn worker CPU ms | nginx worker CPU ms | wall s "
        "| worker CPU ms for GET /api/v1/me/ |"
    )
    print("|---|---|---:|---:|---:|---:|")
    by = {
        "python": "the Python worker (read + write per block)",
        "sendfile": "the worker, via os.sendfile",
        "nginx": "nginx (X-Accel-Redirect)",
        "s3": "the bucket (302 to a presigned URL)",
    }
    for row in rows:
        nginx_ms = f"{row['nginx_ms']:.0f}" if row["nginx_ms"] is not None else "-"
        print(
            f"| {row['mode']} | {by[row['mode']]} | {row['worker_ms']:.0f} | {nginx_ms} | "
            f"{row['wall']:.2f} | {row['small_ms']:.0f} |"
        )


def measure(mode, env, flags, work, media, path, token, args) -> dict:
    port = free_port()
    log = (work / f"gunicorn-{mode}.log").open("wb")
    server = subprocess.Popen(
        [
            str(BIN / "gunicorn"),
            "veoproject.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "120",
            *flags,
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    nginx = None
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(f"{base}/healthz", server, "gunicorn")
        if mode == "nginx":
            nginx_port = free_port()
            conf = work / "nginx.conf"
            conf.write_text(
                NGINX_CONF.format(work=work, port=nginx_port, media=media, upstream=port)
            )
            nginx = subprocess.Popen(
                [NGINX, "-p", str(work), "-c", str(conf), "-e", str(work / "nginx-error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            base = f"http://127.0.0.1:{nginx_port}"
            wait_until(f"{base}/healthz", nginx, "nginx")
        (worker,) = children(server.pid)
        nginx_workers = children(nginx.pid) if nginx is not None else []
        # Warm-up: imports, the database connection, the token lookup.
        httpx.get(
            base + path,
            headers={"Authorization": f"Bearer {token}", "Range": "bytes=0-0"},
            timeout=30,
        )
        samples = []
        for _ in range(args.repeat):
            before = cpu_seconds(worker)
            small = httpx.get(
                base + "/api/v1/me/", headers={"Authorization": f"Bearer {token}"}, timeout=30
            )
            small.raise_for_status()
            small_ms = (cpu_seconds(worker) - before) * 1000
            before = cpu_seconds(worker)
            nginx_before = sum(cpu_seconds(pid) for pid in nginx_workers)
            sent, wall = download(base + path, token)
            if sent != args.size_mb * 1024 * 1024:
                sys.exit(f"{mode}: {sent} bytes received, not {args.size_mb} MB")
            samples.append(
                (
                    (cpu_seconds(worker) - before) * 1000,
                    (sum(cpu_seconds(pid) for pid in nginx_workers) - nginx_before) * 1000,
                    wall,
                    small_ms,
                )
            )
    finally:
        for process in (nginx, server):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)
        log.close()
    return {
        "mode": mode,
        "worker_ms": statistics.median(s[0] for s in samples),
        "nginx_ms": statistics.median(s[1] for s in samples) if nginx_workers else None,
        "wall": statistics.median(s[2] for s in samples),
        "small_ms": statistics.median(s[3] for s in samples),
    }


if __name__ == "__main__":
    main()
