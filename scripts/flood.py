#!/usr/bin/env python3
"""Connection floods against the real presenced binary (issue #13, "Hardening").

Not part of the test suite (tests/api/connections.rs has small bounded
versions); the figures go into BENCHMARKS.md by hand. Python 3.11 standard
library only. Run it through scripts/flood.sh, which builds the release
binary and raises the open-file limit first.

Every scenario gets a fresh server: `presenced serve --listen 127.0.0.1:0`
(a free port, read from its first line) on a new temporary data dir, with
short timeouts (`--header-timeout PT5S --idle-timeout PT10S`) unless
`--default-timeouts` is given. The script stops each server by the pid it
started (SIGTERM, then SIGKILL after 15 s).

Per scenario:
1. mint a delegated token with `presenced token` from the server's data dir;
   note the server's RSS (VmRSS in /proc/PID/status) and open files;
2. open the flood (N connections, at most 256 connecting at once) and wait
   until every slot has connected once;
3. for `--window` seconds the flood holds: a slot whose connection the
   server closes opens a new one (after `--reconnect-delay`), as an attacker
   would. Meanwhile a well-behaved client, in its own process so the flood's
   event loop does not delay it, sends authenticated
   `GET /v1.0/me/presence` requests: one worker on a keep-alive connection,
   one on a new connection per request, each pausing `--client-interval`
   between requests, each request allowed 5 s;
4. the flood stops reconnecting; the script waits for the server to close
   what is left (up to the scenario's timeout + 10 s) and reports how long
   each flood connection lived from its start (connect, first byte, or end
   of its one response) to the server closing it, against the timeout;
5. RSS and open files are sampled every 100 ms throughout; "after" is read
   2 s after the drain. The server's stderr is kept and its WARN lines
   counted.

All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field

TENANT = "8f2b7e1c-0d5a-4a3b-9a57-2b5c3f2e9d10"
APP = "22553876-f5ab-4529-bffb-cfe50aa89f87"
HOST = "127.0.0.1"
REQUEST_TIMEOUT = 5.0
CONNECT_CONCURRENCY = 256


# --------------------------------------------------------------------------
# The server under test


class Server:
    """One `presenced serve` child process on a fresh data dir."""

    def __init__(self, binary: str, args: list[str], nofile: int | None, workdir: str, name: str):
        self.data_dir = tempfile.mkdtemp(prefix=f"{name}-", dir=workdir)
        self.log_path = os.path.join(workdir, f"{name}.log")
        self.binary = binary
        env = {k: v for k, v in os.environ.items() if k not in ("PRESENCED_JWT_SECRET", "RUST_LOG")}

        def limit_files() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"{HOST}:0", "--data-dir", self.data_dir, *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
            preexec_fn=limit_files,
        )
        self.pid = self.proc.pid
        line = self.proc.stdout.readline().decode().strip()
        m = re.fullmatch(r"presenced listening on http://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.stop()
            raise RuntimeError(f"unexpected first line {line!r}; see {self.log_path}")
        self.port = int(m.group(1))
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def token(self, user: str) -> str:
        out = subprocess.run(
            [self.binary, "token", "--data-dir", self.data_dir, "--tenant", TENANT,
             "--user", user, "--app", APP, "--scopes", "Presence.ReadWrite Presence.Read.All"],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def rss_kib(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def open_files(self) -> int | None:
        try:
            return len(os.listdir(f"/proc/{self.pid}/fd"))
        except OSError:
            return None

    def warnings(self) -> dict[str, int]:
        """WARN/ERROR lines of the server's log, counted by message."""
        counts: dict[str, int] = {}
        with open(self.log_path, errors="replace") as f:
            for line in f:
                m = re.search(r"\b(WARN|ERROR)\s+\S+:\s+(.*?)(\s+\w+=.*)?$", line)
                if m:
                    key = f"{m.group(1)} {m.group(2)}"
                    counts[key] = counts.get(key, 0) + 1
        return counts

    def stop(self) -> None:
        """SIGTERM to the pid we started; SIGKILL if it is still there after 15 s."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


class Sampler(threading.Thread):
    """Samples the server's RSS and open files every 100 ms."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server = server
        self.stop_flag = threading.Event()
        self.peak_rss = 0
        self.peak_files = 0

    def run(self) -> None:
        while not self.stop_flag.is_set():
            rss, files = self.server.rss_kib(), self.server.open_files()
            self.peak_rss = max(self.peak_rss, rss or 0)
            self.peak_files = max(self.peak_files, files or 0)
            time.sleep(0.1)


