"""Upload the app to a Hugging Face Space through ``huggingface_hub``.

The Hub refuses a ``git push`` of binary files (the weights, the data sample, the PNGs) that
are not stored with LFS or Xet; ``HfApi.upload_folder`` stores them the way the Hub requires.
Only what the app needs goes up: ``app.py``, ``requirements.txt``, ``README.md`` (its front
matter makes the repo a Gradio Space), ``LICENSE``, ``digitnet/`` and ``assets/``; never
``runs/``, caches, ``.gradio/``, ``__pycache__`` or the tests.

    python scripts/deploy_space.py --dry-run                  # list what would go up; offline
    python scripts/deploy_space.py --space you/digitnet       # create the Space if new, upload

The token comes from ``HF_TOKEN`` or the usual login (``hf auth login``). Files under
``digitnet/`` and ``assets/`` on the Space that are no longer here are deleted in the same
commit, so a module removed here does not linger there.
"""

from __future__ import annotations

import argparse
import fnmatch
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ("app.py", "requirements.txt", "README.md", "LICENSE", "digitnet", "assets")
KEPT_IN_SYNC = ("digitnet/*", "assets/*")  # on the Space, anything here not uploaded is deleted
NEVER_DIRS = {"runs", "tests", "__pycache__", ".gradio", "flagged", "node_modules"}
NEVER_SUFFIXES = (".pyc", ".pyo", ".sqlite", ".sqlite-wal", ".sqlite-shm", ".egg-info")
FRONT_MATTER_KEYS = ("sdk: gradio", "app_file: app.py")


class DeployError(Exception):
    """A mistake to report in one line."""


@dataclass(frozen=True)
class SpaceFile:
    path: str  # relative to the repo, with forward slashes, as on the Space
    size: int  # bytes


def space_files(root: Path = REPO) -> list[SpaceFile]:
    """What the Space needs from ``root``, sorted by path. Hidden files and folders, caches,
    runs, tests and databases are left out wherever they are."""
    files = []
    for name in SHIPPED:
        top = root / name
        if not top.exists():
            if name == "LICENSE":
                continue
            raise DeployError(f"{top}: missing; the Space needs it")
        candidates = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in candidates:
            relative = path.relative_to(root)
            if _left_out(relative):
                continue
            files.append(SpaceFile(relative.as_posix(), path.stat().st_size))
    return sorted(files, key=lambda f: f.path)


def _left_out(relative: Path) -> bool:
    parts = relative.parts
    if any(part.startswith(".") or part in NEVER_DIRS for part in parts):
        return True
    return any(part.endswith(suffix) for part in parts for suffix in NEVER_SUFFIXES)


def check_front_matter(readme: Path) -> None:
    """The README must open with the front matter that makes the repo a Gradio Space."""
    text = readme.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---" not in text[4:]:
        raise DeployError(f"{readme}: no front matter (a '---' block first); the Space needs it")
    front = text[4 : text.index("\n---", 4)]
    missing = [key for key in FRONT_MATTER_KEYS if key not in front.splitlines()]
    if missing:
        raise DeployError(f"{readme}: the front matter lacks {', '.join(missing)}")


def listing(files: list[SpaceFile]) -> str:
    """One line per file (size, path), then the totals."""
    lines = [f"  {_size(f.size):>9}  {f.path}" for f in files]
    lines.append(f"{len(files)} files, {_size(sum(f.size for f in files))} in all")
    return "\n".join(lines)


def _size(count: int) -> str:
    for unit, scale in (("MB", 2**20), ("KB", 2**10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} B"


def _exact(path: str) -> str:
    """An fnmatch pattern that matches ``path`` and nothing else."""
    return "".join(f"[{c}]" if c in "*?[]" else c for c in path)


def deploy(api, space: str, files: list[SpaceFile], *, private: bool, root: Path = REPO) -> str:
    """Create the Space if it is new (a Gradio Space) and upload ``files`` in one commit."""
    api.create_repo(space, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    patterns = [_exact(f.path) for f in files]
    assert all(any(fnmatch.fnmatch(f.path, p) for p in patterns) for f in files)
    info = api.upload_folder(
        repo_id=space,
        repo_type="space",
        folder_path=str(root),
        allow_patterns=patterns,
        delete_patterns=list(KEPT_IN_SYNC),
        commit_message=f"digitnet {_revision(root)}",
    )
    return getattr(info, "commit_url", None) or f"https://huggingface.co/spaces/{space}"


def _revision(root: Path) -> str:
    """The checkout's commit, marked when it has uncommitted changes; 'deploy' without git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "deploy"
    return commit.stdout.strip() or "deploy"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", metavar="OWNER/NAME", help="the Space to create or update")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would be uploaded (path and size) and stop; no network call",
    )
    parser.add_argument("--private", action="store_true", help="a new Space is private")
    return parser


def main(argv: list[str] | None = None, *, api=None) -> int:
    """``api`` stands in for ``huggingface_hub.HfApi()`` (the tests pass a fake)."""
    args = build_parser().parse_args(argv)
    try:
        check_front_matter(REPO / "README.md")
        files = space_files(REPO)
        print(listing(files))
        if args.dry_run:
            where = f"to the Space {args.space}" if args.space else "(give --space to upload)"
            print(f"dry run: nothing uploaded {where}")
            return 0
        if not args.space:
            raise DeployError("give --space OWNER/NAME (or --dry-run to only list the files)")
        url = deploy(api or _hub_api(), args.space, files, private=args.private)
    except DeployError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"uploaded {len(files)} files to {url}")
    return 0


def _hub_api():
    """``HfApi`` with the token from ``HF_TOKEN`` or the saved login; refused without one.

    The Hub's refusals (a bad token, a name taken, no network) become one-line DeployErrors.
    """
    from huggingface_hub import HfApi, get_token

    if get_token() is None:
        raise DeployError("no Hugging Face token: set HF_TOKEN or run 'hf auth login'")
    return _OneLineErrors(HfApi())


class _OneLineErrors:
    """Wraps HfApi so that its HTTP and connection errors surface as one-line DeployErrors."""

    def __init__(self, api) -> None:
        self._api = api

    def __getattr__(self, name: str):
        method = getattr(self._api, name)

        def call(*args, **kwargs):
            import httpx
            from huggingface_hub.errors import HfHubHTTPError

            try:
                return method(*args, **kwargs)
            except (HfHubHTTPError, httpx.HTTPError, OSError) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise DeployError(
                    f"the Hub refused {name}: {first or type(error).__name__}"
                ) from None

        return call


if __name__ == "__main__":
    sys.exit(main())
