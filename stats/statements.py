"""Statements the ORM compiles once per process and database, then runs with a new value.

Building and compiling a queryset costs the ORM CPU on every call, and for a statement of many
correlated subqueries far more than the database takes to run it: the organization's counts (five
JSON subqueries) took about 10 ms of Python against about 1 ms in PostgreSQL. A statement whose
shape never changes and that takes one value (an organization's id) is compiled once, each run
then swaps the value into the compiled parameters and converts the columns as the ORM would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.db import connections, router
from django.db.models import Field, QuerySet


class OneValueStatement:
    """`build(value)`'s first row (a tuple, columns converted by the ORM) for any UUID `value` of
    `field`, with `build` compiled once per database. `build` must use the value exactly once,
    as a parameter (checked when compiling)."""

    def __init__(self, build: Callable[[object], QuerySet], field: Field) -> None:
        self._build = build
        self._field = field
        self._compiled: dict[str, tuple[object, str, list, int]] = {}  # per database alias

    def first(self, value: object) -> tuple | None:
        alias = router.db_for_read(self._field.model)
        compiler, sql, params, at = self._compiled.get(alias) or self._compile(alias)
        params = list(params)
        params[at] = self._field.get_db_prep_value(value, connections[alias], prepared=False)
        with connections[alias].cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        return None if row is None else next(iter(compiler.results_iter([[row]], tuple_expected=True)))

    def _compile(self, alias: str) -> tuple[object, str, list, int]:
        marker = uuid.uuid4()  # a value no other parameter of the statement can equal
        compiler = self._build(marker).query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        prepared = self._field.get_db_prep_value(marker, connections[alias], prepared=False)
        positions = [i for i, param in enumerate(params) if param == prepared]
        if len(positions) != 1:
            raise ValueError(f"the statement uses its value {len(positions)} times, not once: {sql}")
        # The compiler is kept for its column converters, which read only the backend's features
        # from the connection it was made with: any thread may use it.
        self._compiled[alias] = compiled = (compiler, sql, list(params), positions[0])
        return compiled
