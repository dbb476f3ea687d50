"""``/api/webhooks`` as a client sees it: what is accepted, what is refused and why, and that a
refusal changes nothing; the secret is shown once."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import query_db

HOOK = "http://hooks.example.com/in?token=abc"


def make(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    made = api.post("/api/webhooks", json={"url": HOOK, **fields})
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


def test_a_subscription_is_made_read_changed_and_deleted(api: httpx.Client) -> None:
    project = api.post("/api/projects", json={"name": "hooked"}).json()["id"]
    made = make(api, project_id=project, event_types=["task.failed", "task.*"],
                description="CI")  # fmt: skip
    secret = made.pop("secret")
    assert secret.startswith("whsec_")
    assert made["event_types"] == ["task.*", "task.failed"]
    assert (made["enabled"], made["failures"], made["project_id"]) == (True, 0, project)
    got = api.get(f"/api/webhooks/{made['id']}").json()
    assert "secret" not in got
    # (The dispatcher may have passed over events it does not want meanwhile.)
    assert got["position"] >= made["position"]
    assert {**got, "position": 0} == {**made, "position": 0}
    listed = api.get("/api/webhooks").json()
    assert (listed["total"], [w["id"] for w in listed["webhooks"]]) == (1, [made["id"]])
    assert secret not in str(listed)
    changed = api.put(f"/api/webhooks/{made['id']}", json={"enabled": False,
                                                           "description": None})  # fmt: skip
    assert changed.status_code == 200, changed.text
    assert (changed.json()["enabled"], changed.json()["description"]) == (False, None)
    assert changed.json()["url"] == HOOK
    assert api.delete(f"/api/webhooks/{made['id']}").status_code == 204
    assert api.get(f"/api/webhooks/{made['id']}").status_code == 404
    assert api.get(f"/api/webhooks/{made['id']}/deliveries").status_code == 404
    events = api.get("/api/events", params={"format": "json", "types": "webhook.*"}).json()
    kinds = [e["type"] for e in events["items"]]
    assert kinds == ["webhook.created", "webhook.updated", "webhook.deleted"]
    # Events name the host, never the path or query (a token may be there), nor the secret.
    assert events["items"][0]["data"]["url"] == "http://hooks.example.com"
    assert "token" not in str(events)
    assert secret not in str(events)


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        ({"url": "ftp://example.com/"}, ["url"], "http:// or https://"),
        ({"url": "http://user:pw@example.com/"}, ["url"], "credentials"),
        ({"url": "http://example.com:70000/"}, ["url"], "65535"),
        ({"url": "http://example.com/#frag"}, ["url"], "fragment"),
        ({"url": "http://example.com/a b"}, ["url"], "spaces"),
        ({"url": "http://x/" + "a" * 2000}, ["url"], "2000"),
        ({"url": HOOK, "event_types": ["task.finished"]}, ["event_types", 0], "task.*"),
        ({"url": HOOK, "event_types": []}, ["event_types"], "at least 1"),
        ({"url": HOOK, "secret": "mine"}, ["secret"], "Extra inputs"),
        ({"url": HOOK, "project_id": "nope"}, ["project_id"], "UUID"),
        ({"event_types": ["*"]}, ["url"], "Field required"),
    ],
)
def test_bad_bodies_are_refused_with_the_field_and_change_nothing(
    api: httpx.Client, server: Any, body: dict[str, Any], where: list[Any], says: str
) -> None:
    refused = api.post("/api/webhooks", json=body)
    assert refused.status_code == 422, refused.text
    details = refused.json()["error"]["details"]
    assert details[0]["loc"] == where, details
    assert says in str(details) or says in refused.json()["error"]["message"], refused.text
    assert query_db(server.db, "SELECT COUNT(*) FROM webhooks") == [(0,)]


def test_unknown_projects_and_ids_are_refused(api: httpx.Client, server: Any) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    refused = api.post("/api/webhooks", json={"url": HOOK, "project_id": missing})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["details"][0]["loc"] == ["project_id"]
    for method, path, body in [
        ("GET", f"/api/webhooks/{missing}", None),
        ("PUT", f"/api/webhooks/{missing}", {"enabled": True}),
        ("DELETE", f"/api/webhooks/{missing}", None),
        ("POST", f"/api/webhooks/{missing}/rotate-secret", {}),
        ("POST", f"/api/webhooks/{missing}/test", None),
        ("POST", f"/api/webhooks/{missing}/redeliver", {"event_id": 1}),
        ("GET", f"/api/webhooks/{missing}/deliveries", None),
    ]:
        answer = api.request(method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert "webhook" in answer.json()["error"]["message"]
    made = make(api)
    for change in ({"url": None}, {"enabled": None}, {"event_types": ["nope"]}, {"x": 1}):
        answer = api.put(f"/api/webhooks/{made['id']}", json=change)
        assert answer.status_code == 422, (change, answer.text)
    rotate = api.post(f"/api/webhooks/{made['id']}/rotate-secret", json={"grace_seconds": -1})
    assert rotate.status_code == 422
    redeliver = api.post(f"/api/webhooks/{made['id']}/redeliver", json={"event_id": "1"})
    assert redeliver.status_code == 422
    [(url, secret)] = query_db(server.db, "SELECT url, secret FROM webhooks")
    assert url == HOOK
    assert secret == made["secret"]
