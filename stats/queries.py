"""One catalogue of the dashboard's queries: every fact about a query type is declared here, once.

An entry names the query's key type and URL, its scope (the organization, or one of its units),
its selector, its TTL, whether the fast path may serve it, whether the page shows it, and every
change that can alter its value with what that change does to the cached value. Everything else
reads this: the cache (key types, TTLs), the services and the views (one generic read each), the
URLconf, the event -> keys map (`realtime.events`), the admin's edit signals, the cache inspector,
and the page's refetch map (served to `dashboard.js`).

The changes are declared here too, in `stats`, so that `stats` never imports `realtime`: events
are named after them. Adding a query type: one `Query` here, one selector, its tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Model

from . import selectors
from .models import Alert, Device, Membership, Organization, Site, TemperatureReading, Unit


class Scope(StrEnum):
    ORG = "org"  # one value per organization
    UNIT = "unit"  # one value per unit (the unit is in the URL)
    ORG_OR_UNIT = "org or unit"  # per organization, or per unit with `?unit=<id>`


class Effect(StrEnum):
    INVALIDATE = "invalidate"  # the key is deleted; the next read recomputes it
    # Deleted, then, if it was cached, recomputed once before the change's event is sent: every
    # open dashboard refetches it on that event and would otherwise miss together.
    REFRESH = "refresh"
    # Updated in place from its state by the query's `updater` (`stats.updaters`), before the
    # change's event is sent: exact at once, no recomputation. Without a state: REFRESH.
    UPDATE = "update"
    # Deleted with its state kept (the change alters nothing the state holds), then, if it was
    # cached, rebuilt before the change's event is sent by the query's `rebuilder`: what the
    # change alters is computed again, the rest comes from the state. Without a current state:
    # REFRESH.
    REBUILD = "rebuild"


@dataclass(frozen=True)
class Change:
    """Something that can alter cached figures, and the models it writes. Changes whose `event`
    is true are also sent to the organization's dashboards (under `name`)."""

    name: str
    writes: tuple[type[Model], ...]
    unit_scoped: bool  # it concerns one unit (its unit-scoped keys are affected)
    event: bool = True


READING = Change("reading", (TemperatureReading, Unit, Device), True)
READINGS_BACKFILLED = Change("readingsBackfilled", (TemperatureReading,), True)
UNIT_UPDATE = Change("unitUpdate", (Unit,), True)
ALERT_CREATED = Change("alertCreated", (Alert,), True)
ALERT_ACKNOWLEDGED = Change("alertAcknowledged", (Alert,), True)
ALERT_ESCALATED = Change("alertEscalated", (Alert, Unit), True)
ALERT_RESOLVED = Change("alertResolved", (Alert, Unit), True)
DEVICE_STATUS_CHANGE = Change("deviceStatusChange", (Device,), False)
# Edits no event describes (the admin's forms and deletions): every key of the organization.
ORG_CHANGED = Change("orgChanged", (Organization, Site, Unit, Device, TemperatureReading, Alert), False)
MEMBERSHIP = Change("membership", (Membership,), False, event=False)
SITE = Change("site", (Site,), False, event=False)
USER = Change("user", (get_user_model(),), False, event=False)
CHANGES = (
    READING, READINGS_BACKFILLED, UNIT_UPDATE, ALERT_CREATED, ALERT_ACKNOWLEDGED, ALERT_ESCALATED,
    ALERT_RESOLVED, DEVICE_STATUS_CHANGE, ORG_CHANGED, MEMBERSHIP, SITE, USER,
)  # fmt: skip
ALERT_CHANGES = (ALERT_CREATED, ALERT_ACKNOWLEDGED, ALERT_ESCALATED, ALERT_RESOLVED)


@dataclass(frozen=True)
class Query:
    name: str  # the key's queryType: dashboard:{name}:org:{org}[:unit:{unit}]
    member: str  # its name in `QueryType`
    path: str  # under /api/orgs/<org>/; "{unit}" where the unit's id goes
    scope: Scope
    selector: str  # the function of `stats.selectors` that computes it: (org_id=, unit_id=) -> JSON data
    reads: tuple[type[Model], ...]  # the models the selector reads
    effects: dict[Change, Effect] = field(default_factory=dict)
    updater: str = ""  # for Effect.UPDATE: the function of `stats.updaters` that applies a reading
    # For Effect.UPDATE: the function of `stats.updaters` that gives, from the updated state, what
    # the reading's event carries for the page to paint the change itself instead of refetching
    # the query: (state, reading, now) -> JSON data. Sent only when the value was updated in place,
    # with the key's generation before and after the update (`data.patches[name]`: after, at).
    patcher: str = ""
    # The function of `stats.selectors` that rebuilds the value from the state kept beside it once
    # the value expired, when that state is current: (state, org_id=, unit_id=) -> Stateful or None.
    rebuilder: str = ""
    cached: bool = True
    ttl: int | None = None  # seconds; None: CACHE_TTL_SECONDS
    # Refresh ahead (`stats.cache.ahead`): a fast-path read this close to the end of the TTL, on
    # average, recomputes the value in the background (None: a twelfth of the TTL, 5 s at 60 s).
    refresh_lead: float | None = None
    fast_path: bool = True  # a GET without a query string may be answered before the middleware
    on_page: bool = True  # the dashboard page shows it (and refetches it on its changes)
    # (query, field): the organization-wide value is that field of another query's value, and is
    # computed from it through the cache (no query of its own when that one is cached). Every
    # change that alters it must alter the other too (a catalogue test checks).
    part_of: tuple[str, str] | None = None
    # Its value is a figure over the last 24 h (`stats.windows`): it changes when the oldest bucket
    # leaves the window, every 15 minutes, with no change to tell. A cached value expires then.
    windowed: bool = False

    def select(self, **ids: object) -> object:
        """The selector's response-ready data (looked up by name on each call)."""
        return getattr(selectors, self.selector)(**ids)

    def rebuild(self, state: bytes, **ids: object) -> object:
        return getattr(selectors, self.rebuilder)(state, **ids)

    def ttl_seconds(self) -> int:
        return self.ttl if self.ttl is not None else int(settings.CACHE_TTL_SECONDS)

    def lead_seconds(self) -> float:
        return self.refresh_lead if self.refresh_lead is not None else self.ttl_seconds() / 12

    def effect_of(self, change: Change) -> Effect | None:
        return Effect.INVALIDATE if change is ORG_CHANGED and self.cached else self.effects.get(change)