# --------------------------------------------------------------------------
# HTTP/1.1 on raw streams


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """Reads one response (Content-Length or chunked); returns (status, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            body += chunk[:-2]
            if size == 0:
                break
    else:
        body = b""
    return status, body


def presence_request(token: str, close: bool) -> bytes:
    return (
        f"GET /v1.0/me/presence HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    ).encode()


def close_quietly(writer: asyncio.StreamWriter | None) -> None:
    if writer is not None:
        try:
            writer.transport.abort()
        except Exception:
            pass


# --------------------------------------------------------------------------
# The well-behaved client (its own process)


async def good_client(port: int, token: str, duration: float, interval: float) -> list[tuple]:
    """Two workers for `duration` s; returns (mode, ok, ms, what) per request."""
    results: list[tuple] = []
    until = time.monotonic() + duration

    async def keep_alive() -> None:
        reader = writer = None
        while time.monotonic() < until:
            t = time.perf_counter()
            what = ""
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    for attempt in (1, 2):
                        reused = writer is not None
                        if writer is None:
                            reader, writer = await asyncio.open_connection(HOST, port)
                        try:
                            writer.write(presence_request(token, close=False))
                            await writer.drain()
                            status, _ = await read_response(reader)
                            break
                        except (ConnectionError, asyncio.IncompleteReadError):
                            # A keep-alive connection the server closed
                            # between two requests: retried once on a new
                            # one, as HTTP clients do (counted as "retried").
                            close_quietly(writer)
                            reader = writer = None
                            if not reused or attempt == 2:
                                raise
                            what = "+retried"
                ms = (time.perf_counter() - t) * 1e3
                results.append(("keep-alive", status == 200, ms, f"{status}{what}"))
                if status != 200:
                    close_quietly(writer)
                    reader = writer = None
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                close_quietly(writer)
                reader = writer = None
                results.append(("keep-alive", False, (time.perf_counter() - t) * 1e3, type(e).__name__))
            await asyncio.sleep(interval)
        close_quietly(writer)

    async def new_connection() -> None:
        while time.monotonic() < until:
            t = time.perf_counter()
            writer = None
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    reader, writer = await asyncio.open_connection(HOST, port)
                    writer.write(presence_request(token, close=True))
                    await writer.drain()
                    status, _ = await read_response(reader)
                results.append(("new-conn", status == 200, (time.perf_counter() - t) * 1e3, str(status)))
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
                results.append(("new-conn", False, (time.perf_counter() - t) * 1e3, type(e).__name__))
            close_quietly(writer)
            await asyncio.sleep(interval)

    await asyncio.gather(keep_alive(), new_connection())
    return results


def good_client_process(port: int, token: str, duration: float, interval: float, conn) -> None:
    conn.send(asyncio.run(good_client(port, token, duration, interval)))
    conn.close()


# --------------------------------------------------------------------------
# The flood


@dataclass
class Record:
    """One flood connection."""

    started: float  # when its timeout clock starts (monotonic)
    closed: float | None = None  # when the server closed it
    how: str = ""  # eof, reset, a status code, closed-unserved, or still-open
    sent: int = 0  # bytes of head sent


@dataclass
class Flood:
    kind: str  # silent | slowloris | idle | heads
    n: int
    port: int
    line_interval: float = 2.0
    head_bytes: int = 390_000
    reconnect_delay: float = 0.5
    holding: bool = True
    records: list[Record] = field(default_factory=list)
    connect_failures: dict[str, int] = field(default_factory=dict)
    first_round: int = 0
    open_now: int = 0

    async def run_slot(self, gate: asyncio.Semaphore, ramped: asyncio.Event) -> None:
        def established() -> None:
            self.first_round += 1
            if self.first_round == self.n:
                ramped.set()

        first: list = [established]
        while first or self.holding:
            await self.one(gate, first)
            if self.holding:
                await asyncio.sleep(self.reconnect_delay)

    async def one(self, gate: asyncio.Semaphore, first: list) -> None:
        """One connection; calls and empties `first` once it is established
        (for the idle flood: once its request is answered) or has failed."""

        def established() -> None:
            while first:
                first.pop()()

        async with gate:
            try:
                async with asyncio.timeout(10):
                    reader, writer = await asyncio.open_connection(HOST, self.port)
            except (OSError, TimeoutError) as e:
                name = getattr(e, "strerror", None) or type(e).__name__
                self.connect_failures[name] = self.connect_failures.get(name, 0) + 1
                established()
                return
        self.open_now += 1
        rec = Record(started=time.monotonic())
        self.records.append(rec)
        reading = None
        try:
            if self.kind == "idle":
                ok = await self.served(reader, writer, rec)
                established()
                if not ok:
                    return
                rec.started = time.monotonic()  # the idle clock starts now
            else:
                established()
            reading = asyncio.create_task(self.wait_closed(reader, rec))
            write_failed = False
            try:
                if self.kind == "slowloris":
                    await self.trickle(writer, rec, reading)
                elif self.kind == "heads":
                    await self.big_head(writer, rec, reading)
            except OSError:
                write_failed = True  # the server closed it while we wrote
            try:
                await asyncio.wait_for(asyncio.shield(reading), 5 if write_failed else None)
            except TimeoutError:
                rec.closed, rec.how = time.monotonic(), "write-failed"
        except asyncio.CancelledError:
            rec.how = "still-open"
            raise
        finally:
            if reading is not None:
                reading.cancel()
            self.open_now -= 1
            close_quietly(writer)

    async def wait_closed(self, reader: asyncio.StreamReader, rec: Record) -> None:
        """Reads until the server closes; notes a response if one comes."""
        try:
            while True:
                data = await reader.read(65536)
                if data.startswith(b"HTTP/1.1 "):
                    rec.how = data[9:12].decode()
                if not data:
                    rec.how = rec.how or "eof"
                    break
        except ConnectionError:
            rec.how = rec.how or "reset"
        rec.closed = time.monotonic()

    async def served(self, reader, writer, rec) -> bool:
        """One complete request (idle flood); False if closed before its answer."""
        try:
            writer.write(f"GET /_presenced/healthz HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            await writer.drain()
            status, _ = await read_response(reader)
        except (OSError, asyncio.IncompleteReadError):
            # Closed before it was served (evicted at the cap).
            rec.closed, rec.how = time.monotonic(), "closed-unserved"
            return False
        if status != 200:
            rec.how = str(status)
        return True

    async def trickle(self, writer, rec, reading) -> None:
        """Slowloris: a request line, then one header line per interval."""
        writer.write(f"GET /v1.0/me/presence HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        await writer.drain()
        rec.started = time.monotonic()
        rec.sent = 1
        k = 0
        while not reading.done():
            done, _ = await asyncio.wait({reading}, timeout=self.line_interval)
            if done:
                return
            k += 1
            writer.write(f"X-Slow-{k}: {k}\r\n".encode())
            await writer.drain()

    async def big_head(self, writer, rec, reading) -> None:
        """`head_bytes` of header lines as fast as the server takes them,
        never the blank line that would end the head."""
        writer.write(f"GET /v1.0/me/presence HTTP/1.1\r\nHost: {HOST}\r\n".encode())
        rec.started = time.monotonic()
        line = "X-Pad-{}: " + "a" * 1000 + "\r\n"
        k = 0
        while rec.sent < self.head_bytes and not reading.done():
            chunk = "".join(line.format(k + i) for i in range(16))
            k += 16
            data = chunk.encode()[: self.head_bytes - rec.sent]
            writer.write(data)
            await writer.drain()
            rec.sent += len(data)


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


# --------------------------------------------------------------------------
# Scenarios


@dataclass
class Scenario:
    name: str
    flood: str | None  # Flood.kind, or None for the baseline
    n: int = 0
    server_args: list[str] = field(default_factory=list)
    nofile: int | None = None
    head_bytes: int = 390_000
    note: str = ""


def scenarios(scale: float, line_interval: float) -> list[Scenario]:
    def n(x: int) -> int:
        return max(1, int(x * scale))

    return [
        Scenario("baseline", None, note="no flood"),
        Scenario("slowloris", "slowloris", n(1000), note=f"1 header line / {line_interval:g} s, never finished"),
        Scenario("silent", "silent", n(2000), note="connect, send nothing"),
        Scenario("idle", "idle", n(1000), note="1 request each, then idle keep-alive"),
        Scenario("heads-390k", "heads", n(2000), head_bytes=390_000, note="390 KB of headers, never finished"),
        Scenario("heads-120k", "heads", n(2000), head_bytes=120_000,
                 note="120 KB of headers (under hyper's 128 KiB buffer), then stall"),
        Scenario("cap256-idle", "idle", n(2000), server_args=["--max-connections", "256"],
                 note="--max-connections 256, 2000 idle keep-alive"),
        Scenario("nofile1024-idle", "idle", n(2000), nofile=1024,
                 note="ulimit -n 1024 (soft=hard, cap 896), 2000 idle keep-alive"),
    ]


def run_scenario(sc: Scenario, opts, workdir: str) -> dict:
    timeout_args = [] if opts.default_timeouts else [
        "--header-timeout", f"PT{opts.header_timeout}S", "--idle-timeout", f"PT{opts.idle_timeout}S"]
    header_t = 10 if opts.default_timeouts else opts.header_timeout
    idle_t = 60 if opts.default_timeouts else opts.idle_timeout
    server = Server(opts.bin, timeout_args + sc.server_args, sc.nofile, workdir, sc.name)
    try:
        user = str(uuid.uuid4())
        token = server.token(user)
        # Warm up: a few requests so "before" includes a served request.
        asyncio.run(good_client(server.port, token, 0.5, 0.01))
        time.sleep(0.5)
        rss_before, files_before = server.rss_kib(), server.open_files()
        sampler = Sampler(server)
        sampler.start()
        window = opts.window if not opts.default_timeouts else max(opts.window, idle_t + 15)
        if sc.flood is None:
            proc, pipe = spawn_good_client(server.port, token, window, opts.client_interval)
            good = pipe.recv()
            proc.join()
            flood = None
            ramp = drain = 0.0
        else:
            flood = Flood(sc.flood, sc.n, server.port, line_interval=opts.line_interval,
                          head_bytes=sc.head_bytes, reconnect_delay=opts.reconnect_delay)
            good, ramp, drain = asyncio.run(
                hold(flood, server, token, window, opts, header_t, idle_t))
        time.sleep(2)
        sampler.stop_flag.set()
        sampler.join()
        rss_after, files_after = server.rss_kib(), server.open_files()
        alive = server.proc.poll() is None
    finally:
        server.stop()
    warnings = server.warnings()
    result = {
        "scenario": sc, "good": good, "flood": flood, "ramp": ramp, "drain": drain,
        "rss": (rss_before, sampler.peak_rss, rss_after),
        "files": (files_before, sampler.peak_files, files_after),
        "warnings": warnings, "alive": alive, "header_t": header_t, "idle_t": idle_t,
        "window": window, "log": server.log_path,
    }
    return result


def spawn_good_client(port: int, token: str, duration: float, interval: float):
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=good_client_process, args=(port, token, duration, interval, child))
    p.start()
    return p, parent


async def hold(flood: Flood, server: Server, token: str, window: float, opts, header_t, idle_t):
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    ramped = asyncio.Event()
    t0 = time.monotonic()
    slots = [asyncio.create_task(flood.run_slot(gate, ramped)) for _ in range(flood.n)]
    try:
        await asyncio.wait_for(ramped.wait(), 60)
    except TimeoutError:
        pass
    ramp = time.monotonic() - t0

    async def progress() -> None:
        while True:
            rss = server.rss_kib()
            print(f"  t={time.monotonic() - t0:5.1f} s  flood open {flood.open_now:5d}  "
                  f"server files {server.open_files()}  RSS {rss and rss // 1024} MiB", flush=True)
            await asyncio.sleep(5)

    ticker = asyncio.create_task(progress())
    proc, pipe = spawn_good_client(server.port, token, window, opts.client_interval)
    loop = asyncio.get_running_loop()
    good = await loop.run_in_executor(None, pipe.recv)
    await loop.run_in_executor(None, proc.join)
    # Stop reconnecting; give the server its timeout (+10 s) to close the rest.
    flood.holding = False
    limit = (idle_t if flood.kind == "idle" else header_t) + 10
    t1 = time.monotonic()
    _, pending = await asyncio.wait(slots, timeout=limit)
    drain = time.monotonic() - t1
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    ticker.cancel()
    return good, ramp, drain


# --------------------------------------------------------------------------
# Report


def fmt_ms(x: float | None) -> str:
    return "–" if x is None else (f"{x:.1f}" if x < 100 else f"{x:.0f}")


def summarize(r: dict) -> dict:
    sc, flood = r["scenario"], r["flood"]
    good = r["good"]
    lat = [ms for (_, ok, ms, _) in good if ok]
    fails: dict[str, int] = {}
    for mode, ok, _, what in good:
        if not ok:
            key = f"{mode}:{what}"
            fails[key] = fails.get(key, 0) + 1
    by_mode = {}
    for mode in ("keep-alive", "new-conn"):
        rows = [g for g in good if g[0] == mode]
        oks = [g[2] for g in rows if g[1]]
        retried = sum(1 for g in rows if g[3].endswith("+retried"))
        by_mode[mode] = (len(oks), len(rows), pct(oks, 50), pct(oks, 99), retried)
    s = {
        "name": sc.name, "note": sc.note, "n": sc.n,
        "ok": sum(1 for g in good if g[1]), "sent": len(good),
        "p50": pct(lat, 50), "p99": pct(lat, 99), "max": max(lat) if lat else None,
        "fails": fails, "by_mode": by_mode,
    }
    if flood is not None:
        timeout = r["idle_t"] if flood.kind == "idle" else r["header_t"]
        closed = [x for x in flood.records if x.closed is not None]
        lifetimes = [x.closed - x.started for x in closed]
        hows: dict[str, int] = {}
        for x in flood.records:
            hows[x.how or "?"] = hows.get(x.how or "?", 0) + 1
        s.update(
            opened=len(flood.records), timeout=timeout,
            life_p50=pct(lifetimes, 50), life_max=max(lifetimes) if lifetimes else None,
            still_open=sum(1 for x in flood.records if x.closed is None),
            hows=hows, connect_failures=flood.connect_failures, ramp=r["ramp"], drain=r["drain"],
        )
    return s


def report(results: list[dict], opts) -> None:
    print()
    print(f"flood.py: {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, "
          f"{'default timeouts (PT10S/PT60S)' if opts.default_timeouts else f'--header-timeout PT{opts.header_timeout}S --idle-timeout PT{opts.idle_timeout}S'}, "
          f"window {results[0]['window']:.0f} s, client pause {opts.client_interval * 1e3:.0f} ms")
    print()
    print("| scenario | flood | conns opened | good client ok / sent | p50 ms | p99 ms | max ms "
          "| flood conn lifetime p50 / max (timeout) | left open | server files before / peak / after "
          "| RSS MiB before / peak / after | server WARN/ERROR |")
    print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|")
    for r in results:
        s = summarize(r)
        rss = " / ".join("–" if v is None else f"{v / 1024:.0f}" for v in r["rss"])
        files = " / ".join("–" if v is None else str(v) for v in r["files"])
        warn = "; ".join(f"{k} ×{v}" for k, v in r["warnings"].items()) or "none"
        if not r["alive"]:
            warn += " (SERVER DIED)"
        if "opened" in s:
            life = f"{s['life_p50']:.1f} / {s['life_max']:.1f} s ({s['timeout']} s)" if s["life_max"] is not None else "–"
            opened, left = str(s["opened"]), str(s["still_open"])
        else:
            life, opened, left = "–", "–", "–"
        print(f"| {s['name']} | {s['note']} | {opened} | {s['ok']} / {s['sent']} | {fmt_ms(s['p50'])} "
              f"| {fmt_ms(s['p99'])} | {fmt_ms(s['max'])} | {life} | {left} | {files} | {rss} | {warn} |")
    print()
    for r in results:
        s = summarize(r)
        print(f"{s['name']}:")
        for mode, (ok, sent, p50, p99, retried) in s["by_mode"].items():
            again = f", {retried} on a new connection after the server closed the old one" if retried else ""
            print(f"  good client {mode}: {ok}/{sent} ok, p50 {fmt_ms(p50)} ms, p99 {fmt_ms(p99)} ms{again}")
        if s["fails"]:
            print(f"  good client failures: {s['fails']}")
        if "opened" in s:
            print(f"  flood: {s['n']} slots, ramp {s['ramp']:.1f} s, drain {s['drain']:.1f} s, "
                  f"ended by {s['hows']}, connect failures {s['connect_failures'] or 'none'}")
        print(f"  server log: {r['log']}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/presenced")
    ap.add_argument("--only", help="comma-separated scenario names")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every flood size (e.g. 0.1 to try it out)")
    ap.add_argument("--header-timeout", type=int, default=5, help="seconds (default 5)")
    ap.add_argument("--idle-timeout", type=int, default=10, help="seconds (default 10)")
    ap.add_argument("--default-timeouts", action="store_true",
                    help="run the server with its defaults (PT10S/PT60S); the window grows to 75 s "
                         "and slowloris sends a line every 10 s")
    ap.add_argument("--window", type=float, default=15.0, help="seconds the flood holds while the client measures")
    ap.add_argument("--line-interval", type=float, default=None, help="slowloris seconds per header line (2, or 10 with --default-timeouts)")
    ap.add_argument("--reconnect-delay", type=float, default=0.5)
    ap.add_argument("--client-interval", type=float, default=0.01, help="pause between a worker's requests (s)")
    opts = ap.parse_args()
    if opts.line_interval is None:
        opts.line_interval = 10.0 if opts.default_timeouts else 2.0

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    need = int(2000 * opts.scale) + 200
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
        print(f"flood.py: the open-file limit {hard} is below the {need} the flood needs", file=sys.stderr)
        return 2

    chosen = scenarios(opts.scale, opts.line_interval)
    if opts.only:
        names = opts.only.split(",")
        unknown = set(names) - {s.name for s in chosen}
        if unknown:
            print(f"flood.py: unknown scenario(s) {sorted(unknown)}", file=sys.stderr)
            return 2
        chosen = [s for s in chosen if s.name in names]

    workdir = tempfile.mkdtemp(prefix="presenced-flood-")
    print(f"flood.py: server logs and data in {workdir}")
    results = []
    for sc in chosen:
        print(f"flood.py: {sc.name} ({sc.note}) ...", flush=True)
        t = time.monotonic()
        r = run_scenario(sc, opts, workdir)
        print(f"flood.py: {sc.name} took {time.monotonic() - t:.0f} s", flush=True)
        results.append(r)
    report(results, opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
