"""Schemathesis against the served OpenAPI document, on both databases.

Every operation in `/openapi.json` is fuzzed with schema-valid and
schema-invalid requests, as an admin and as the operator of a programme
made for the test. Whatever is sent, the answer is never a 5xx and always
one the document promises: a documented status code, its content type, a
body matching its schema (problem details included). The run is bounded
(`MAX_EXAMPLES` per operation and mode, derandomised) so CI stays fast and
a failure reproduces.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import make_api_town

MAX_EXAMPLES = 12
"""Per operation, per generation mode; each example is sent once per role in `ROLES`."""

ROLES = ("admin", "operator")

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
"""Not `negative_data_rejection`: it wants a repeated scalar query parameter (`?category=a&
category=b`) refused, where webargs takes the first, as most APIs do. Unknown query parameters,
which matter (a misspelt `?dry_run` must not post), are refused and tested in test_bad_input."""

SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def test_every_operation_answers_only_what_the_document_promises(app, client):
    town = make_api_town(app, client)
    known = _known_path_values(town)
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    document = client.get("/openapi.json").json
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items()
                  for method in item if method in HTTP_METHODS}

    sent: Counter[str] = Counter()
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                sent[operation.label] += _fuzz(operation, mode, town, known)
            except (Exception, BaseExceptionGroup) as error:  # report every operation's failure
                failures[f"{operation.label} ({mode.value})"] = str(error)[:3000]

    assert not failures, "\n\n".join(f"{label}:\n{message}"
                                     for label, message in failures.items())
    assert set(sent) == documented
    assert min(sent.values()) >= len(ROLES) * 2, sent


def _fuzz(operation, mode: GenerationMode, town, known: dict[str, list[str]]) -> int:
    """Fuzz one operation in one mode; returns how many requests were sent."""
    variants = _path_variants(operation, town.code, known)
    strategy = st.sampled_from(variants).flatmap(
        lambda path_parameters: operation.as_strategy(mode, path_parameters=path_parameters))
    sent = 0

    @SETTINGS
    @given(case=strategy)
    def exercise(case) -> None:
        nonlocal sent
        for role in ROLES:
            sent += 1
            case.call_and_validate(headers=town.headers(role), checks=CHECKS)

    exercise()
    return sent


def _path_variants(operation, programme: str, known: dict[str, list[str]]) -> list[dict]:
    """Path parameters to pin: `programme` always; others left to the fuzzer, or real values.

    Pinning some parameters to existing members, units, entries... lets the
    fuzzer reach the success responses, not only the 404s.
    """
    names = {parameter.name for parameter in operation.path_parameters}
    variants = [{"programme": programme}]
    real = {name: known[name] for name in names if name in known}
    if real:
        for index in range(max(len(values) for values in real.values())):
            variants.append({"programme": programme} | {
                name: values[index % len(values)] for name, values in real.items()})
    return variants


def _known_path_values(town) -> dict[str, list[str]]:
    """Values that exist in `town`, by the path parameter names the routes use.

    Grants and keys are ones made to be revoked: fuzzing the town's own would
    take the admin's powers away halfway through the run.
    """
    when = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    posted = town.post("/awards", "organiser", {"member": "e1", "rule": "volunteer",
                                               "quantity": 60, "occurred_at": when})
    assert posted.status_code == 201, posted.json
    proposed = town.post("/awards", "organiser", {"member": "e2", "rule": "honour",
                                                 "occurred_at": when})
    assert proposed.status_code == 202, proposed.json
    grants, prefixes = [], []
    for index in range(2):
        grant = town.post("/grants", "admin", {"principal": f"fuzz-{index}", "role": "organiser",
                                               "unit": "east"})
        assert grant.status_code == 201, grant.json
        grants.append(str(grant.json["id"]))
        key = town.post("/keys", "admin", {"kind": "staff", "principal": f"fuzz-{index}",
                                           "label": "revoked by the fuzzer"})
        assert key.status_code == 201, key.json
        prefixes.append(key.json["prefix"])
    members = ["e0", "e1", "e2", "w0"]
    return {
        "member": members,
        "unit": ["town", "east", "west"],
        "household": ["he", "hw"],
        "rule": ["meeting", "volunteer", "honour", "litter"],
        "seq": [str(posted.json["entry"]["seq"]), "0"],
        "claim_id": [str(proposed.json["claim"])],
        "grant": grants,
        "prefix": prefixes,
    }
