#!/usr/bin/env python3
"""bench/bench.py: meshgate side by side with nginx and HAProxy (DESIGN.md section 6).

Run it through bench/run, which installs the tools, builds meshgate and raises the file
limit first.  This file starts the upstream and the three proxies, runs the scenarios
interleaved, measures, prints the tables and writes bench/results/<stamp>.jsonl (plus the
same tables in <stamp>.txt).  bench/README.md explains every figure.

python3 standard library only.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
PY = sys.executable or "python3"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROXY_CPU = 0  # every proxy runs here, one worker each
LOAD_CPU = 1  # the load generator and the upstream run here
PROXIES = ("meshgate", "nginx", "haproxy")
SMALL_BODY = "meshgate bench: a small fixed response body, 64 bytes long.....\n"
assert len(SMALL_BODY) == 64

# DESIGN.md section 6: meshgate's proxy CPU per request as a fraction of HAProxy's.
TARGET_RATIO = {"h1": 0.70, "h1-16k": 0.75, "https": 0.85, "handshake": 0.90,
                "handshake-py": 0.90, "h2": 0.90}

# Port offsets from the base port picked at start.
P_UP_SMALL, P_UP_BIG, P_UP_TLS, P_UP_STAT = 0, 1, 2, 3
P_PROXY = {"meshgate": 10, "nginx": 20, "haproxy": 30}  # +0 http, +1 https, +2 stats
P_SCALE = 40  # +i http, +5+i admin of the route-table runs
NPORTS = 50


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


def env(name, default):
    return os.environ.get(name) or default


# ----- /proc ---------------------------------------------------------------------------

def cpu_ticks(pids):
    """utime + stime of the processes (all their threads), in clock ticks."""
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                data = f.read()
        except OSError:
            continue
        fields = data[data.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])
    return total


def proc_start(pid):
    """Start time of a process (clock ticks after boot), None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        return int(data[data.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def vmrss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def nfds(pids):
    n = 0
    for pid in pids:
        try:
            n += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return n


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def cpu_busy():
    """{cpu index: (busy ticks, total ticks)} from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            m = re.match(r"cpu(\d+) (.*)", line)
            if m:
                v = [int(x) for x in m.group(2).split()]
                idle = v[3] + v[4]
                out[int(m.group(1))] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(),
            "os": distro(), "loadavg": os.getloadavg()[0]}


def distro():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def tool_version(argv, pattern):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    m = re.search(pattern, r.stdout + r.stderr)
    return m.group(1) if m else "?"


# ----- small helpers --------------------------------------------------------------------

def port_free(port, addr="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def port_listening(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        return s.connect_ex(("127.0.0.1", port)) == 0
    finally:
        s.close()


def http_get(port, path, host="bench.local", timeout=5):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), headers={"Host": host})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, int) or abs(v) >= 100:
        return "%.0f" % v
    return "%.*f" % (digits, v)


def fmt_k(v):
    if v is None:
        return "-"
    return "%.1fk" % (v / 1000.0) if v >= 1000 else "%.0f" % v


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * len(sorted_values))) - 1))
    return sorted_values[i]


def idle_cell(r):
    if r.get("kib_per_conn") is None:
        return "failed: %s" % r.get("error", "?")
    return "%.2f (%d%s)" % (r["kib_per_conn"], r["open"],
                            ", %d failed" % r["failed"] if r["failed"] else "")


# ----- load generators ------------------------------------------------------------------

def parse_wrk(out):
    r = {"requests": 0, "rps": None, "p50_ms": None, "p99_ms": None, "non2xx": 0,
         "socket_errors": 0, "errors": {}}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        r["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m)\s*$" % pct, out, re.M)
        if m:
            r[key] = float(m.group(1)) * unit[m.group(2)]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["errors"] = dict(zip(("connect", "read", "write", "timeout"),
                               (int(x) for x in m.groups())))
        r["socket_errors"] = sum(r["errors"].values())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    return r


def parse_h2load(out, logfile):
    r = {"requests": 0, "rps": None, "p50_ms": None, "p99_ms": None, "non2xx": 0,
         "socket_errors": 0, "errors": {}}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if m:
        r["rps"] = float(m.group(1))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if m:
        r["requests"] = int(m.group(4))
        r["errors"] = {"failed": int(m.group(5)), "errored": int(m.group(6)),
                       "timeout": int(m.group(7))}
        r["socket_errors"] = int(m.group(5)) + int(m.group(7))
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        r["non2xx"] = int(m.group(2)) + int(m.group(3)) + int(m.group(4))
    lat = []
    try:
        with open(logfile) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    lat.append(int(parts[2]) / 1e3)
    except OSError:
        pass
    lat.sort()
    r["p50_ms"] = percentile(lat, 50)
    r["p99_ms"] = percentile(lat, 99)
    return r


# ----- the benchmark --------------------------------------------------------------------

class Target:
    """One thing under load: the upstream itself ("direct") or a proxy."""

    def __init__(self, name):
        self.name = name
        self.proc = None
        self.http_port = self.tls_port = self.stat_port = None
        self.tls = {}  # the probe's findings

    def pids(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        return [self.proc.pid] + children(self.proc.pid)


class Bench:
    def __init__(self, args):
        self.args = args
        self.rounds = int(args.rounds)
        self.duration = float(args.duration)
        self.warmup = float(args.warmup)
        self.conns = int(args.conns)
        self.hs_conns = int(args.hs_conns)
        self.meshgate = os.path.abspath(args.meshgate)
        self.is_root = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="mg-bench.")
        os.chmod(self.dir, 0o755)  # nginx workers run as nobody when started as root
        self.procs = []  # (name, Popen) of everything started, in order
        self.known_pids = {}  # every PID started, nginx workers included: its start time
        self.loadgen = None
        self.report = []
        self.ports = []
        stamp = datetime.datetime.now(datetime.timezone.utc)
        self.stamp = stamp
        self.results_dir = args.results or os.path.join(HERE, "results")
        os.makedirs(self.results_dir, exist_ok=True)
        base = os.path.join(self.results_dir, stamp.strftime("%Y%m%d-%H%M%S"))
        self.jsonl_path = base + ".jsonl"
        self.txt_path = base + ".txt"
        self.jsonl = open(self.jsonl_path, "w")
        self.targets = {n: Target(n) for n in ("direct",) + PROXIES}
        self.summaries = {}
        self.wrapped = {}  # proxy name -> command prefix (callgrind in the instr section)
        self.haproxy_master_worker = False

    # ----- output ----------------------------------------------------------------------

    def out(self, line=""):
        self.report.append(line)
        print(line, flush=True)

    def progress(self, msg):
        print("  .. " + msg, file=sys.stderr, flush=True)

    def record(self, kind, **fields):
        obj = {"type": kind, "date": self.stamp.isoformat(timespec="seconds")}
        obj.update(fields)
        self.jsonl.write(json.dumps(obj, sort_keys=False) + "\n")
        self.jsonl.flush()

    # ----- processes -------------------------------------------------------------------

    def spawn(self, name, argv, cpu, log):
        argv = self.wrapped.get(name, []) + argv
        with open(os.path.join(self.dir, log), "ab") as f:
            p = subprocess.Popen(["taskset", "-c", str(cpu)] + argv, stdin=subprocess.DEVNULL,
                                 stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((name, p))
        self.remember([p.pid])
        return p

    def remember(self, pids):
        for pid in pids:
            st = proc_start(pid)
            if st is not None:
                self.known_pids.setdefault(pid, st)

    def stop(self, p, grace=5.0):
        if p is None:
            return
        kids = children(p.pid)
        self.remember(kids)
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for pid in kids:
            self.kill_pid(pid)

    def kill_pid(self, pid):
        """SIGKILL a process we started that still runs (an nginx worker whose master was
        killed); the start time tells it from a later process that got the same PID."""
        if pid not in self.known_pids or proc_start(pid) != self.known_pids[pid]:
            return
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                os.kill(pid, signal.SIGKILL)
        except (OSError, IndexError):
            pass

    def cleanup(self):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        if self.loadgen is not None and self.loadgen.poll() is None:
            self.loadgen.kill()
            self.loadgen.wait()
        for name, p in reversed(self.procs):
            self.stop(p, grace=3.0)
        for pid in list(self.known_pids):
            self.kill_pid(pid)
        left = [p for p in self.ports if port_listening(p)]
        if left:
            print("bench: WARNING: still listening after cleanup: %s" % left, file=sys.stderr)
        if self.args.keep:
            print("bench: temp dir kept: %s" % self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def wait_port(self, port, proc, what, timeout=15.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError("%s exited (status %s) at start; its log:\n%s" %
                                   (what, proc.returncode, self.tail_log(what)))
            if port_listening(port):
                return
            time.sleep(0.05)
        raise RuntimeError("%s did not listen on %d within %.0f s" % (what, port, timeout))

    def wait_ready(self, admin_port, proc, what, timeout=15.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError("%s exited (status %s) at start; its log:\n%s" %
                                   (what, proc.returncode, self.tail_log(what)))
            try:
                if http_get(admin_port, "/ready", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("%s not ready within %.0f s; its log:\n%s" %
                           (what, timeout, self.tail_log(what)))

    def tail_log(self, what):
        try:
            with open(os.path.join(self.dir, what + ".log"), errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return "(no log)"

    # ----- set-up ----------------------------------------------------------------------

    def pick_ports(self):
        if self.args.port_base:
            bases = [int(self.args.port_base)]
        else:
            bases = range(31000, 20000, -250)
        for b in bases:
            ports = list(range(b, b + NPORTS))
            if all(port_free(p) for p in ports) and \
                    all(port_free(b + P_UP_SMALL, "127.0.0.%d" % i) for i in (2, 3, 4)):
                self.base = b
                self.ports = ports
                return
        raise RuntimeError("no free range of %d ports found (set BENCH_PORT_BASE)" % NPORTS)

    def port(self, off):
        return self.base + off

    def make_certs(self):
        self.crt = os.path.join(self.dir, "tls.crt")
        self.key = os.path.join(self.dir, "tls.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", self.key, "-out",
                        self.crt, "-days", "2", "-subj", "/CN=bench.local", "-addext",
                        "subjectAltName=DNS:bench.local"],
                       check=True, capture_output=True)
        self.pem = os.path.join(self.dir, "haproxy.pem")
        with open(self.pem, "w") as out:
            for p in (self.crt, self.key):
                with open(p) as f:
                    out.write(f.read())
        os.chmod(self.pem, 0o600)
        www = os.path.join(self.dir, "www")
        os.makedirs(www, mode=0o755)
        with open(os.path.join(www, "16k.bin"), "wb") as f:
            f.write((b"0123456789abcde\n" * 1024))
        os.chmod(os.path.join(www, "16k.bin"), 0o644)

    def nginx_common(self, name, workers_conns):
        tmp = os.path.join(self.dir, name + "-tmp")
        os.makedirs(tmp, exist_ok=True)
        paths = "\n".join("    %s_temp_path %s/%s;" % (k, tmp, k)
                          for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return """worker_processes 1;
worker_rlimit_nofile %d;
pid %s/%s.pid;
error_log %s/%s.log warn;
events { worker_connections %d; }
""" % (self.nofile, self.dir, name, self.dir, name, workers_conns), paths

    def tls_block(self):
        # TLS 1.3 only, ECDSA P-256, and no resumption: no tickets, no session cache.
        return """        ssl_certificate %s;
        ssl_certificate_key %s;
        ssl_protocols TLSv1.3;
        ssl_session_tickets off;
        ssl_session_cache off;
""" % (self.crt, self.key)

    def start_upstream(self):
        head, paths = self.nginx_common("upstream", 16384)
        listens = "\n".join("        listen 127.0.0.%d:%d;" % (i, self.port(P_UP_SMALL))
                            for i in (1, 2, 3, 4))
        conf = head + """http {
    access_log off;
%s
    default_type text/plain;
    keepalive_timeout 600s;
    keepalive_requests 1000000000;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=16 inactive=600s;
    open_file_cache_valid 600s;
    server {
%s
        location / { return 200 "%s"; }
    }
    server {
        listen 127.0.0.1:%d;
        root %s/www;
        location / { try_files /16k.bin =404; }
    }
    server {
        listen 127.0.0.1:%d ssl http2;
%s        location / { return 200 "%s"; }
    }
    server {
        listen 127.0.0.1:%d;
        location / { stub_status; }
    }
}
""" % (paths, listens, SMALL_BODY.replace("\n", "\\n"), self.port(P_UP_BIG), self.dir,
            self.port(P_UP_TLS), self.tls_block(), SMALL_BODY.replace("\n", "\\n"),
            self.port(P_UP_STAT))
        t = self.targets["direct"]
        t.http_port, t.tls_port, t.stat_port = (self.port(P_UP_SMALL), self.port(P_UP_TLS),
                                                self.port(P_UP_STAT))
        t.proc = self.start_nginx("upstream", conf, LOAD_CPU, self.port(P_UP_STAT))

    def start_nginx(self, name, conf, cpu, wait_port):
        path = os.path.join(self.dir, name + ".conf")
        with open(path, "w") as f:
            f.write(conf)
        single = name in self.wrapped  # under a tool: one process, no worker to wait for
        argv = ["nginx", "-p", self.dir, "-e", os.path.join(self.dir, name + ".log"),
                "-c", path, "-g", "daemon off;" + (" master_process off;" if single else "")]
        p = self.spawn(name, argv, cpu, name + ".log")
        self.wait_port(wait_port, p, name, timeout=60.0 if single else 15.0)
        if single:
            return p
        # The master listens before it forks the worker: wait until the worker answers, or
        # the worker would be missing from the PIDs measured.
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                if children(p.pid) and http_get(wait_port, "/", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        else:
            raise RuntimeError("%s: no worker answering on %d" % (name, wait_port))
        self.remember(children(p.pid))
        return p

    def start_proxy_nginx(self):
        t = self.targets["nginx"]
        b = self.port(P_PROXY["nginx"])
        t.http_port, t.tls_port, t.stat_port = b, b + 1, b + 2
        head, paths = self.nginx_common("nginx", self.maxconn + 1024)
        conf = head + """http {
    access_log off;
%s
    keepalive_timeout 600s;
    keepalive_requests 1000000000;
    client_header_timeout 600s;
    upstream small {
        server 127.0.0.1:%d;
        keepalive 1024;
        keepalive_requests 1000000000;
        keepalive_timeout 600s;
    }
    upstream big {
        server 127.0.0.1:%d;
        keepalive 1024;
        keepalive_requests 1000000000;
        keepalive_timeout 600s;
    }
    server {
        listen 127.0.0.1:%d;
        listen 127.0.0.1:%d ssl http2;
%s        proxy_http_version 1.1;
        proxy_set_header Connection "";
        location / { proxy_pass http://small; }
        location /16k { proxy_pass http://big; }
    }
    server {
        listen 127.0.0.1:%d;
        location / { stub_status; }
    }
}
""" % (paths, self.port(P_UP_SMALL), self.port(P_UP_BIG), t.http_port, t.tls_port,
            self.tls_block(), t.stat_port)
        t.proc = self.start_nginx("nginx", conf, PROXY_CPU, t.stat_port)

    def start_proxy_haproxy(self):
        t = self.targets["haproxy"]
        b = self.port(P_PROXY["haproxy"])
        t.http_port, t.tls_port = b, b + 1
        self.haproxy_sock = os.path.join(self.dir, "haproxy.sock")
        conf = """global
    nbthread 1
    maxconn %d
    stats socket %s mode 600 level admin
    ssl-default-bind-options ssl-min-ver TLSv1.3 no-tls-tickets
    tune.ssl.cachesize 0

defaults
    mode http
    maxconn %d
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-request 600s
    timeout http-keep-alive 600s
    http-reuse always

frontend fe
    bind 127.0.0.1:%d
    bind 127.0.0.1:%d ssl crt %s alpn h2,http/1.1
    use_backend big if { path_beg /16k }
    default_backend small

backend small
    server up 127.0.0.1:%d

backend big
    server up 127.0.0.1:%d
""" % (self.maxconn, self.haproxy_sock, self.maxconn, t.http_port, t.tls_port, self.pem,
            self.port(P_UP_SMALL), self.port(P_UP_BIG))
        path = os.path.join(self.dir, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(conf)
        # -W (master-worker) only for the reload section: SIGUSR2 to the master reloads.
        mw = ["-W"] if self.haproxy_master_worker else []
        t.proc = self.spawn("haproxy", ["haproxy"] + mw + ["-db", "-f", path], PROXY_CPU,
                            "haproxy.log")
        self.wait_port(t.tls_port, t.proc, "haproxy", timeout=60.0 if self.wrapped else 15.0)

    def meshgate_main(self, admin_port, resources, extra=""):
        lines = ["workers: 1",
                 'admin: {address: "127.0.0.1:%d"}' % admin_port,
                 "limits: {maxConnections: %d}" % self.maxconn,
                 "timeouts: {idle: 600s, requestHeaders: 600s, drain: 1s}",
                 # like nginx's ssl_session_tickets off and HAProxy's no-tls-tickets
                 "tlsSessionResumption: false",
                 "resources: [%s]" % ", ".join(resources)]
        if self.is_root:
            lines.append("user: root")  # else it would switch to the user meshgate
        return "\n".join(lines) + "\n" + extra

    def start_proxy_meshgate(self):
        t = self.targets["meshgate"]
        b = self.port(P_PROXY["meshgate"])
        t.http_port, t.tls_port, t.stat_port = b, b + 1, b + 2
        d = os.path.join(self.dir, "meshgate")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "main.yaml"), "w") as f:
            f.write(self.meshgate_main(t.stat_port, ["bench.yaml"]))
        services = ""
        for name, port in (("small", self.port(P_UP_SMALL)), ("big", self.port(P_UP_BIG))):
            services += """---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: %s}
spec:
  hosts: [%s.bench.internal]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: %d}}]
