"""A fake fal.ai (queue API, signed webhooks, fault injection) for tests and benchmarks.

It speaks the protocol of /work/shared/fal.md §1-§2 as fal-client 1.0.3 uses it, over
HTTPS on 127.0.0.1 with a throwaway trustme CA, so the *real* ``fal_client.SyncClient``
can be pointed at it.

In-process::

    from tests.fakefal import FakeFal

    with FakeFal(queue_seconds=0.2, run_seconds=0.5, max_concurrent=2) as fal:
        fal.host          # "127.0.0.1:PORT"  -> FAL_QUEUE_RUN_HOST
        fal.ca_pem_path   # CA PEM            -> SSL_CERT_FILE
        fal.base_url, fal.jwks_url
        fal.fail_next("submit", 429, times=3)
        fal.configure(faults={"status": {"502": 0.1}}, job_failure_rate=0.05)
        fal.stats(), fal.counters, fal.requests("submit"), fal.webhook_log

As a process (first stdout line is ``127.0.0.1:PORT``)::

    python -m tests.fakefal --port 0 --ca-out /tmp/ca.pem --state-file /tmp/fal.json \\
        --run-seconds 10 --max-concurrent 1000
    # or tests.fakefal.process.FakeFalProcess; control via /_control/* (ControlClient)

Pointing fal_client at it
-------------------------
fal_client reads ``FAL_QUEUE_RUN_HOST`` once, at import (``fal_client.auth``), and bakes
``QUEUE_URL_FORMAT = "https://{host}/"`` into ``fal_client.client``; it always uses https.
So either set the variable before the process imports fal_client (subprocesses:
``fixtures.fal_client_env``), or patch ``fal_client.client.QUEUE_URL_FORMAT``, which
``submit`` and ``SyncRequestHandle.from_request_id`` (status/result/cancel by id) read at
call time (the ``fake_fal`` fixture does both). Handles returned by ``submit`` use the
URLs in the server's answer.

TLS trust: httpx 0.28 honours ``SSL_CERT_FILE`` (``httpx._config.create_ssl_context``
checks it before SSL_CERT_DIR and certifi; ``trust_env`` defaults to True), but only when
an ``httpx.Client`` is created, i.e. on the first use of a ``SyncClient``. The file
then *replaces* the default trust store for that client. All in-process servers share
one CA (``tls.shared_identity``) so a long-lived client keeps trusting new servers.

Job behaviour (per job, decided at submit): prompt markers > ``fail_next("job", ...)`` >
input validation (422 at the result, like fal) > random rates. Markers:
``[fal:content_policy]`` 422 content_policy_violation; ``[fal:runner_error]`` (alias
``[fal:fail]``) COMPLETED with runner_disconnected, result 503; ``[fal:timeout]``
request_timeout, result 504; ``[fal:never]`` stays IN_PROGRESS and holds its slot;
``[fal:slow=S]`` runs S seconds; ``[fal:webhook_duplicate]``, ``[fal:webhook_delay=S]``,
``[fal:webhook_early]`` (webhook before the submit response), ``[fal:webhook_drop]``.
An ``X-Fal-Request-Timeout`` (``start_timeout``) that passes while queued fails the job
(504 with ``X-Fal-Request-Timeout-Type: user``).
"""

from __future__ import annotations

from .config import FakeFalConfig, Fault
from .process import ControlClient, FakeFalProcess
from .routes import RecordedRequest
from .scheduler import Job
from .server import FakeFal
from .webhooks import sign_webhook, verify_webhook

__all__ = [
    "ControlClient",
    "FakeFal",
    "FakeFalConfig",
    "FakeFalProcess",
    "Fault",
    "Job",
    "RecordedRequest",
    "sign_webhook",
    "verify_webhook",
]
