"""The Message Batches endpoints on the loopback fake of tests/fake_api.py, answering each
batched request with the same rules and default replies as an ordinary request:

    POST /v1/messages/batches               create: {"requests": [{custom_id, params}, ...]}
    GET  /v1/messages/batches/{id}          status, request_counts; results_url once ended
    GET  /v1/messages/batches/{id}/results  JSONL: {custom_id, result: {type, message | error}}

A batch ends at its first poll, unless `hold_batches` was set when it was created: then it stays
in_progress until `release_batches()` (a test interrupts a run mid-batch). `batch_faults` makes
the next requests' results errored (overloaded), refused (invalid_request_error), expired or
canceled. Every batch and request is kept, with the API key of each poll, so a test counts what
was paid and sees who waited for a batch.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fake_api import ERROR_TYPES, FakeMessagesAPI, _APIError, _Raw, _validate

BATCH_FAULTS = ("errored", "refused", "expired", "canceled")
_CUSTOM_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class FakeBatch:
    """One batch as the fake keeps it: the requests paid for, and what became of them."""

    id: str
    requests: list[dict[str, Any]]  # {"custom_id", "params"}, as sent
    held: bool
    created_at: str
    faults: list[str | None] = field(default_factory=list)  # one per request
    results: list[dict[str, Any]] | None = None  # the JSONL lines, once ended
    ended_at: str | None = None
    polls: list[str] = field(default_factory=list)  # the API key of each poll of its status

    @property
    def ended(self) -> bool:
        return self.results is not None


class FakeBatchesAPI(FakeMessagesAPI):
    """FakeMessagesAPI with the Message Batches endpoints."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batches: dict[str, FakeBatch] = {}
        self.hold_batches = False
        self.batch_faults: deque[str] = deque()
        self._batch_changed = threading.Condition(self._lock)
        self._ending = threading.Lock()

    # ---- what a test reads -------------------------------------------------------------------

    @property
    def batch_requests(self) -> list[dict[str, Any]]:
        """Every request sent in a batch, in order: {"batch", "custom_id", "params"}."""
        with self._lock:
            return [{"batch": b.id, **r} for b in self.batches.values() for r in b.requests]

    @property
    def message_calls(self) -> int:
        """Ordinary Messages requests answered (POST /v1/messages with a 200)."""
        with self._lock:
            return sum(
                1
                for r in self._records
                if r["status"] == 200 and r["path"].split("?")[0].rstrip("/") == "/v1/messages"
            )

    def wait_batches(
        self, check: Callable[[list[FakeBatch]], bool], timeout: float = 120.0
    ) -> bool:
        """Block until `check(batches)` holds (called at each create, poll and results read;
        it must not call the fake's other methods), or give up (False)."""
        with self._batch_changed:
            return self._batch_changed.wait_for(lambda: check(list(self.batches.values())), timeout)

    def release_batches(self) -> None:
        """Let every held batch end at its next poll."""
        with self._batch_changed:
            for batch in self.batches.values():
                batch.held = False
            self._batch_changed.notify_all()

    # ---- routing -----------------------------------------------------------------------------

    def _process(
        self, method: str, path: str, headers: dict[str, str], body: Any, parse_error: bool
    ) -> Any:
        route = path.split("?", 1)[0].rstrip("/")
        if not route.startswith("/v1/messages/batches"):
            return super()._process(method, path, headers, body, parse_error)
        _authorize(headers)
        parts = route.removeprefix("/v1/messages/batches").strip("/").split("/")
        if parts == [""]:
            if method != "POST":
                raise _APIError(405, f"Method {method} not allowed")
            if parse_error or not isinstance(body, dict):
                raise _APIError(400, "There was an error parsing the body of your request as JSON")
            return self._create(body)
        if method != "GET":
            raise _APIError(405, f"Method {method} not allowed")
        if len(parts) == 1:
            return self._retrieve(parts[0], _key(headers))
        if len(parts) == 2 and parts[1] == "results":
            return self._results(parts[0])
        raise _APIError(404, f"Not found: {method} {path}")

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        requests = body.get("requests")
        if set(body) != {"requests"} or not isinstance(requests, list) or not requests:
            raise _APIError(400, "requests: a non-empty list of requests is required")
        seen: set[str] = set()
        for i, request in enumerate(requests):
            if not isinstance(request, dict) or set(request) != {"custom_id", "params"}:
                raise _APIError(400, f"requests.{i}: custom_id and params are required")
            custom_id = request["custom_id"]
            if not isinstance(custom_id, str) or not _CUSTOM_ID.fullmatch(custom_id):
                raise _APIError(400, f"requests.{i}.custom_id: 1-64 of [A-Za-z0-9_-]")
            if custom_id in seen:
                raise _APIError(400, f"requests.{i}.custom_id: {custom_id} is not unique")
            seen.add(custom_id)
            if not isinstance(request["params"], dict):
                raise _APIError(400, f"requests.{i}.params: Input should be an object")
        with self._batch_changed:
            faults = [self.batch_faults.popleft() if self.batch_faults else None for _ in requests]
            batch = FakeBatch(
                f"msgbatch_fake{uuid.uuid4().hex[:20]}", requests, self.hold_batches, _now(), faults
            )
            self.batches[batch.id] = batch
            self._batch_changed.notify_all()
        return self._shown(batch)

    def _retrieve(self, batch_id: str, key: str) -> dict[str, Any]:
        batch = self._find(batch_id)
        if not batch.held:
            self._end(batch)
        with self._batch_changed:
            batch.polls.append(key)
            self._batch_changed.notify_all()
        return self._shown(batch)

    def _results(self, batch_id: str) -> _Raw:
        batch = self._find(batch_id)
        if batch.results is None:
            raise _APIError(400, f"Batch {batch_id} has not ended: no results yet")
        lines = b"".join(json.dumps(line).encode() + b"\n" for line in batch.results)
        with self._batch_changed:
            self._batch_changed.notify_all()
        return _Raw("application/binary", lines)

    def _find(self, batch_id: str) -> FakeBatch:
        with self._lock:
            batch = self.batches.get(batch_id)
        if batch is None:
            raise _APIError(404, f"No batch {batch_id}")
        return batch

    # ---- answers -----------------------------------------------------------------------------

    def _end(self, batch: FakeBatch) -> None:
        """Answer every request of the batch (outside the lock: a rule may block)."""
        with self._ending:
            if batch.ended:
                return
            results = [
                {"custom_id": r["custom_id"], "result": self._answer(r["params"], fault)}
                for r, fault in zip(batch.requests, batch.faults, strict=True)
            ]
            with self._batch_changed:
                batch.results, batch.ended_at = results, _now()
                self._batch_changed.notify_all()

    def _answer(self, params: dict[str, Any], fault: str | None) -> dict[str, Any]:
        if fault in ("expired", "canceled"):
            return {"type": fault}
        if fault == "errored":
            return _errored(529, "Overloaded (injected by the fake)")
        if fault == "refused":
            return _errored(400, "prompt is too long: 250000 tokens > 200000 maximum (injected)")
        try:
            if "stream" in params:
                raise _APIError(400, "stream: not allowed in a batch request")
            _validate(params)
            return {"type": "succeeded", "message": self._reply(params)}
        except _APIError as err:
            return _errored(err.status, err.message)

    def _shown(self, batch: FakeBatch) -> dict[str, Any]:
        """The batch as the API shows it: counts stay `processing` until the whole batch ends."""
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if batch.results is None:
            counts["processing"] = len(batch.requests)
        else:
            for line in batch.results:
                counts[line["result"]["type"]] += 1
        created = datetime.fromisoformat(batch.created_at)
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": "ended" if batch.ended else "in_progress",
            "request_counts": counts,
            "created_at": batch.created_at,
            "expires_at": (created + timedelta(hours=24)).isoformat(),
            "ended_at": batch.ended_at,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": (
                f"{self.base_url}/v1/messages/batches/{batch.id}/results" if batch.ended else None
            ),
        }


def _authorize(headers: dict[str, str]) -> None:
    bearer = headers.get("authorization", "")
    if not headers.get("x-api-key") and not bearer.lower().startswith("bearer "):
        raise _APIError(401, "x-api-key header is required")
    if not headers.get("anthropic-version"):
        raise _APIError(400, "anthropic-version: header is required")


def _key(headers: dict[str, str]) -> str:
    """The API key a request carries (the SDK sends it as a bearer token, or as x-api-key)."""
    bearer = headers.get("authorization", "")
    return headers.get("x-api-key") or bearer.removeprefix("Bearer ").removeprefix("bearer ")


def _errored(status: int, message: str) -> dict[str, Any]:
    error = {"type": ERROR_TYPES.get(status, "api_error"), "message": message}
    return {"type": "errored", "error": {"type": "error", "error": error}}


def _now() -> str:
    return datetime.now(UTC).isoformat()
