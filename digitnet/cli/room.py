"""``python -m digitnet room list | remove``: the room's leaderboard, for its operator.

Reads and writes the drawings database directly (whoever can read it is the operator: no
token). A removed entry's pinned files go at the app's next start; a running app drops the
row at its next refresh.
"""

from __future__ import annotations

import argparse

from digitnet.cli.options import add_db_option
from digitnet.errors import DigitnetError


def add_parser(commands) -> None:
    room = commands.add_parser(
        "room",
        help="the room's leaderboard: list its entries, remove one",
        description="The leaderboard room mode keeps in the drawings database ($DIGITNET_DB, "
        "default runs/drawings.sqlite): each entry with the figures measured when it was "
        "published.",
    )
    actions = room.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every entry, best validation first")
    add_db_option(listing)
    listing.set_defaults(handler=run_list)
    remove = actions.add_parser("remove", help="remove an entry by its number")
    remove.add_argument("entry", type=int, help="the entry's number (the list's #)")
    add_db_option(remove)
    remove.set_defaults(handler=run_remove)


def run_list(args: argparse.Namespace) -> int:
    from digitnet.leaderboard import best_first, entry_row
    from digitnet.room_store import list_entries
    from digitnet.store import open_store

    with open_store(args.db) as store:
        rows = best_first([entry_row(e, None, gone=False) for e in list_entries(store)])
    if not rows:
        print("the leaderboard is empty")
    for row in rows:
        validation = row["val_accuracy"]
        test = row["test_accuracy"]
        print(
            f"#{row['entry']:<4} {row['nickname']!r:28} {row['run']:12} "
            f"validation {'-' if validation is None else f'{100 * validation:.2f}%':>7}  "
            f"test {'-' if test is None else f'{100 * test:.2f}%':>7}  {row['published'][:16]}"
            f"  {row['knobs']}"
        )
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from digitnet.room_store import delete_entry
    from digitnet.store import open_store

    with open_store(args.db) as store:
        removed = delete_entry(store, args.entry)
    if removed is None:
        raise DigitnetError(f"there is no entry {args.entry} on the leaderboard")
    print(f"removed entry {removed.id}: {removed.nickname!r}, {removed.run}")
    return 0
