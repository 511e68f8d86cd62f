"""gunicorn settings: `gunicorn -c api/gunicorn.conf.py 'api.app:create_app()'`.

Every value can be overridden by the environment variables named below.
"""

import multiprocessing
import os
import tempfile

bind = os.environ.get("JIFEN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("JIFEN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("JIFEN_THREADS", "1"))
timeout = 30
graceful_timeout = 20
"""On SIGTERM a worker finishes its requests (up to this many seconds) before exiting."""
keepalive = 5
max_requests = 10_000
max_requests_jitter = 1_000
accesslog = None
errorlog = "-"
loglevel = os.environ.get("JIFEN_LOG_LEVEL", "info").lower()
control_socket_disable = True
"""gunicorn's control socket is one path per user (~/.gunicorn/gunicorn.ctl): a second server
on the machine (tests, a benchmark beside `make run`) would take it over. Nothing here uses it."""

# Prometheus counters of all workers are summed through files in this folder.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="jifen-metrics-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