def _every(changes: tuple[Change, ...], effect: Effect = Effect.INVALIDATE) -> dict[Change, Effect]:
    return dict.fromkeys(changes, effect)


# The state changes dashboards are told of: every open dashboard refetches the counts on them.
_STATE_CHANGES = (*ALERT_CHANGES, UNIT_UPDATE, DEVICE_STATUS_CHANGE)
QUERIES: list[Query] = [
    # The 24 h compliance changes with every reading: updated in place (`stats.updaters`). A state
    # change alters the counts only: they are counted again, the compliance comes from the state.
    Query(
        "stats", "STATS", "stats", Scope.ORG, "organization_stats_stateful",
        reads=(Unit, Alert, Device, TemperatureReading, Membership, Site),
        effects={
            **_every((MEMBERSHIP, SITE, READINGS_BACKFILLED)), **_every(_STATE_CHANGES, Effect.REBUILD),
            READING: Effect.UPDATE,
        },
        updater="compliance_add", patcher="compliance_patch", rebuilder="organization_stats_from_state",
        windowed=True,
    ),
    # The three counts are also in the stats: computed from its cached value, they cost the
    # database nothing when their TTL runs out, nor when they are refreshed after the stats.
    Query(
        "units:status", "UNITS_STATUS", "units/status", Scope.ORG, "unit_status_counts",
        reads=(Unit,), effects=_every((UNIT_UPDATE,), Effect.REFRESH), part_of=("stats", "unitCounts"),
    ),
    Query(
        "alerts:count", "ALERTS_COUNT", "alerts/count", Scope.ORG_OR_UNIT, "alert_counts",
        reads=(Alert, Unit), effects=_every(ALERT_CHANGES, Effect.REFRESH), on_page=False,
        part_of=("stats", "alertCounts"),
    ),
    Query(
        "temperature:trends", "TEMPERATURE_TRENDS", "units/{unit}/trends", Scope.UNIT, "unit_trend_stateful",
        reads=(TemperatureReading, Unit),
        effects={READING: Effect.UPDATE, READINGS_BACKFILLED: Effect.INVALIDATE}, updater="trend_add",
        patcher="trend_patch", rebuilder="unit_trend_from_state", windowed=True,
        # Not refreshed ahead: each reading of its unit updates it in place and restarts its TTL,
        # and once expired it is rebuilt from its state with one query. A unit reporting every
        # minute at a 60 s TTL would have its watched trend refreshed ahead nearly every minute,
        # just before its next reading updated it anyway.
        refresh_lead=0,
    ),
    Query(
        "devices:online", "DEVICES_ONLINE", "devices/online", Scope.ORG, "device_online_counts",
        reads=(Device,), effects=_every((DEVICE_STATUS_CHANGE,), Effect.REFRESH), part_of=("stats", "deviceCounts"),
    ),
    # Not cached (a row per unit or alert, changing with every reading): listed for the page's
    # refetch map only.
    Query(
        "units", "UNITS", "units", Scope.ORG, "units_list", reads=(Unit, Device, Site),
        effects=_every((READING, UNIT_UPDATE, DEVICE_STATUS_CHANGE)), cached=False, fast_path=False,
    ),
    Query(
        "alerts", "ALERTS", "alerts", Scope.ORG, "alerts_list", reads=(Alert, Unit),
        effects=_every(ALERT_CHANGES), cached=False, fast_path=False,
    ),
]  # fmt: skip


def cached() -> Iterator[Query]:
    return (query for query in QUERIES if query.cached)


def by_name(name: str) -> Query | None:
    return next((query for query in QUERIES if query.name == name), None)


def affected(change: Change) -> list[tuple[Query, Effect]]:
    """The cached queries whose value `change` can alter, with what it does to each."""
    return [(query, effect) for query in cached() if (effect := query.effect_of(change)) is not None]


def change_named(name: str) -> Change:
    return next(change for change in CHANGES if change.name == name)


def page_patches() -> dict[str, list[str]]:
    """For each event, the page's queries its data may carry a patch for (`data.patches[name]`):
    the page paints those from the event when it can, and refetches them otherwise."""
    return {
        change.name: [q.name for q in QUERIES if q.on_page and q.patcher and q.effects.get(change) is Effect.UPDATE]
        for change in CHANGES
        if change.event
    }


def page_refetch() -> dict[str, list[str]]:
    """For each event, the page's queries to fetch again (`dashboard.js`); orgChanged: all of them."""
    return {
        change.name: [q.name for q in QUERIES if q.on_page and (change is ORG_CHANGED or change in q.effects)]
        for change in CHANGES
        if change.event
    }