""" % (name, name, port)
        with open(os.path.join(d, "bench.yaml"), "w") as f:
            f.write("""apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bench-gw}
spec:
  servers:
  - port: {number: %d, name: http, protocol: HTTP}
    bind: 127.0.0.1
    hosts: ["*"]
  - port: {number: %d, name: https, protocol: HTTPS}
    bind: 127.0.0.1
    hosts: ["*"]
    tls:
      mode: SIMPLE
      serverCertificate: %s
      privateKey: %s
      minProtocolVersion: TLSV1_3
%s---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bench}
spec:
  hosts: ["*"]
  gateways: [bench-gw]
  http:
  - match: [{uri: {prefix: /16k}}]
    route: [{destination: {host: big.bench.internal}}]
  - route: [{destination: {host: small.bench.internal}}]
""" % (t.http_port, t.tls_port, self.crt, self.key, services))
        t.proc = self.spawn("meshgate", [self.meshgate, "-c", os.path.join(d, "main.yaml")],
                            PROXY_CPU, "meshgate.log")
        self.wait_ready(t.stat_port, t.proc, "meshgate", timeout=60.0 if self.wrapped else 15.0)

    def start_proxy(self, name):
        {"meshgate": self.start_proxy_meshgate, "nginx": self.start_proxy_nginx,
         "haproxy": self.start_proxy_haproxy}[name]()

    def restart_proxy(self, name):
        t = self.targets[name]
        self.stop(t.proc)
        self.procs = [(n, p) for n, p in self.procs if p is not t.proc]
        t.proc = None
        self.start_proxy(name)

    # ----- counters --------------------------------------------------------------------

    def counters(self, t):
        """(connections accepted, requests) so far, or None."""
        try:
            if t.name in ("direct", "nginx"):
                _, body = http_get(t.stat_port, "/", timeout=3)
                m = re.search(rb"\s(\d+)\s+(\d+)\s+(\d+)\s", body.split(b"\n", 2)[2])
                # the scrape itself is one connection and one request
                return (int(m.group(1)) - 1, int(m.group(3)) - 1) if m else None
            if t.name == "meshgate":
                _, body = http_get(t.stat_port, "/metrics", timeout=3)
                cx = re.search(rb"^meshgate_downstream_cx_total (\d+)", body, re.M)
                rq = re.search(rb"^meshgate_downstream_rq_total (\d+)", body, re.M)
                return (int(cx.group(1)), int(rq.group(1))) if cx and rq else None
            if t.name == "haproxy":
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(3)
                s.connect(self.haproxy_sock)
                s.sendall(b"show stat\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                s.close()
                lines = data.decode().splitlines()
                cols = lines[0].lstrip("# ").split(",")
                for line in lines[1:]:
                    row = dict(zip(cols, line.split(",")))
                    if row.get("pxname") == "fe" and row.get("svname") == "FRONTEND":
                        return int(row["conn_tot"]), int(row["req_tot"])
        except (OSError, ValueError, AttributeError, KeyError, IndexError):
            return None
        return None

    # ----- TLS probe -------------------------------------------------------------------

    def tls_probe(self, t):
        """Version, cipher, ALPN (h2 offered) and whether a session resumes."""
        info = {"port": t.tls_port}
        try:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            with socket.create_connection(("127.0.0.1", t.tls_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="bench.local") as s:
                    info["version"] = s.version()
                    info["cipher"] = s.cipher()[0]
                    info["alpn"] = s.selected_alpn_protocol()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            session = None
            for attempt in (0, 1):
                with socket.create_connection(("127.0.0.1", t.tls_port), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname="bench.local",
                                         session=session) as s:
                        s.sendall(b"GET / HTTP/1.1\r\nHost: bench.local\r\n"
                                  b"Connection: close\r\n\r\n")
                        while s.recv(65536):
                            pass
                        if attempt == 1:
                            info["resumed"] = bool(s.session_reused)
                        session = s.session
            info["tickets_issued"] = bool(session is not None and session.has_ticket)
        except (OSError, ssl.SSLError) as e:
            info["error"] = str(e)
        t.tls = info
        return info

    # ----- one measured run ------------------------------------------------------------

    def url(self, t, sc):
        if t.name == "direct":
            port = t.tls_port if sc["tls"] else (
                self.port(P_UP_BIG) if sc["path"] == "/16k" else self.port(P_UP_SMALL))
        else:
            port = t.tls_port if sc["tls"] else t.http_port
        return "%s://127.0.0.1:%d%s" % ("https" if sc["tls"] else "http", port, sc["path"])

    def loadgen_argv(self, t, sc, duration, logfile):
        url = self.url(t, sc)
        tool = sc["tool"]
        if tool == "wrk":
            argv = ["wrk", "-t1", "-c%d" % sc["conns"], "-d%ds" % max(1, round(duration)),
                    "--latency"]
            for h in sc.get("headers", []):
                argv += ["-H", h]
            return argv + [url]
        if tool == "h2load":
            return ["h2load", "-t1", "-c16", "-m32", "-D", "%d" % max(1, round(duration)),
                    "--log-file=" + logfile, url]
        return [PY, os.path.join(HERE, "hsload.py"), "--port", str(t.tls_port), "--path",
                sc["path"], "--conns", str(sc["conns"]), "--duration", str(duration)]

    def run_loadgen(self, argv, timeout):
        self.loadgen = subprocess.Popen(["taskset", "-c", str(LOAD_CPU)] + argv,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True)
        try:
            out, _ = self.loadgen.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.loadgen.kill()
            out, _ = self.loadgen.communicate()
        self.loadgen = None
        return out

    def measure(self, t, sc, duration, pids=None):
        """Run the load generator once against t; the proxy's CPU and counters around it."""
        logfile = os.path.join(self.dir, "h2load.log")
        pids = pids or t.pids()
        up = self.targets["direct"]
        c0 = self.counters(t)
        u0 = self.counters(up) if t.name != "direct" else None
        busy0 = cpu_busy()
        ticks0 = cpu_ticks(pids)
        t0 = time.monotonic()
        out = self.run_loadgen(self.loadgen_argv(t, sc, duration, logfile), duration + 60)
        elapsed = time.monotonic() - t0
        ticks1 = cpu_ticks(pids)
        busy1 = cpu_busy()
        c1 = self.counters(t)
        u1 = self.counters(up) if t.name != "direct" else None
        if sc["tool"] == "wrk":
            r = parse_wrk(out)
        elif sc["tool"] == "h2load":
            r = parse_h2load(out, logfile)
        else:
            try:
                r = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                r = {"requests": 0}
            r["socket_errors"] = r.pop("errors", 0)
            r.setdefault("non2xx", 0)
        r["cpu_ticks"] = ticks1 - ticks0
        r["us_per_req"] = ((ticks1 - ticks0) * 1e6 / CLK_TCK / r["requests"]
                           if r.get("requests") else None)
        r["elapsed_s"] = round(elapsed, 3)
        if c0 and c1:
            r["cx"], r["rq"] = c1[0] - c0[0], c1[1] - c0[1]
        if u0 and u1:
            r["upstream_cx"] = u1[0] - u0[0]
        # Others' load on the proxy's CPU: busy ticks there that are not the target's.
        proxy_cpu = LOAD_CPU if t.name == "direct" else PROXY_CPU
        for cpu in (PROXY_CPU, LOAD_CPU):
            if cpu in busy0 and cpu in busy1:
                busy = busy1[cpu][0] - busy0[cpu][0]
                total = busy1[cpu][1] - busy0[cpu][1]
                if cpu == proxy_cpu:
                    busy -= ticks1 - ticks0
                r["cpu%d_other_pct" % cpu] = round(100.0 * max(0, busy) / total, 1) \
                    if total else None
        if not r.get("requests"):
            r["raw"] = out[-2000:]
        return r

    def judge(self, t, sc, r):
        """Reasons this run is invalid (empty: valid)."""
        why = []
        if not r.get("requests"):
            why.append("no requests completed")
        if r.get("non2xx"):
            why.append("%d non-2xx" % r["non2xx"])
        if r.get("socket_errors"):
            why.append("%d socket errors" % r["socket_errors"])
        if sc.get("per_request_conn") and r.get("cx") is not None and r.get("requests"):
            # Connections still open when the client stops never complete a request.
            extra = r["cx"] - r["requests"]
            if not -0.03 * r["requests"] <= extra <= 0.03 * r["requests"] + 2 * sc["conns"]:
                why.append("%.2f connections per request, not 1" %
                           (r["cx"] / float(r["requests"])))
        if sc["id"] == "handshake" and t.tls.get("resumed"):
            why.append("resumed sessions, not full handshakes")
        if t.proc is not None and t.proc.poll() is not None:
            why.append("%s exited with status %s" % (t.name, t.proc.returncode))
        return why

    # ----- scenarios -------------------------------------------------------------------

    def scenarios(self):
        all_sc = [
            {"id": "h1", "title": "HTTP/1.1 keep-alive, 64 B body", "tool": "wrk",
             "tls": False, "path": "/", "conns": self.conns},
            {"id": "h1-16k", "title": "HTTP/1.1 keep-alive, 16 KiB body", "tool": "wrk",
             "tls": False, "path": "/16k", "conns": self.conns},
            {"id": "https", "title": "HTTPS keep-alive, TLS 1.3 ECDSA P-256, 64 B body",
             "tool": "wrk", "tls": True, "path": "/", "conns": self.conns},
            {"id": "handshake", "title": "full TLS 1.3 handshake per request "
             "(wrk, Connection: close)", "tool": "wrk", "tls": True, "path": "/",
             "conns": self.hs_conns, "headers": ["Connection: close"],
             "per_request_conn": True},
            {"id": "handshake-py", "title": "full TLS 1.3 handshake per request "
             "(bench/hsload.py, never resumes)", "tool": "hsload", "tls": True, "path": "/",
             "conns": self.hs_conns, "per_request_conn": True},
            {"id": "h2", "title": "HTTP/2 over TLS (h2load -c16 -m32)", "tool": "h2load",
             "tls": True, "path": "/", "conns": 16, "h2": True},
        ]
        want = self.args.scenarios.split(",") if self.args.scenarios else None
        return [s for s in all_sc if want is None or s["id"] in want]

    def run_scenario(self, sc):
        targets = []
        skipped = []
        for name in ("direct",) + PROXIES:
            t = self.targets[name]
            if sc.get("h2") and t.tls.get("alpn") != "h2":
                skipped.append(name)
                continue
            targets.append(t)
        tool = {"wrk": "wrk -t1 -c%d" % sc["conns"], "h2load": "h2load -t1 -c16 -m32",
                "hsload": "hsload.py -c%d" % sc["conns"]}[sc["tool"]]
        self.out("")
        self.out("== %s [%s]  (%s)" % (sc["title"], sc["id"], tool))
        for name in skipped:
            msg = ("skipped: meshgate does not speak HTTP/2 yet (no h2 in its TLS ALPN)"
                   if name == "meshgate" else "skipped: %s negotiated no h2" % name)
            self.out("   %-9s %s" % (name, msg))
            self.record("skip", scenario=sc["id"], target=name, reason=msg)
        if self.warmup > 0:
            for t in targets:
                self.progress("%s: warm-up %s" % (sc["id"], t.name))
                self.measure(t, sc, self.warmup)
        runs = {t.name: [] for t in targets}
        for rnd in range(self.rounds):
            for t in targets:
                r = self.measure(t, sc, self.duration)
                r["invalid"] = self.judge(t, sc, r)
                runs[t.name].append(r)
                self.record("run", scenario=sc["id"], target=t.name, round=rnd + 1, **r)
                self.progress("%s round %d/%d %-8s %s req/s  %s us/req%s" % (
                    sc["id"], rnd + 1, self.rounds, t.name, fmt_k(r.get("rps")),
                    fmt(r.get("us_per_req")),
                    ("  INVALID: " + "; ".join(r["invalid"])) if r["invalid"] else ""))
        self.summarise(sc, runs)

    def summarise(self, sc, runs):
        summ = {}
        for name, rs in runs.items():
            s = {}
            for key in ("rps", "p50_ms", "p99_ms", "us_per_req"):
                vals = [r.get(key) for r in rs if r.get(key) is not None]
                s[key] = median(vals)
                s[key + "_min"] = min(vals) if vals else None
                s[key + "_max"] = max(vals) if vals else None
            s["requests"] = sum(r.get("requests") or 0 for r in rs)
            s["errors"] = sum((r.get("non2xx") or 0) + (r.get("socket_errors") or 0) for r in rs)
            cprs = [r["cx"] / float(r["requests"]) for r in rs
                    if r.get("cx") is not None and r.get("requests")]
            s["cx_per_req"] = median(cprs)
            ups = [r["upstream_cx"] for r in rs if r.get("upstream_cx") is not None]
            s["upstream_cx"] = sum(ups) if ups else None
            s["cpu0_other_pct"] = median([r.get("cpu0_other_pct") for r in rs])
            reasons = []
            for r in rs:
                for why in r["invalid"]:
                    if why not in reasons and not re.match(r"\d+ (non-2xx|socket)", why):
                        reasons.append(why)
            if s["errors"]:
                reasons.insert(0, "%d errors" % s["errors"])
            s["invalid"] = reasons
            summ[name] = s
        hap = summ.get("haproxy")
        for name, s in summ.items():
            for key in ("rps", "p50_ms", "p99_ms", "us_per_req"):
                s["x_haproxy_" + key] = ratio(s[key], hap[key]) if hap else None
        for name, s in summ.items():
            self.record("summary", scenario=sc["id"], target=name, rounds=len(runs[name]), **s)
        self.summaries[sc["id"]] = summ
        self.print_table(sc, summ)

    def print_table(self, sc, summ):
        hdr = "   %-9s %-22s %5s  %-22s %5s  %6s %6s %5s  %6s %5s  %s" % (
            "target", "us/req [min-max]", "xHAP", "req/s [min-max]", "xHAP", "p50ms",
            "p99ms", "xHAP", "cx/req", "errs", "note")
        self.out(hdr)
        for name, s in summ.items():
            notes = ["upstream's own CPU"] if name == "direct" else []
            if s["invalid"]:
                notes.append("INVALID: " + "; ".join(s["invalid"]))
            note = "; ".join(notes)
            us = "%s [%s-%s]" % (fmt(s["us_per_req"]), fmt(s["us_per_req_min"]),
                                 fmt(s["us_per_req_max"]))
            rps = "%s [%s-%s]" % (fmt_k(s["rps"]), fmt_k(s["rps_min"]), fmt_k(s["rps_max"]))
            self.out("   %-9s %-22s %5s  %-22s %5s  %6s %6s %5s  %6s %5d  %s" % (
                name, us, fmt(s["x_haproxy_us_per_req"], 2), rps, fmt(s["x_haproxy_rps"], 2),
                fmt(s["p50_ms"], 2), fmt(s["p99_ms"], 2), fmt(s["x_haproxy_p99_ms"], 2),
                fmt(s["cx_per_req"], 2), s["errors"], note))
        others = [s["cpu0_other_pct"] for s in summ.values() if s["cpu0_other_pct"] is not None]
        if others:
            self.out("   (CPU 0 busy with other processes during the runs: median %.0f%%)" %
                     median(others))

    # ----- idle connections ------------------------------------------------------------

    def idle(self):
        n = self.idle_n
        self.out("")
        self.out("== Memory of %d idle connections (VmRSS delta of a freshly started proxy)" % n)
        if self.idle_note:
            self.out("   note: " + self.idle_note)
        self.out("   %-9s %-28s %-28s" % ("target", "plain KiB/conn (open)", "TLS KiB/conn (open)"))
        rows = {}
        for name in PROXIES:
            rows[name] = {}
            for tls in (False, True):
                self.restart_proxy(name)
                res = self.idle_one(self.targets[name], tls, n)
                rows[name]["tls" if tls else "plain"] = res
                self.record("idle", target=name, tls=tls, **res)
                self.progress("idle %s %s: %s" % (name, "tls" if tls else "plain", res))
            self.restart_proxy(name)
            self.out("   %-9s %-28s %-28s" % (name, idle_cell(rows[name]["plain"]),
                                               idle_cell(rows[name]["tls"])))

    def idle_one(self, t, tls, n):
        pids = t.pids()
        time.sleep(0.3)
        rss0 = vmrss_kib(pids)
        fds0 = nfds(pids)
        argv = ["taskset", "-c", str(LOAD_CPU), PY, os.path.join(HERE, "idleconns.py"),
                "--port", str(t.tls_port if tls else t.http_port), "--n", str(n)]
        if tls:
            argv.append("--tls")
        self.loadgen = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        res = {"n": n, "rss0_kib": rss0}
        try:
            line = self.loadgen.stdout.readline()
            m = re.match(r"open (\d+) failed (\d+)", line)
            if not m:
                res["error"] = line.strip() or "client gave no result"
                return res
            res["open"], res["failed"] = int(m.group(1)), int(m.group(2))
            end = time.monotonic() + 20
            while time.monotonic() < end and nfds(pids) - fds0 < res["open"]:
                time.sleep(0.1)
            res["fds_added"] = nfds(pids) - fds0
            if res["fds_added"] < 0.95 * res["open"]:
                res["error"] = "the proxy holds %d descriptors more, not %d" % (
                    res["fds_added"], res["open"])
                return res
            time.sleep(1.0)
            rss1 = vmrss_kib(pids)
            res["rss1_kib"] = rss1
            res["kib_per_conn"] = (rss1 - rss0) / float(res["open"]) if res["open"] else None
        finally:
            if self.loadgen.poll() is None:
                self.loadgen.stdin.close()
                try:
                    self.loadgen.wait(30)
                except subprocess.TimeoutExpired:
                    self.loadgen.kill()
                    self.loadgen.wait()
            self.loadgen = None
        return res

    # ----- reload under load -----------------------------------------------------------

    # How each proxy is told to reload, and how a reload shows that it was applied.
    RELOAD_SIGNAL = {"meshgate": signal.SIGHUP, "nginx": signal.SIGHUP,
                     "haproxy": signal.SIGUSR2}

    def reload_section(self):
        n, rate, conns = int(self.args.reloads), int(self.args.reload_rate), \
            int(self.args.reload_conns)
        duration = n + 2
        self.out("")
        self.out("== Reload under load: %d reloads, one a second, during %d s of HTTP/1.1 "
                 "keep-alive GET / at %d req/s (bench/reloadload.py -c%d)" %
                 (n, duration, rate, conns))
        self.out("   failed = requests written that got no response (connection closed or "
                 "reset under them); closed idle = connections closed with no request on them")
        self.out("   %-9s %-9s %-9s %-7s %-8s %-12s %-7s %s" % (
            "target", "reloads", "requests", "failed", "non-2xx", "closed idle", "p99ms",
            "reloaded by"))
        rows = {}
        self.haproxy_master_worker = True
        try:
            for name in PROXIES:
                self.restart_proxy(name)
                res = self.reload_one(self.targets[name], n, rate, conns, duration)
                rows[name] = res
                self.record("reload", target=name, reloads=n, rate=rate, conns=conns, **res)
                self.progress("reload %s: %s" % (name, res))
                how = {"meshgate": "SIGHUP (snapshot swap in the running process)",
                       "nginx": "SIGHUP to the master (new workers)",
                       "haproxy": "SIGUSR2 to the master, -W (new worker)"}[name]
                if "error" in res:
                    self.out("   %-9s failed: %s" % (name, res["error"]))
                    continue
                self.out("   %-9s %-9s %-9d %-7d %-8d %-12d %-7s %s" % (
                    name, "%d/%d" % (res["reloads_applied"], n), res["sent"], res["failed"],
                    res["non2xx"], res["closed_idle"], fmt(res.get("p99_ms"), 2), how))
                if res.get("failures"):
                    self.out("             failures: %s" % "; ".join(
                        "%s x%d" % kv for kv in sorted(res["failures"].items())))
        finally:
            self.haproxy_master_worker = False
            self.restart_proxy("haproxy")
        m = rows.get("meshgate", {})
        if "error" in m or not m:
            verdict = "not judged: %s" % m.get("error", "no result")
        elif m["reloads_applied"] != n:
            verdict = "not judged: %d of %d reloads applied" % (m["reloads_applied"], n)
        else:
            verdict = "met" if m["failed"] == 0 and m["non2xx"] == 0 else "MISSED"
        self.out("   target (DESIGN.md section 6): 0 failed requests -> meshgate %d failed, "
                 "%d non-2xx: %s" % (m.get("failed", -1), m.get("non2xx", -1), verdict))

    def reload_applied(self, t, seen):
        """True once the reload just signalled shows: meshgate's config generation moved
        on, or a worker PID not seen before exists (nginx, HAProxy)."""
        if t.name == "meshgate":
            try:
                status, body = http_get(t.stat_port, "/ready", timeout=1)
            except OSError:
                return False
            m = re.search(r"generation (\d+)", body.decode()) if status == 200 else None
            if m is None or int(m.group(1)) in seen:
                return False
            seen.add(int(m.group(1)))
            return True
        new = set(children(t.proc.pid)) - seen
        self.remember(new)
        seen |= new
        return bool(new)

    def reload_one(self, t, n, rate, conns, duration):
        seen = set()
        self.reload_applied(t, seen)  # the generation or workers already there
        argv = ["taskset", "-c", str(LOAD_CPU), PY, os.path.join(HERE, "reloadload.py"),
                "--port", str(t.http_port), "--rate", str(rate), "--conns", str(conns),
                "--duration", str(duration)]
        self.loadgen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, text=True)
        applied = 0
        try:
            start = time.monotonic()
            for i in range(n):
                time.sleep(max(0.0, start + 1.5 + i - time.monotonic()))
                if t.proc.poll() is not None:
                    break
                t.proc.send_signal(self.RELOAD_SIGNAL[t.name])
                until = time.monotonic() + 0.9
                while time.monotonic() < until:
                    if self.reload_applied(t, seen):
                        applied += 1
                        break
                    time.sleep(0.02)
            out, _ = self.loadgen.communicate(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            self.loadgen.kill()
            out, _ = self.loadgen.communicate()
        finally:
            self.loadgen = None
        try:
            res = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {"error": "reloadload.py gave no result: %s" % out[-300:]}
        res["reloads_applied"] = applied
        if t.proc.poll() is not None:
            res["error"] = "%s exited (status %s)" % (t.name, t.proc.returncode)
        return res

    # ----- route-table scaling ---------------------------------------------------------

    def scale(self):
        sizes = [int(x) for x in self.args.scale_sizes.split()]
        self.out("")
        self.out("== meshgate route-table scaling: N virtual hosts x 10 routes "
                 "(wrk -t1 -c%d, request to the 9th route of the middle host)" % self.conns)
        insts = []
        for i, n in enumerate(sizes):
            d = os.path.join(self.dir, "scale-%d" % n)
            env_ = dict(os.environ, GW_PORT=str(self.port(P_SCALE + i)),
                        UPSTREAM_PORT=str(self.port(P_UP_SMALL)))
            subprocess.run(["sh", os.path.join(HERE, "config-scale.sh"), "--gen", str(n), d],
                           env=env_, check=True)
            admin = self.port(P_SCALE + 5 + i)
            with open(os.path.join(d, "main.yaml"), "w") as f:
                f.write(self.meshgate_main(admin, ["base.yaml", "vs.yaml"],
                                           "labels: {istio: ingressgateway}\n"))
            t = Target("meshgate-%d" % n)
            t.http_port, t.stat_port = self.port(P_SCALE + i), admin
            t0 = time.monotonic()
            t.proc = self.spawn(t.name, [self.meshgate, "-c", os.path.join(d, "main.yaml")],
                                PROXY_CPU, t.name + ".log")
            self.wait_ready(admin, t.proc, t.name, timeout=180)
            t.startup_s = time.monotonic() - t0
            t.n = n
            k = n // 2
            t.host, t.path = "vh-%d.bench.example" % k, "/svc-%d/page" % k
            status, _ = http_get(t.http_port, t.path, host=t.host)
            if status != 200:
                raise RuntimeError("%s answered %d to %s%s" % (t.name, status, t.host, t.path))
            insts.append(t)
        runs = {t.name: [] for t in insts}
        for rnd in range(self.rounds):
            for t in insts:
                sc = {"id": "scale", "tool": "wrk", "tls": False, "path": t.path,
                      "conns": self.conns, "headers": ["Host: " + t.host]}
                r = self.measure(t, sc, self.duration)
                r["invalid"] = self.judge(t, sc, r)
                runs[t.name].append(r)
                self.record("scale_run", vhosts=t.n, round=rnd + 1, **r)
                self.progress("scale round %d/%d %d vhosts: %s us/req" % (
                    rnd + 1, self.rounds, t.n, fmt(r.get("us_per_req"))))
        rss = {t.name: vmrss_kib(t.pids()) for t in insts}
        for t in insts:
            self.stop(t.proc)
        # Load + link + compile time of `meshgate -t` (bench/config-scale.sh).
        cs = subprocess.run(["sh", os.path.join(HERE, "config-scale.sh"), self.meshgate],
                            env=dict(os.environ, SIZES=" ".join(map(str, sizes)),
                                     RUNS=str(self.args.scale_runs)),
                            capture_output=True, text=True)
        check = {}
        for line in cs.stdout.splitlines():
            f = line.split()
            if len(f) >= 5 and f[0].isdigit():
                check[int(f[0])] = {"wall_s": float(f[3]), "maxrss_mib": float(f[4])}
        base = None
        self.out("   %-7s %-22s %6s  %-22s %6s %8s %9s %9s %9s" % (
            "vhosts", "us/req [min-max]", "x10", "req/s [min-max]", "p99ms", "start_s",
            "RSS_MiB", "-t wall_s", "-t MiB"))
        for t in insts:
            rs = runs[t.name]
            us = [r["us_per_req"] for r in rs if r.get("us_per_req") is not None]
            rps = [r["rps"] for r in rs if r.get("rps") is not None]
            s = {"vhosts": t.n, "routes": t.n * 10, "us_per_req": median(us),
                 "us_per_req_min": min(us) if us else None,
                 "us_per_req_max": max(us) if us else None,
                 "rps": median(rps), "p99_ms": median([r.get("p99_ms") for r in rs]),
                 "startup_s": round(t.startup_s, 3), "rss_mib": rss[t.name] / 1024.0,
                 "errors": sum((r.get("non2xx") or 0) + (r.get("socket_errors") or 0)
                               for r in rs)}
            s.update({"check_" + k: v for k, v in check.get(t.n, {}).items()})
            if base is None:
                base = s["us_per_req"]
            s["x_smallest"] = ratio(s["us_per_req"], base)
            self.record("scale", **s)
            self.out("   %-7d %-22s %6s  %-22s %6s %8.2f %9.1f %9s %9s%s" % (
                t.n, "%s [%s-%s]" % (fmt(s["us_per_req"]), fmt(s["us_per_req_min"]),
                                     fmt(s["us_per_req_max"])),
                fmt(s["x_smallest"], 2), "%s [%s-%s]" % (fmt_k(s["rps"]),
                                                           fmt_k(min(rps) if rps else None),
                                                           fmt_k(max(rps) if rps else None)),
                fmt(s["p99_ms"], 2), s["startup_s"], s["rss_mib"],
                fmt(s.get("check_wall_s"), 3), fmt(s.get("check_maxrss_mib")),
                "  INVALID: %d errors" % s["errors"] if s["errors"] else ""))
        if cs.returncode != 0:
            self.out("   config-scale.sh failed: %s" % cs.stderr.strip()[-300:])

    # ----- the whole run ---------------------------------------------------------------

    # ----- instructions per request (callgrind) --------------------------------------------

    # (column, TLS, HTTP/2): the protocols the instr section measures
    INSTR_MODES = (("http", False, False), ("https", True, False), ("h2", True, True))

    def instr(self):
        """User-space instructions per request of each proxy under callgrind: unlike CPU
        time, the same on a busy machine as on a quiet one, run after run."""
        n = int(self.args.instr_requests)
        n_h2 = int(self.args.instr_h2_requests)
        self.out("")
        self.out("== User-space instructions per request (callgrind; h2load --h1 -c8, %d "
                 "keep-alive requests after 500 unmeasured; h2: h2load -c16 -m32, %d after "
                 "2000; 64 B body)" % (n, n_h2))
        if not (shutil.which("valgrind") and shutil.which("callgrind_control")):
            self.out("   skipped: valgrind is not installed")
            return
        self.out("   %-9s %-16s %-7s %-16s %-7s %-16s %-7s" % (
            "target", "http instr/req", "xHAP", "https instr/req", "xHAP", "h2 instr/req",
            "xHAP"))
        for name in PROXIES:  # which TLS ports speak HTTP/2 (the proxy section probed them)
            if not self.targets[name].tls:
                self.tls_probe(self.targets[name])
        res = {}
        for name in PROXIES:
            res[name] = {}
            for col, tls, h2 in self.INSTR_MODES:
                if h2 and self.targets[name].tls.get("alpn") != "h2":
                    res[name][col] = None  # no HTTP/2 on its TLS port
                    continue
                res[name][col] = self.instr_one(name, col, tls, h2, n_h2 if h2 else n)
                self.record("instr", target=name, tls=tls, http2=h2,
                            requests=n_h2 if h2 else n,
                            instructions_per_request=res[name][col])
                self.progress("instr %s %s: %s" % (name, col, res[name][col]))
            self.restart_proxy(name)
        hap = res["haproxy"]
        for name in PROXIES:
            cells = []
            for col, _, _ in self.INSTR_MODES:
                v = res[name][col]
                cells += ["%d" % v if v else "skipped" if v is None else "failed",
                          "%.2f" % (v / hap[col]) if v and hap[col] else "-"]
            self.out("   %-9s %-16s %-7s %-16s %-7s %-16s %-7s" % tuple([name] + cells))

    def instr_one(self, name, col, tls, h2, n):
        t = self.targets[name]
        out = os.path.join(self.dir, "callgrind.%s.%s" % (name, col))
        self.wrapped = {name: ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                               "--callgrind-out-file=" + out]}
        try:
            self.restart_proxy(name)
        finally:
            self.wrapped = {}
        url = "%s://127.0.0.1:%d/" % ("https" if tls else "http",
                                      t.tls_port if tls else t.http_port)
        # The measured run opens its connections anew: with HTTP/2 its 16 handshakes are
        # inside the count, which is why it takes more requests than the others.
        load = ["h2load", "-t1", "-c16", "-m32"] if h2 else ["h2load", "--h1", "-t1", "-c8"]
        self.run_loadgen(load + ["-n", "2000" if h2 else "500", url], timeout=300)
        pid = str(t.proc.pid)
        subprocess.run(["callgrind_control", "-i", "on", pid], capture_output=True)
        text = self.run_loadgen(load + ["-n", str(n), url], timeout=600)
        subprocess.run(["callgrind_control", "-i", "off", pid], capture_output=True)
        self.stop(t.proc, grace=60.0)  # callgrind writes its file at exit
        m = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", text)
        done = int(m.group(1)) if m else 0
        total = 0
        try:
            with open(out) as f:
                for line in f:
                    if line.startswith(("summary:", "totals:")):
                        total = max(total, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            pass
        return round(total / done) if done == n and total > 0 else 0

    def header(self):
        m = machine()
        self.machine = m
        mg_ver = tool_version([self.meshgate, "-v"], r"(?:meshgate )?(\S+)")
        rev = subprocess.run(["git", "-C", TOP, "describe", "--always", "--dirty"],
                             capture_output=True, text=True).stdout.strip()
        versions = {
            "meshgate": mg_ver + (" (git %s)" % rev if rev else ""),
            "nginx": tool_version(["nginx", "-v"], r"nginx/(\S+)"),
            "haproxy": tool_version(["haproxy", "-v"], r"version (\S+)"),
            "wrk": tool_version(["wrk", "-v"], r"wrk (?:debian/)?(\S+)"),
            "h2load": tool_version(["h2load", "--version"], r"nghttp2/(\S+)"),
            "openssl": tool_version(["openssl", "version"], r"OpenSSL (\S+)"),
        }
        self.versions = versions
        params = {"rounds": self.rounds, "duration_s": self.duration, "warmup_s": self.warmup,
                  "conns": self.conns, "hs_conns": self.hs_conns, "idle_conns": self.idle_n,
                  "proxy_cpu": PROXY_CPU, "load_cpu": LOAD_CPU, "clk_tck": CLK_TCK}
        self.record("machine", machine=m, versions=versions, params=params,
                    meshgate_path=self.meshgate)
        self.out("meshgate side-by-side benchmark, %s" %
                 self.stamp.strftime("%Y-%m-%d %H:%M UTC"))
        self.out("machine:  %s, %d CPUs, Linux %s, %s; load average at start %.1f" % (
            m["cpu"], m["cpus"], m["kernel"], m["os"], m["loadavg"]))
        self.out("versions: meshgate %s; nginx %s; HAProxy %s; wrk %s; h2load %s; OpenSSL %s" % (
            versions["meshgate"], versions["nginx"], versions["haproxy"], versions["wrk"],
            versions["h2load"], versions["openssl"]))
        self.out("method:   each proxy one worker pinned to CPU %d; upstream nginx and load "
                 "generator on CPU %d;" % (PROXY_CPU, LOAD_CPU))
        self.out("          %d rounds x %g s per scenario, targets interleaved; medians "
                 "[min-max];" % (self.rounds, self.duration))
        self.out("          us/req = the proxy's utime+stime (/proc/PID/stat) / requests "
                 "(the headline figure);")
        self.out("          xHAP = ratio to HAProxy's median in the same run; cx/req = client "
                 "connections accepted per request.")
        if m["cpus"] < 2:
            self.out("WARNING: fewer than 2 CPUs: proxy and load generator share one")
        if m["loadavg"] > 1.0:
            self.out("NOTE: the machine is busy (load %.1f): figures are noisy, and req/s "
                     "most of all" % m["loadavg"])

    def tls_report(self):
        self.out("")
        self.out("== TLS listeners (probe: TLS 1.3 handshake offering h2, then a second "
                 "connection offering the first one's session)")
        for name in ("direct",) + PROXIES:
            t = self.targets[name]
            i = self.tls_probe(t)
            self.record("tls", target=name, **i)
            if "error" in i:
                self.out("   %-9s probe failed: %s" % (name, i["error"]))
                continue
            res = "RESUMED" if i.get("resumed") else "refused (full handshake)"
            note = ""
            if name == "meshgate" and i.get("resumed"):
                note = ("  <- meshgate resumed although tlsSessionResumption is false; wrk "
                        "resumes, so the wrk handshake row is not full handshakes")
            self.out("   %-9s %s %s alpn=%s; resumption %s%s" % (
                name, i.get("version"), i.get("cipher"), i.get("alpn") or "none", res, note))

    def targets_report(self):
        if not self.summaries:
            return
        self.out("")
        self.out("== meshgate against the targets of DESIGN.md section 6 (us/req ratio to "
                 "HAProxy, same run)")
        for sid, goal in TARGET_RATIO.items():
            summ = self.summaries.get(sid)
            if summ is None:
                continue
            s = summ.get("meshgate")
            if s is None:
                self.out("   %-13s target <= %.2f: not measured (skipped)" % (sid, goal))
                continue
            r = s.get("x_haproxy_us_per_req")
            verdict = "met" if r is not None and r <= goal else "MISSED"
            if s["invalid"]:
                verdict = "not judged, row invalid: %s" % "; ".join(s["invalid"])
            p99 = s.get("x_haproxy_p99_ms")
            self.out("   %-13s target <= %.2f: %s -> %s; p99 x%s" % (
                sid, goal, fmt(r, 2), verdict, fmt(p99, 2)))

    def run(self):
        self.nofile = os.sysconf("SC_OPEN_MAX")
        want = int(self.args.idle_conns)
        # HAProxy refuses to start unless its file limit covers two descriptors per
        # connection of maxconn (client and server side), so that bounds the idle test.
        self.idle_n = max(0, min(want, (self.nofile - 200) // 2))
        self.idle_note = ""
        if self.idle_n < want:
            self.idle_note = ("the open files limit is %d (bench/run could not raise it): %d idle "
                              "connections instead of %d, since HAProxy needs 2 descriptors "
                              "per connection" % (self.nofile, self.idle_n, want))
        self.maxconn = self.idle_n + 50
        self.header()
        self.pick_ports()
        self.make_certs()
        self.start_upstream()
        for name in PROXIES:
            self.start_proxy(name)
        for t in self.targets.values():  # every proxy answers 200 before anything else
            status, body = http_get(t.http_port, "/")
            if status != 200 or len(body) != 64:
                raise RuntimeError("%s: GET / answered %d with %d bytes" %
                                   (t.name, status, len(body)))
        sections = (self.args.only.split(",") if self.args.only
                    else ["proxy", "idle", "reload", "scale", "instr"])
        if "proxy" in sections:
            self.tls_report()
            for sc in self.scenarios():
                self.run_scenario(sc)
            self.targets_report()
        if "idle" in sections and self.idle_n > 0:
            self.idle()
        if "reload" in sections:
            self.reload_section()
        if "scale" in sections:
            self.scale()
        if "instr" in sections:
            self.instr()


def main():
    ap = argparse.ArgumentParser(description="meshgate vs nginx vs HAProxy (run via bench/run)")
    ap.add_argument("--meshgate", default=env("MESHGATE", os.path.join(TOP, "meshgate")))
    ap.add_argument("--rounds", default=env("BENCH_ROUNDS", "3"))
    ap.add_argument("--duration", default=env("BENCH_DURATION", "3"))
    ap.add_argument("--warmup", default=env("BENCH_WARMUP", "1"))
    ap.add_argument("--conns", default=env("BENCH_CONNS", "32"))
    ap.add_argument("--hs-conns", default=env("BENCH_HS_CONNS", "16"))
    ap.add_argument("--idle-conns", default=env("BENCH_IDLE_CONNS", "10000"))
    ap.add_argument("--scale-sizes", default=env("BENCH_SCALE_SIZES", "10 1000 10000"))
    ap.add_argument("--scale-runs", default=env("BENCH_SCALE_RUNS", "1"))
    ap.add_argument("--scenarios", default=env("BENCH_SCENARIOS", ""),
                    help="comma list of h1,h1-16k,https,handshake,handshake-py,h2")
    ap.add_argument("--only", default=env("BENCH_ONLY", ""),
                    help="comma list of sections: proxy,idle,reload,scale,instr")
    ap.add_argument("--reloads", default=env("BENCH_RELOADS", "10"))
    ap.add_argument("--reload-rate", default=env("BENCH_RELOAD_RATE", "5000"))
    ap.add_argument("--reload-conns", default=env("BENCH_RELOAD_CONNS", "50"))
    ap.add_argument("--instr-requests", default=env("BENCH_INSTR_REQUESTS", "3000"))
    ap.add_argument("--instr-h2-requests", default=env("BENCH_INSTR_H2_REQUESTS", "20000"))
    ap.add_argument("--port-base", default=env("BENCH_PORT_BASE", ""))
    ap.add_argument("--results", default=env("BENCH_RESULTS", ""))
    ap.add_argument("--keep", action="store_true", default=bool(os.environ.get("BENCH_KEEP")))
    args = ap.parse_args()

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    b = Bench(args)
    status = 0
    t0 = time.monotonic()
    try:
        b.run()
    except Interrupted as e:
        b.out("")
        b.out("bench: interrupted (%s): partial results" % e)
        status = 130
    except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
        b.out("")
        b.out("bench: error: %s" % e)
        status = 1
    except Exception:
        b.out("")
        b.out("bench: internal error:\n" + traceback.format_exc())
        status = 1
    finally:
        b.cleanup()
        b.out("")
        b.out("bench: %.0f s; load average at the end %.1f" % (time.monotonic() - t0,
                                                              os.getloadavg()[0]))
        b.record("end", seconds=round(time.monotonic() - t0, 1), status=status,
                 loadavg=os.getloadavg()[0])
        b.jsonl.close()
        with open(b.txt_path, "w") as f:
            f.write("\n".join(b.report) + "\n")
        print("bench: results in %s (and .txt)" % os.path.relpath(b.jsonl_path))
    return status


if __name__ == "__main__":
    sys.exit(main())
