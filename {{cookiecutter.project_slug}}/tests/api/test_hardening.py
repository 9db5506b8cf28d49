"""What the API refuses and what every answer carries: bounded bodies, short validation
errors, protective headers, the limits on runtime jobs, and an OpenAPI document that declares
every error status an operation can answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app import ENV_PREFIX
from app.components.backend.main import create_app
from app.core.settings import Settings
from tests.api.test_management import AUTH, management_routes

LIMIT = 64 * 1024


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    limited = settings.model_copy(update={"api_max_body_bytes": LIMIT})
    with TestClient(create_app(limited), headers=AUTH) as test_client:
        yield test_client


def every_second(job_id: str, seconds: float = 60) -> dict[str, object]:
    return {
        "id": job_id,
        "name": job_id,
        "function": "cleanup_old_records",
        "schedule": {"kind": "interval", "seconds": seconds},
    }


def test_a_declared_large_body_is_refused_before_the_token_is_checked(
    client: TestClient,
) -> None:
    body = b"{" + b" " * (LIMIT + 1) + b"}"
    response = client.post("/api/jobs", content=body, headers={"Authorization": ""})
    assert response.status_code == 413
    assert response.json() == {
        "detail": f"the request body is larger than {LIMIT} bytes, the most this API accepts"
    }


def test_a_streamed_large_body_is_refused_as_it_arrives(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        # No Content-Length: the limit is counted as the chunks arrive.
        for _ in range(LIMIT // 1024 + 8):
            yield b" " * 1024

    response = client.post("/api/jobs", content=chunks())
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]


def test_a_body_within_the_limit_is_read(client: TestClient) -> None:
    response = client.post("/api/jobs", json=every_second("within_limit"))
    assert response.status_code in (201, 202), response.text


def test_validation_errors_never_echo_the_input(client: TestClient) -> None:
    huge = "x" * (LIMIT // 2)
    response = client.post("/api/jobs", json={**every_second("echo"), "name": huge})
    assert response.status_code == 422
    assert len(response.content) < 2000
    assert huge[:100] not in response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "name"]
    assert set(problem) == {"loc", "msg", "type"}


def test_every_answer_carries_the_protective_headers(client: TestClient) -> None:
    for path in ("/health", "/docs", "/openapi.json", "/api/jobs", "/api/nowhere"):
        response = client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["content-security-policy"] == "frame-ancestors 'none'", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        no_store = response.headers.get("cache-control") == "no-store"
        assert no_store == path.startswith("/api/"), path
    refused = client.post("/api/jobs", content=b" " * (LIMIT + 1))
    assert refused.headers["x-content-type-options"] == "nosniff"


def test_method_not_allowed_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("OPTIONS", "/api/jobs")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert client.request("PATCH", "/api/jobs/x").headers["allow"] == "DELETE, GET"


def test_times_in_input_are_iso_text_not_numbers(client: TestClient) -> None:
    response = client.get("/api/jobs/cleanup_old_records/executions", params={"until": "0.5"})
    assert response.status_code == 422
    assert "ISO 8601" in response.json()["detail"][0]["msg"]
    ok = client.get(
        "/api/jobs/cleanup_old_records/executions", params={"until": "2030-01-01T00:00:00Z"}
    )
    assert ok.status_code == 200


def test_a_runtime_job_may_not_repeat_faster_than_the_setting(client: TestClient) -> None:
    response = client.post("/api/jobs", json=every_second("too_fast", seconds=0.001))
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body", "schedule"]
    assert f"{ENV_PREFIX}RUNTIME_JOB_MIN_INTERVAL_SECONDS allows (1 s)" in problem["msg"]
    reschedule = client.put(
        "/api/jobs/cleanup_old_records/schedule",
        json={"schedule": {"kind": "interval", "seconds": 0.5}},
    )
    assert reschedule.status_code == 422
    assert "RUNTIME_JOB_MIN_INTERVAL_SECONDS" in reschedule.text


def test_runtime_jobs_stop_at_the_most_the_setting_allows(
    settings: Settings, engine: Engine
) -> None:
    capped = settings.model_copy(update={"runtime_jobs_max": 2})
    with TestClient(create_app(capped), headers=AUTH) as client:
        for job_id in ("first", "second"):
            assert client.post("/api/jobs", json=every_second(job_id)).status_code == 202
        response = client.post("/api/jobs", json=every_second("third"))
        assert response.status_code == 422
        [problem] = response.json()["detail"]
        assert problem["msg"] == (
            f"2 runtime jobs are stored, the most {ENV_PREFIX}RUNTIME_JOBS_MAX allows (2): "
            "delete one first"
        )
        assert client.get("/api/jobs/third").status_code == 404


def test_the_openapi_document_declares_every_error_status(settings: Settings) -> None:
    document = create_app(settings).openapi()
    for method, path in management_routes(settings):
        template = next(
            p for p in document["paths"] if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), path)
        )
        declared = set(document["paths"][template][method.lower()]["responses"])
        assert {"401", "403", "413", "503"} <= declared, (method, template)
        operation = document["paths"][template][method.lower()]
        if "requestBody" in operation:
            assert {"400", "422"} <= declared, (method, template)
        if operation.get("parameters"):
            assert "422" in declared, (method, template)


def test_refused_arguments_are_named_short_and_few(client: TestClient) -> None:
    # Keys the function does not take: each is a problem, named after the user's key.
    arguments = {f"key.{i}." + "k" * 1000: i for i in range(50)}
    response = client.post("/api/jobs/cleanup_old_records/run", json={"input": arguments})
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert len(problems) <= 20
    assert len(response.content) < 20 * 1000
    assert problems[0]["loc"][:2] == ["body", "input"]
    assert problems[0]["loc"][2].startswith("key.0.")


def test_concurrent_adds_cannot_pass_the_most_runtime_jobs(
    settings: Settings, engine: Engine
) -> None:
    capped = settings.model_copy(update={"runtime_jobs_max": 3})
    with TestClient(create_app(capped), headers=AUTH) as client:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(
                    lambda i: client.post("/api/jobs", json=every_second(f"racer_{i}")),
                    range(8),
                )
            )
        added = [a for a in answers if a.status_code == 202]
        refused = [a for a in answers if a.status_code == 422]
        assert (len(added), len(refused)) == (3, 5), [a.text for a in answers]
        assert client.get("/api/jobs").json()["total"] == len(registered_ids(client)) + 3


def registered_ids(client: TestClient) -> list[str]:
    return [job["id"] for job in client.get("/api/jobs").json()["items"] if job["origin"] == "code"]


def test_a_cron_schedule_naming_seconds_is_held_to_the_minimum_too(
    settings: Settings, engine: Engine
) -> None:
    slower = settings.model_copy(update={"runtime_job_min_interval_seconds": 10})
    every_five_seconds = {"kind": "cron_fields", "fields": {"second": "*/5"}}
    every_minute = {"kind": "cron", "expression": "* * * * *"}
    with TestClient(create_app(slower), headers=AUTH) as client:
        response = client.post(
            "/api/jobs", json={**every_second("by_seconds"), "schedule": every_five_seconds}
        )
        assert response.status_code == 422, response.text
        [problem] = response.json()["detail"]
        assert problem["msg"].startswith("repeats every 5 s, more often than")
        response = client.post(
            "/api/jobs", json={**every_second("by_minutes"), "schedule": every_minute}
        )
        assert response.status_code == 202, response.text
