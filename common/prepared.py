"""Statements of the hottest paths, compiled to SQL once and run many times.

Django builds and compiles a queryset's SQL every time it runs it: on this machine 0.3–1 ms of CPU for
a plain statement and about 2 ms for a row lock with a join and a subquery, where sending the SQL and
reading the row back costs about 0.25 ms. A Stripe webhook runs nine statements, so its worker spent
more CPU building SQL than sending it (README, Benchmarks).

`PreparedQuery` keeps the statement written with the ORM, so it reads like every other query, is
checked against the model's fields and stays portable (SQLite and PostgreSQL); it is compiled once per
database connection with placeholder values, and each call sends that SQL with its own values and
builds the rows as the queryset would (model instances with their `select_related` objects and
annotations, or tuples). `PreparedUpdate` is a queryset's `update(...)`, and `row_save`, `row_insert`
and `rows_insert` are `instance.save(update_fields=...)`, `Model.objects.create(...)` and
`bulk_create`, with their statements kept the same way; they leave it to the ORM when the model has
save signals or a field whose SQL is not a plain value.

Only what a hot path needs is supported (parameters compared with `=`, an `__in` list only as one
parameter per element, no prefetch): anything else is refused when the statement is first compiled,
never run differently.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import DatabaseError, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import NOT_PROVIDED, Model, QuerySet, signals
from django.db.models.query import FlatValuesListIterable, ModelIterable, ValuesListIterable, get_related_populators
from django.db.models.sql import UpdateQuery
from django.db.transaction import TransactionManagementError

M = TypeVar("M", bound=Model)

# Placeholder values no real parameter takes: integers below any id, strings no caller sends.
_INT_MARK = -(2**62)
_STR_MARK = "\x1fprepared:{}\x1f"


class PrepareError(TypeError):
    """The statement cannot be kept compiled (a parameter the SQL transforms, an unsupported queryset)."""


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # For each SQL parameter, the name of the call's value that goes there, or None for a constant.
    slots: tuple[str | None, ...]
    constants: tuple[Any, ...]
    locks: bool
    compiler: Any
    converters: dict
    shape: str  # "model", "tuple", "flat" or "count"
    model: type[Model] | None = None
    init_list: tuple[str, ...] = ()
    model_slice: tuple[int, int] = (0, 0)
    related_populators: tuple = ()
    annotation_col_map: dict | None = None

    def params(self, values: dict[str, Any]) -> list[Any]:
        return [
            values[slot] if slot is not None else constant
            for slot, constant in zip(self.slots, self.constants, strict=True)
        ]


class PreparedQuery:
    """A queryset built by `build(**parameters)`, compiled once per database connection.

        _PAYMENT_FOR_INTENT = PreparedQuery(
            lambda intent_id: locks.lock(Payment.objects.filter(stripe_payment_intent_id=intent_id))[:1],
            intent_id=str,
        )
        payment = _PAYMENT_FOR_INTENT.first(intent_id="pi_123")

    `parameters` name each parameter's type (`int` or `str`); the built queryset must use each one as a
    plain value (an `=` comparison; a slice's bounds are not parameters), so that it appears unchanged
    among the SQL's parameters.
    """

    def __init__(self, build: Callable[..., QuerySet], **parameters: type) -> None:
        for name, kind in parameters.items():
            if kind not in (int, str):
                raise PrepareError(f"parameter {name!r}: only int and str parameters can be prepared")
        self._build = build
        self._parameters = parameters
        self._alias: str | None = None
        # Per connection object: each thread has its own, and the SQL is its backend's.
        self._compiled: weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Compiled] = weakref.WeakKeyDictionary()

    def _marks(self) -> dict[str, Any]:
        return {
            name: (_INT_MARK - index if kind is int else _STR_MARK.format(index))
            for index, (name, kind) in enumerate(self._parameters.items())
        }

    @staticmethod
    def _common(sql: str, params, marks: dict[str, Any], compiler, queryset: QuerySet, connection) -> dict[str, Any]:
        by_mark = {mark: name for name, mark in marks.items()}
        slots = tuple(by_mark.get(param) if isinstance(param, (int, str)) else None for param in params)
        missing = set(marks) - set(slots)
        if missing:
            raise PrepareError(f"parameters {sorted(missing)} do not appear unchanged in the SQL: {sql}")
        return {
            "sql": sql,
            "slots": slots,
            "constants": tuple(None if slot is not None else param for slot, param in zip(slots, params, strict=True)),
            "locks": bool(queryset.query.select_for_update and connection.features.has_select_for_update),
            "compiler": compiler,
            "converters": compiler.get_converters([column[0] for column in compiler.select[: compiler.col_count]])
            if compiler.select
            else {},
        }

    def _compile(self) -> tuple[BaseDatabaseWrapper, _Compiled]:
        marks = self._marks()
        queryset: Any = self._build(**marks)  # its private parts are read: Any
        connection = connections[queryset.db]
        if queryset._prefetch_related_lookups or queryset._known_related_objects:
            raise PrepareError("querysets with prefetch_related or of a related manager cannot be prepared")
        compiler = queryset.query.get_compiler(connection=connection)
        # A FOR UPDATE outside a transaction raises Django's own error here, as running it would.
        sql, params = compiler.as_sql()
        common = self._common(sql, params, marks, compiler, queryset, connection)
        iterable = queryset._iterable_class
        if iterable is ModelIterable:
            klass_info = compiler.klass_info
            start, end = klass_info["select_fields"][0], klass_info["select_fields"][-1] + 1
            compiled = _Compiled(
                **common,
                shape="model",
                model=klass_info["model"],
                init_list=tuple(column[0].target.attname for column in compiler.select[start:end]),
                model_slice=(start, end),
                # Django 5.2's signature (the stubs describe 6.x, which adds fetch_mode).
                related_populators=tuple(get_related_populators(klass_info, compiler.select, connection.alias)),  # type: ignore[call-arg]
                annotation_col_map=dict(compiler.annotation_col_map or {}),
            )
        elif iterable is ValuesListIterable:
            compiled = _Compiled(**common, shape="tuple")
        elif iterable is FlatValuesListIterable:
            compiled = _Compiled(**common, shape="flat")
        else:
            raise PrepareError(f"{iterable.__name__} querysets cannot be prepared")
        self._alias = connection.alias
        self._compiled[connection] = compiled
        return connection, compiled

    def all(self, **values: Any) -> list:
        alias = self._alias
        compiled = self._compiled.get(connections[alias]) if alias is not None else None
        if alias is None or compiled is None:
            connection, compiled = self._compile()
        else:
            connection = connections[alias]
            if compiled.locks and connection.get_autocommit() and connection.features.supports_transactions:
                raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, compiled.params(values))
            rows: Any = cursor.fetchall()
        if compiled.converters:
            rows = compiled.compiler.apply_converters(rows, compiled.converters)
        if compiled.shape == "tuple":
            return [tuple(row) for row in rows]
        if compiled.shape == "flat":
            return [row[0] for row in rows]
        model = compiled.model
        assert model is not None
        start, end = compiled.model_slice
        objects = []
        for row in rows:
            obj = model.from_db(connection.alias, compiled.init_list, row[start:end])
            for populator in compiled.related_populators:
                populator.populate(row, obj)
            for attr_name, position in (compiled.annotation_col_map or {}).items():
                setattr(obj, attr_name, row[position])
            objects.append(obj)
        return objects

    def first(self, **values: Any) -> Any:
        """The first row, or None (slice the queryset, `[:1]`, so the database stops there)."""
        rows = self.all(**values)
        return rows[0] if rows else None


class PreparedUpdate:
    """`queryset.update(**values)` for the queryset built by `build(**parameters)` (a filter on the
    model's own table), its WHERE compiled once per connection and its SET from `fields`.

        _CONFIRM = PreparedUpdate(lambda pk: Booking.objects.filter(pk=pk, status="pending"), ("status",), pk=int)
        updated = _CONFIRM.run(set={"status": "confirmed"}, pk=7)

    Values are prepared by their fields, as `update()` does; the statement returns the rows updated.
    """

    def __init__(self, build: Callable[..., QuerySet], fields: Sequence[str], **parameters: type) -> None:
        self._where = PreparedQuery(build, **parameters)
        self._fields = tuple(fields)
        self._alias: str | None = None
        self._sql: weakref.WeakKeyDictionary[BaseDatabaseWrapper, tuple[str, _Compiled, list]] = (
            weakref.WeakKeyDictionary()
        )

    def _compile(self) -> tuple[BaseDatabaseWrapper, tuple[str, _Compiled, list]]:
        marks = self._where._marks()
        queryset = self._where._build(**marks)
        connection = connections[router.db_for_write(queryset.model)]
        query = queryset.query.chain(UpdateQuery)
        if len(query.alias_map) > 1 or query.is_sliced or _by_the_orm(queryset.model, []):
            raise PrepareError("only a filter on the model's own table, with no save signals, can be prepared")
        meta = queryset.model._meta
        fields = [meta.get_field(name) for name in self._fields]
        if any(hasattr(field, "get_placeholder") or not field.concrete for field in fields):
            raise PrepareError(f"fields {self._fields} cannot be prepared")
        compiler = query.get_compiler(connection=connection)
        where, params = compiler.compile(query.where)
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)  # type: ignore[union-attr]
        sql = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {where}"
        compiled = _Compiled(**self._where._common(sql, params, marks, compiler, queryset, connection), shape="count")
        entry = (sql, compiled, fields)
        self._sql[connection] = entry
        self._alias = connection.alias
        return connection, entry

    def run(self, *, set: dict[str, Any], **values: Any) -> int:
        alias = self._alias
        entry = self._sql.get(connections[alias]) if alias is not None else None
        if alias is None or entry is None:
            connection, entry = self._compile()
        else:
            connection = connections[alias]
        sql, compiled, fields = entry
        if set.keys() != {field.name for field in fields}:
            raise PrepareError(f"set {sorted(set)}, prepared for {sorted(self._fields)}")
        params = [field.get_db_prep_save(set[field.name], connection) for field in fields]
        params.extend(compiled.params(values))
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount


# --- Writes -------------------------------------------------------------------------------------------


def _by_the_orm(model: type[Model], fields: Sequence) -> bool:
    """Whether the ORM must write this row: save signals to send, a field with SQL of its own (a
    placeholder, a database default), a parent table."""
    if signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model) or model._meta.parents:
        return True
    return any(hasattr(field, "get_placeholder") or field.db_default is not NOT_PROVIDED for field in fields)


_update_sql: dict[tuple, str] = {}
_insert_sql: dict[tuple, str] = {}


def row_save(instance: Model, *, update_fields: Sequence[str]) -> None:
    """`instance.save(update_fields=update_fields)` with its UPDATE kept compiled: `auto_now` fields
    are stamped and values prepared by their fields as the ORM does, and no row updated is its error."""
    model = type(instance)
    meta: Any = model._meta  # fields and options are introspected: Any
    fields = [meta.get_field(name) for name in update_fields]
    alias = router.db_for_write(model, instance=instance)
    connection = connections[alias]
    values = [field.pre_save(instance, False) for field in fields]
    if _by_the_orm(model, fields) or any(hasattr(value, "resolve_expression") for value in values):
        instance.save(update_fields=update_fields)
        return
    key = (model, tuple(update_fields), connection.vendor)
    sql = _update_sql.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
        sql = _update_sql[key] = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, values, strict=True)]
    params.append(meta.pk.get_db_prep_value(instance.pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        updated = cursor.rowcount
    if updated < 1:
        raise DatabaseError("Save with update_fields did not affect any rows.")
    instance._state.adding = False
    instance._state.db = alias


def insert_parts(model: type[M], **values: Any) -> tuple[M, str, list[Any]]:
    """What `row_insert` would send, for a statement that does more than insert the row (a PostgreSQL
    data-modifying CTE): the unsaved instance, `INSERT INTO <table> (<columns>) VALUES (%s, ...)` and
    its parameters. For models `row_insert` writes itself (no save signals, plain fields)."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    meta: Any = model._meta
    instance: Any = model(**values)
    fields = [field for field in meta.local_concrete_fields if not (field is meta.pk and instance.pk is None)]
    if _by_the_orm(model, fields) or list(meta.db_returning_fields) != [meta.pk]:
        raise PrepareError(f"{model.__name__} rows are written by the ORM")
    instance._prepare_related_fields_for_save(operation_name="save")
    row = [field.pre_save(instance, True) for field in fields]
    if any(hasattr(value, "resolve_expression") for value in row):
        raise PrepareError(f"{model.__name__}: expressions cannot be prepared")
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join('%s' for _ in fields)})"
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, row, strict=True)]
    return instance, sql, params


