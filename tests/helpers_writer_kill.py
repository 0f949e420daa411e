"""Trees for the writer kill test, and its subprocess side.

``python helpers_writer_kill.py ROOT`` applies the "new" outputs to ROOT (which holds
the "old" tree): it prints ``ready`` once imported and set up, then the seconds the
plan and apply took.  The test SIGKILLs it somewhere in between, either after a random
delay or through ``MLSPEC_WRITER_CRASH_AT``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

#: The scopes the "new" compile covers; "other" belongs to a compile that is not run.
SCOPES = frozenset({"churn@dev", "churn@prod", "churn@legacy"})


def _yaml(tag: str, index: int) -> bytes:
    lines = "".join(f"  key{line}: {tag}-{index}-{line}\n" for line in range(index % 7 + 1))
    return f"# generated\nname: f{index}\nvalues:\n{lines}".encode()


def old_outputs() -> dict[str, tuple[bytes, str]]:
    """300 files of the compiled scopes (20 of them in a directory that disappears) and
    20 of another scope."""
    outputs: dict[str, tuple[bytes, str]] = {}
    for index in range(300):
        if index >= 280:
            outputs[f"deploy/legacy/f{index}.yaml"] = (_yaml("old", index), "churn@legacy")
        else:
            env = ("dev", "prod")[index % 2]
            outputs[f"deploy/{env}/m{index % 12}/f{index}.yaml"] = (_yaml("old", index), f"churn@{env}")
    for index in range(20):
        outputs[f"other/o{index}.yaml"] = (_yaml("other", index), "other")
    return outputs


def new_outputs() -> dict[str, tuple[bytes, str]]:
    """The old files minus "other" and every fifth one, half of them rewritten, the
    legacy directory gone, and 60 new files in new directories."""
    outputs: dict[str, tuple[bytes, str]] = {}
    for rel, (data, scope) in old_outputs().items():
        index = int(rel.rsplit("/f", 1)[-1].split(".")[0]) if "/f" in rel else -1
        if scope == "other" or scope == "churn@legacy" or index % 5 == 0:
            continue
        outputs[rel] = (_yaml("new", index) if index % 2 == 0 else data, scope)
    for index in range(60):
        env = ("dev", "prod")[index % 2]
        outputs[f"deploy/{env}/new{index % 7}/g{index}.yaml"] = (_yaml("added", index), f"churn@{env}")
    return outputs


def main(root: str) -> None:
    from mlspec import writer

    outputs = new_outputs()
    print("ready", flush=True)
    started = time.perf_counter()
    writer.apply(writer.plan(Path(root), outputs, SCOPES))
    print(time.perf_counter() - started, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
