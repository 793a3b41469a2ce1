"""moto's server, with DynamoDB's per-item atomicity.

moto serves each request on a thread of its own and its DynamoDB backend
takes no lock, so, unlike DynamoDB:
- two conditional writes to one item can both pass their condition (a
  lockout counter or a breaker lease could be won twice);
- a cancelled transaction puts back a copy of every table it touched, taken
  when it began: writes other clients made meanwhile vanish (a password
  change answered 200 was rolled back this way), and copying whole tables
  makes every transaction slower as the tables grow;
- a transaction sent again with the same ClientRequestToken (an SDK retry
  whose first answer was lost) is applied again.

This launcher runs moto's own server with a lock per table: a DynamoDB
request holds the locks of every table it names (in name order, so two
requests never wait on each other in a circle), and a cancelled transaction
undoes only the items it names, and a transaction's ClientRequestToken is
honoured as DynamoDB honours it. Requests on different tables still run side
by side, so one test's long scan does not hold up another test's tables.
Arguments are moto_server's. local/stack.sh and internal/testenv start moto
through it.
"""

import copy
import sys
import threading
import time

import moto.dynamodb.models as ddb_models
from moto import server
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

_catalog = threading.RLock()  # requests that add, drop or list tables
_table_locks = {}
_table_locks_guard = threading.Lock()
_CATALOG_ACTIONS = {"CreateTable", "DeleteTable", "ListTables", "UpdateTable"}
_call_action = DynamoHandler.call_action


def _tables_named(params):
    names = set()
    if not isinstance(params, dict):
        return names
    if isinstance(params.get("TableName"), str):
        names.add(params["TableName"])
    names.update(params.get("RequestItems") or {})
    for entry in params.get("TransactItems") or []:
        for op in entry.values():
            if isinstance(op, dict) and isinstance(op.get("TableName"), str):
                names.add(op["TableName"])
    return names


def _locks_for(self):
    locks = []
    try:
        if self._get_action() in _CATALOG_ACTIONS:
            locks.append(_catalog)
    except Exception:
        locks.append(_catalog)
    names = _tables_named(getattr(self, "params", None))
    if not names and not locks:
        locks.append(_catalog)
    with _table_locks_guard:
        for name in sorted(names):
            locks.append(_table_locks.setdefault(name, threading.RLock()))
    return locks


_IDEMPOTENCY_WINDOW = 600  # seconds DynamoDB remembers a ClientRequestToken
_answered = {}  # token -> (time, answer) of a transaction that succeeded


def _idempotent(self):
    """DynamoDB answers a TransactWriteItems whose ClientRequestToken it
    has seen succeed in the last ten minutes with that success, without
    applying it again; moto applies it again. An SDK retry of a transaction
    whose answer was lost then failed the conditions its first attempt had
    met (or, applied twice, counted twice)."""
    token = None
    if self._get_action() == "TransactWriteItems":
        token = (getattr(self, "params", None) or {}).get("ClientRequestToken")
    if not token:
        return _call_action(self)
    now = time.monotonic()
    for old in [t for t, (at, _) in _answered.items() if now - at > _IDEMPOTENCY_WINDOW]:
        del _answered[old]
    if token in _answered:
        status, headers, body = _answered[token][1]
        return status, dict(headers), body
    status, headers, body = _call_action(self)
    if status == 200:
        _answered[token] = (now, (status, dict(headers), body))
    return status, headers, body


def _serialised_call_action(self):
    locks = _locks_for(self)
    for lock in locks:
        lock.acquire()
    try:
        return _idempotent(self)
    finally:
        for lock in reversed(locks):
            lock.release()


DynamoHandler.call_action = _serialised_call_action


class _Copy(threading.local):
    """moto's `copy` module, except that a table is not copied while a
    transaction of this thread begins: it saves its own items instead."""

    in_transaction = False

    def __getattr__(self, name):
        return getattr(copy, name)

    def deepcopy(self, x, *args):
        if self.in_transaction and isinstance(x, Table):
            return x
        return copy.deepcopy(x, *args)


_copy = _Copy()
ddb_models.copy = _copy
_transact_write_items = DynamoDBBackend.transact_write_items


def _item_key(table, op):
    if "Key" in op:
        return op["Key"]
    attrs = op["Item"]
    key = {table.hash_key_attr: attrs[table.hash_key_attr]}
    if table.range_key_attr is not None:
        key[table.range_key_attr] = attrs[table.range_key_attr]
    return key


def _atomic_transact_write_items(self, transact_items):
    # The request holds the locks of every table the transaction names.
    saved = []  # (table name, key, item before the transaction or None)
    for entry in transact_items:
        for op in entry.values():
            name = op.get("TableName") if isinstance(op, dict) else None
            if name not in self.tables:
                continue
            try:
                key = _item_key(self.tables[name], op)
                before = self.get_item(name, key)
            except Exception:
                continue  # moto's own validation answers for it
            saved.append((name, key, copy.deepcopy(before)))
    _copy.in_transaction = True
    try:
        return _transact_write_items(self, transact_items)
    except BaseException:
        for name, key, before in reversed(saved):
            if before is None:
                if self.get_item(name, key) is not None:
                    self.delete_item(name, key)
            else:
                self.put_item(name, before.to_json()["Attributes"])
        raise
    finally:
        _copy.in_transaction = False


DynamoDBBackend.transact_write_items = _atomic_transact_write_items

if __name__ == "__main__":
    server.main(sys.argv[1:])
