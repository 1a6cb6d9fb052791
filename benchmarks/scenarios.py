"""The measured requests, and the targets of issue 3 ("Speed") they are judged against."""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from urllib.parse import quote

from benchmarks import dataset
from benchmarks.loadgen import Request, Scenario

SCIM = "/scim/v2"
PAGE = 100


@dataclass(frozen=True)
class Target:
    """What a scenario must reach: a share of the reference's requests/s, and/or flat p95 growth."""

    min_share_of_reference: float | None = None  # e.g. 0.5: >= 50 % of the reference's req/s
    max_p95_growth: float | None = None  # e.g. 1.5: p95 at the largest size <= 1.5x the smallest


TARGETS: dict[str, Target] = {
    "reference": Target(),
    "filter_username": Target(min_share_of_reference=0.50, max_p95_growth=1.5),
    "filter_external_id": Target(min_share_of_reference=0.50, max_p95_growth=1.5),
    "list_page": Target(max_p95_growth=1.5),
    "patch_department": Target(min_share_of_reference=0.25),
    "post_user": Target(min_share_of_reference=0.25),
}

# Reads first, then writes; POST last because it grows the table.
ORDER = tuple(TARGETS)


def build(users: int) -> list[Scenario]:
    """The scenarios for a database of `users` users (numbered 0..users-1 as in benchmarks.dataset)."""

    def any_user(rng: random.Random) -> int:
        return rng.randrange(users)

    def bulk_user(rng: random.Random) -> int:
        # User 0 was created through the SCIM API, so its id is random; the others' ids are known.
        return rng.randrange(1, users) if users > 1 else 0

    def reference(rng, k) -> Request:
        return "GET", "/bench/reference", None

    def by_user_name(rng, k) -> Request:
        return "GET", f"{SCIM}/Users?filter=" + quote('userName eq "%s"' % dataset.user_name(any_user(rng))), None

    def by_external_id(rng, k) -> Request:
        return "GET", f"{SCIM}/Users?filter=" + quote('externalId eq "%s"' % dataset.external_id(any_user(rng))), None

    def list_page(rng, k) -> Request:
        start = rng.randint(1, max(1, users - PAGE + 1))
        return "GET", f"{SCIM}/Users?startIndex={start}&count={PAGE}", None

    def patch(rng, k) -> Request:
        body = dataset.entra_department_patch(f"Department {rng.randrange(10**9)}")
        return "PATCH", f"{SCIM}/Users/{dataset.scim_id(bulk_user(rng))}", json.dumps(body).encode()

    def post(rng, k) -> Request:
        tag = f"{os.getpid()}-{k}-{rng.randrange(10**9)}"
        body = dataset.entra_user(
            any_user(rng), name=f"bench.new.{tag}@bench.example", ext_id=f"ext-new-{tag}"
        )
        return "POST", f"{SCIM}/Users", json.dumps(body).encode()

    one_match = b'"totalResults":1,'
    full_page = f'"itemsPerPage":{min(PAGE, users)},'.encode()
    return [
        Scenario("reference", "reference: bare Django view", reference,
                 check=lambda body: body.startswith(b'{"status": "ok"')),
        Scenario("filter_username", 'GET /Users?filter=userName eq "…"', by_user_name,
                 check=lambda body: one_match in body),
        Scenario("filter_external_id", 'GET /Users?filter=externalId eq "…"', by_external_id,
                 check=lambda body: one_match in body),
        Scenario("list_page", f"GET /Users?startIndex=random&count={PAGE}", list_page,
                 check=lambda body: full_page in body),
        Scenario("patch_department", "PATCH /Users/{id} (Entra: replace department)", patch,
                 check=lambda body: b'"department":"Department ' in body),
        Scenario("post_user", "POST /Users (Entra create)", post, expect=201,
                 check=lambda body: b'"userName":"bench.new.' in body),
    ]
