"""POST /awards and /award-sheets through the Flask test client, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

WHEN = (datetime.now(UTC) - timedelta(days=1)).isoformat()


def test_an_award_posts_and_a_retry_with_the_same_key_replays(town):
    body = {"member": "e0", "rule": "meeting", "occurred_at": WHEN, "memo": "村民大会"}
    first = town.post("/awards", "organiser", body, idempotency_key="k1")
    assert first.status_code == 201, first.json
    assert first.json["status"] == "posted"
    assert first.json["entry"]["postings"] == [{"account": "member:e0", "points": 5},
                                               {"account": "issuance", "points": -5}]
    again = town.post("/awards", "organiser", body, idempotency_key="k1")
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json == first.json
    other = town.post("/awards", "organiser", body | {"memo": "changed"}, idempotency_key="k1")
    assert other.status_code == 409
    assert other.json["code"] == "idempotency_conflict"
    assert other.mimetype == "application/problem+json"


def test_refusals_are_problem_details_with_a_stable_code(town):
    body = {"member": "e0", "rule": "meeting", "occurred_at": WHEN}
    assert town.post("/awards", "organiser", body).status_code == 201
    over = town.post("/awards", "organiser", body)
    assert over.status_code == 422
    assert over.json["code"] == "over_cap"
    assert "at most 1 times per member per day" in over.json["detail"]
    unknown = town.post("/awards", "organiser", body | {"member": "nobody"})
    assert (unknown.status_code, unknown.json["code"]) == (404, "unknown_member")


def test_unauthenticated_and_malformed_requests(town, client):
    anonymous = client.post(town.url("/awards"), json={"member": "e0"})
    assert (anonymous.status_code, anonymous.json["code"]) == (401, "unauthenticated")
    bad_key = client.post(town.url("/awards"), json={},
                          headers={"Authorization": "Bearer jf_aaaaaaaaaa_" + "x" * 43})
    assert (bad_key.status_code, bad_key.json["code"]) == (401, "invalid_key")
    broken = client.post(town.url("/awards"), data="{not json",
                         headers=town.headers("organiser") | {"Content-Type": "application/json"})
    assert (broken.status_code, broken.json["code"]) == (400, "invalid_json")
    unknown_field = town.post("/awards", "organiser", {"member": "e0", "rule": "meeting",
                                                       "points": 1000})
    assert unknown_field.status_code == 422
    assert unknown_field.json["errors"] == [{"field": "points", "message": "Unknown field."}]


def test_a_rule_needing_approval_becomes_a_claim(town):
    response = town.post("/awards", "organiser", {"member": "e1", "rule": "honour",
                                                  "occurred_at": WHEN})
    assert response.status_code == 202
    assert response.json["status"] == "proposed"
    assert response.json["claim"] is not None


def test_a_json_sheet_reports_each_line_and_posts_once(town):
    lines = [{"member": m, "rule": "meeting", "occurred_at": WHEN} for m in ("e0", "e1", "x")]
    first = town.post("/award-sheets", "organiser", {"lines": lines})
    assert first.status_code == 200, first.json
    assert [line["status"] for line in first.json["lines"]] == ["posted", "posted", "refused"]
    assert first.json["lines"][2]["error"]["code"] == "unknown_member"
    again = town.post("/award-sheets", "organiser", {"lines": lines})
    assert [line["status"] for line in again.json["lines"]] == ["replayed", "replayed", "refused"]


def test_a_csv_sheet_with_chinese_headers(town):
    csv_text = ("成员,规则,数量,时间,备注\n"
                "e0,volunteer,90,2026-11-20 09:30,扫雪\n"
                "e1,volunteer,abc,2026-11-20 09:30,扫雪\n")
    response = town.client.post(
        town.url("/award-sheets"), headers=town.headers("organiser"),
        data={"sheet": (__import__("io").BytesIO(csv_text.encode("utf-8-sig")), "签到表.csv")},
        content_type="multipart/form-data")
    assert response.status_code == 200, response.json
    first, second = response.json["lines"]
    assert (first["line"], first["status"], first["points"]) == (2, "posted", 7)
    assert (second["line"], second["status"], second["error"]["code"]) == (3, "refused",
                                                                           "invalid_sheet")


def test_a_refusal_is_kept_for_its_idempotency_key(town):
    body = {"member": "e2", "rule": "meeting", "occurred_at": WHEN}
    assert town.post("/awards", "organiser", body, idempotency_key="first").status_code == 201
    refused = town.post("/awards", "organiser", body, idempotency_key="second")
    assert (refused.status_code, refused.json["code"]) == (422, "over_cap")
    again = town.post("/awards", "organiser", body, idempotency_key="second")
    assert again.status_code == 422
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json["request_id"] == refused.json["request_id"]
