"""``nhigw sam``: manage this workstation's cloud SAMs from the command line.

    nhigw sam import FILE     import a cloud SAM file (kept sealed in the agent's data directory)
    nhigw sam list            the imported cloud SAMs (an unusable one: sealed on another machine or user)
    nhigw sam remove SAMID    forget one

Same store as ``POST /api/common/v1/Settings/CloudSam`` (``nhigw.agent.cloudsam``); the
running agent sees an import at its next ``Initial``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from nhigw.contracts.codes import StatusError


def add_sam_parser(sub: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]) -> None:
    sp = sub.add_parser("sam", help="cloud SAMs of this workstation (import, list, remove)")
    ss = sp.add_subparsers(dest="samcmd", required=True)
    imp = ss.add_parser("import", help="import a cloud SAM file")
    imp.add_argument("file")
    lst = ss.add_parser("list", help="list imported cloud SAMs")
    rm = ss.add_parser("remove", help="forget a cloud SAM")
    rm.add_argument("samId")
    for leaf in (imp, lst, rm):
        common(leaf)


def cmd_sam(args: argparse.Namespace, data_dir: Path) -> int:
    from nhigw.agent.cloudsam import CloudSamStore

    store = CloudSamStore(data_dir)
    try:
        if args.samcmd == "import":
            try:
                raw = Path(args.file).read_bytes()
            except OSError as exc:
                print(f"nhigw sam: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
                return 2
            sam = store.import_file(raw)
            print(f"imported cloud SAM {sam.sam_id} ({sam.hospital_id} {sam.file.hospitalName}); the file may now be deleted")
        elif args.samcmd == "list":
            print(json.dumps([i.model_dump(exclude_none=True) for i in store.infos()], ensure_ascii=False, indent=2))
        elif args.samcmd == "remove":
            store.remove(args.samId)
            print(f"removed cloud SAM {args.samId}")
    except StatusError as err:
        print(f"nhigw sam: {err.code} {err.detail or ''}".rstrip(), file=sys.stderr)
        return 1
    return 0
