"""Real redis-server processes started by tests on their own free loopback ports."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from tests.servers import free_port

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis(url: str = REDIS_URL) -> None:
    """Skip when Redis is not running, except under CI=true where that is a failure."""
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2) as client:
            client.ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {url}: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def _wait_ready(port: int, proc: subprocess.Popen[bytes], client: redis.Redis) -> None:
    deadline = time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server on port {port} exited with {proc.returncode}")
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
    finally:
        client.close()
    raise RuntimeError(f"redis-server on port {port} did not answer within 10s")


class RedisServer:
    """A redis-server the test owns: it can kill it and start it again on the same port."""

    def __init__(self, *extra: str, password: str | None = None, tls: bool = False) -> None:
        self.binary = require_binary("redis-server")
        self.port = free_port()
        self.password = password
        self.extra = extra
        self.dir = tempfile.mkdtemp(prefix="rtframe-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.tls = tls
        self.cert = f"{self.dir}/cert.pem"
        if tls:  # a self-signed certificate for 127.0.0.1, trusted by the test's clients
            subprocess.run(
                [require_binary("openssl"), "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                 "-keyout", f"{self.dir}/key.pem", "-out", self.cert, "-days", "1",
                 "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                check=True, capture_output=True, timeout=30,
            )  # fmt: skip

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0?ssl_ca_certs={self.cert}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            *self.extra,
        ]
        if self.password:
            args += ["--requirepass", self.password]
        if self.tls:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", self.cert,
                     "--tls-key-file", f"{self.dir}/key.pem", "--tls-auth-clients", "no"]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with self.client() as client:
            _wait_ready(self.port, self.proc, client)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything cleanly."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=0.5)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def redis_server(
    *extra: str, password: str | None = None, tls: bool = False
) -> Iterator[RedisServer]:
    server = RedisServer(*extra, password=password, tls=tls)
    try:
        server.start()
        yield server
    finally:
        server.close()


@contextmanager
def redis_cluster(primaries: int = 3) -> Iterator[list[int]]:
    """A local Redis Cluster of `primaries` primaries and no replicas; yields their ports."""
    cli = require_binary("redis-cli")
    # the bus port is given explicitly: the default (port + 10000) may be taken or > 65535
    servers = [
        RedisServer(
            "--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
            "--cluster-port", str(free_port()),
        )
        for _ in range(primaries)
    ]  # fmt: skip
    for s in servers:
        s.extra = (*s.extra, "--cluster-config-file", f"{s.dir}/nodes.conf")
    try:
        for s in servers:
            s.start()
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{s.port}" for s in servers),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            states = []
            for s in servers:
                info = s.client().execute_command("CLUSTER", "INFO")  # type: ignore[no-untyped-call]
                text = info.decode() if isinstance(info, bytes) else str(info)
                states.append("cluster_state:ok" in text)
            if all(states):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("the test cluster did not reach cluster_state:ok")
        yield [s.port for s in servers]
    finally:
        for s in servers:
            s.close()
