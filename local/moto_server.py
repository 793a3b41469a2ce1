"""moto's server, with DynamoDB's per-item atomicity.

moto serves each request on a thread of its own and its DynamoDB backend
takes no lock, so, unlike DynamoDB:
- two conditional writes to one item can both pass their condition (a
  lockout counter or a breaker lease could be won twice);
- a cancelled transaction puts back a copy of every table it touched, taken
  when it began: writes other clients made meanwhile vanish (a password
  change answered 200 was rolled back this way), and copying whole tables
  makes every transaction slower as the tables grow.

This launcher runs moto's own server with one lock around each DynamoDB
request (Python runs one thread at a time anyway, so nothing is lost) and
makes a cancelled transaction undo only the items it names. Arguments are
moto_server's. local/stack.sh and internal/testenv start moto through it.
"""

import copy
import sys
import threading

import moto.dynamodb.models as ddb_models
from moto import server
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler

_lock = threading.RLock()
_call_action = DynamoHandler.call_action


def _serialised_call_action(self):
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _serialised_call_action


class _Copy:
    """moto's `copy` module, except that a table is not copied while a
    transaction begins: the transaction saves its own items instead."""

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
    with _lock:
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
