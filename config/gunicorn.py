"""gunicorn's settings for every environment (`gunicorn config.wsgi -c config/gunicorn.py`; the Procfile uses it).

Built to fail fast past capacity rather than queue: threaded workers (gthread) with more threads than the load
shedding lets work at once (``MAX_CONCURRENT_REQUESTS``, config/middleware.py), so that a spare thread answers a
request beyond capacity with 503 within a fraction of a second instead of leaving it in a queue until its client
times out. A sync worker cannot: while it serves one request the next wait unseen in the kernel's backlog.

Read from the environment (the README's Configuration; sizing in its "Sizing the web processes"):
``WEB_CONCURRENCY`` processes (gunicorn reads the same name), ``WEB_THREADS`` threads each, ``WEB_TIMEOUT``,
``WEB_BIND``, ``WEB_ACCESS_LOG``.
"""

import os
import sys


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


# The same variable and default (on PostgreSQL) as config/settings/base.py, which the middleware reads.
_slots = _int("MAX_CONCURRENT_REQUESTS", 2)

bind = os.environ.get("WEB_BIND") or f"127.0.0.1:{os.environ.get('HANDOVER_PORT') or 8000}"
worker_class = "gthread"
workers = _int("WEB_CONCURRENCY", 2)
# Per process: the slots' requests run, as many wait a moment for a slot, and the threads beyond those only say no
# (503) while the others are busy: cheap, and they keep the answer to an overloaded request under a second. Each
# thread that ran a request keeps its own database connection (CONN_MAX_AGE), so PostgreSQL sees up to
# workers x threads connections.
threads = _int("WEB_THREADS", 4 * _slots if _slots else 8)
if _slots and threads <= 2 * _slots:
    print(
        f"config/gunicorn.py: WEB_THREADS={threads} leaves no thread to refuse with; set it above {2 * _slots}.",
        file=sys.stderr,
    )
# Connections a process holds at once (idle keep-alive ones included). Beyond it, new ones wait in the kernel.
worker_connections = 200
# Listen queue: a short burst waits for the accept loop; it is not where overload should queue.
backlog = 128
# With gthread the timeout watches the process (its main loop), not a single request: a worker stuck that long is
# killed and replaced. Requests themselves stay short because nothing waits for a slot longer than
# REQUEST_QUEUE_TIMEOUT.
timeout = _int("WEB_TIMEOUT", 30)
# On SIGTERM (a deploy, honcho's Ctrl-C) requests under way get this long to finish (honcho itself waits 5 s).
graceful_timeout = 5
# Behind a reverse proxy that keeps connections open to the app; idle ones cost a poller slot, not a thread.
keepalive = 5
# A process is replaced after about this many requests, the restarts spread by the jitter: slow memory growth
# (caches, fragmentation) never accumulates, and never in every process at once.
max_requests = 5000
max_requests_jitter = 500
# The heartbeat file on tmpfs, where a slow disk cannot stall it into a false timeout.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
# No control socket (gunicornc, nothing here uses it): every gunicorn on a machine would share its one default path
# under $HOME, make run's, the tests' and the load benchmark's alike.
control_socket_disable = True
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None
errorlog = "-"
capture_output = False


def on_starting(server) -> None:
    server.log.info(
        "Serving with %s process(es) x %s threads, %s request(s) at once per process",
        workers,
        threads,
        _slots or "unlimited",
    )


def post_fork(server, worker) -> None:
    # A thread that only has to say no (or to read a reply from PostgreSQL) waits for the interpreter lock while
    # the threads rendering pages hold it; Python hands it over every 5 ms by default. Every 1 ms here: measured
    # with the load benchmark on two cores, the refusals' p99 under overload halved (docs/benchmarks.md).
    sys.setswitchinterval(0.001)