def row_insert(model: type[M], **values: Any) -> M:
    """`model.objects.create(**values)` with its INSERT kept compiled, where the database returns the
    new id from the INSERT (elsewhere, the ORM's create)."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    meta: Any = model._meta
    instance: Any = model(**values)
    pk = meta.pk
    fields = [field for field in meta.local_concrete_fields if not (field is pk and instance.pk is None)]
    if (
        _by_the_orm(model, fields)
        or not connection.features.can_return_columns_from_insert
        or list(meta.db_returning_fields) != [pk]
    ):
        instance.save(force_insert=True, using=alias)
        return instance
    # As save() does: an unsaved related object given as a value is an error, not a NULL.
    instance._prepare_related_fields_for_save(operation_name="save")
    row = [field.pre_save(instance, True) for field in fields]
    if any(hasattr(value, "resolve_expression") for value in row):
        instance.save(force_insert=True, using=alias)
        return instance
    key = (model, tuple(field.attname for field in fields), connection.vendor)
    sql = _insert_sql.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in fields)
        placeholders = ", ".join("%s" for _ in fields)
        sql = _insert_sql[key] = (
            f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) RETURNING {quote(pk.column)}"
        )
    params = [field.get_db_prep_save(value, connection) for field, value in zip(fields, row, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (new_pk,) = cursor.fetchone()
    # As the ORM's INSERT ... RETURNING converts what it reads back: the backend's and the field's
    # converters, both given the column (SQLite's look at its output field).
    column = pk.get_col(meta.db_table)
    ops: Any = connection.ops
    for converter in ops.get_db_converters(column) + column.get_db_converters(connection):
        new_pk = converter(new_pk, column, connection)
    setattr(instance, pk.attname, new_pk)
    instance._state.adding = False
    instance._state.db = alias
    return instance


_insert_many_sql: dict[tuple, str] = {}


def rows_insert(model: type[Model], rows: Sequence[dict[str, Any]]) -> None:
    """`bulk_create([model(**row) for row in rows])` for rows nobody reads back (their ids are not
    returned): one INSERT of all the rows, kept compiled per number of rows."""
    alias = router.db_for_write(model)
    connection = connections[alias]
    meta: Any = model._meta
    manager: Any = model._default_manager.db_manager(alias)
    instances: list[Any] = [model(**row) for row in rows]
    fields = [field for field in meta.local_concrete_fields if field is not meta.pk]
    if not instances:
        return
    if _by_the_orm(model, fields) or any(instance.pk is not None for instance in instances):
        manager.bulk_create(instances)
        return
    values: list[Any] = []
    for instance in instances:
        instance._prepare_related_fields_for_save(operation_name="bulk_create")
        row = [field.pre_save(instance, True) for field in fields]
        if any(hasattr(value, "resolve_expression") for value in row):
            manager.bulk_create(instances)
            return
        values.extend(field.get_db_prep_save(value, connection) for field, value in zip(fields, row, strict=True))
    key = (model, len(instances), connection.vendor)
    sql = _insert_many_sql.get(key)
    if sql is None:
        quote = connection.ops.quote_name
        columns = ", ".join(quote(field.column) for field in fields)
        one = "(" + ", ".join("%s" for _ in fields) + ")"
        sql = _insert_many_sql[key] = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES " + ", ".join(
            one for _ in instances
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
