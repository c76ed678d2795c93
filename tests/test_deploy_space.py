"""scripts/deploy_space.py: the dry run lists what a Space needs and nothing else, offline;
the upload goes through HfApi (a fake here: no network)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

SHIPPED_FILES = (
    "app.py",
    "requirements.txt",
    "README.md",
    "assets/mlp.safetensors",
    "assets/cnn.safetensors",
)


def load_script():
    spec = importlib.util.spec_from_file_location("deploy_space", REPO / "scripts/deploy_space.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while being defined
    spec.loader.exec_module(module)
    return module


def listed_paths(out: str) -> list[str]:
    """The paths of a listing's file lines (size, unit, path)."""
    return [line.split()[-1] for line in out.splitlines() if line.startswith(" ")]


def assert_only_what_a_space_needs(paths: list[str]) -> None:
    for path in SHIPPED_FILES:
        assert path in paths, path
    for path in paths:
        parts = Path(path).parts
        assert parts[0] in {"app.py", "requirements.txt", "README.md", "LICENSE"} | {
            "digitnet",
            "assets",
        }, path
        assert not {"runs", "tests", "__pycache__", ".gradio"} & set(parts), path
        assert not path.endswith((".pyc", ".sqlite")), path


def test_dry_run_lists_what_the_space_needs_and_exits_0():
    run = subprocess.run(
        [sys.executable, "scripts/deploy_space.py", "--dry-run"],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    paths = listed_paths(run.stdout)
    assert_only_what_a_space_needs(paths)
    assert "digitnet/cli/__init__.py" in paths and "digitnet/ui/static/pad.js" in paths
    assert f"{len(paths)} files" in run.stdout and "dry run: nothing uploaded" in run.stdout


def test_dry_run_makes_no_network_call(capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the dry run tried the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    assert load_script().main(["--dry-run", "--space", "someone/digitnet"]) == 0
    out = capsys.readouterr().out
    assert "nothing uploaded to the Space someone/digitnet" in out
    assert_only_what_a_space_needs(listed_paths(out))


def test_runs_caches_tests_and_databases_are_left_out(tmp_path):
    script = load_script()
    for path in (
        "app.py",
        "requirements.txt",
        "README.md",
        "digitnet/__init__.py",
        "digitnet/__pycache__/model.cpython-311.pyc",
        "digitnet/ui/static/pad.js",
        "assets/mlp.safetensors",
        "assets/drawings.sqlite",
        "assets/.DS_Store",
        "runs/mlp.safetensors",
        "runs/drawings.sqlite",
        ".gradio/cached/x.png",
        "tests/test_cli.py",
        ".pytest_cache/v/x",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"x" * 10)
    files = script.space_files(tmp_path)
    assert [f.path for f in files] == [
        "README.md",
        "app.py",
        "assets/mlp.safetensors",
        "digitnet/__init__.py",
        "digitnet/ui/static/pad.js",
        "requirements.txt",
    ]
    assert all(f.size == 10 for f in files)


def test_a_readme_without_front_matter_is_refused(tmp_path):
    script = load_script()
    readme = tmp_path / "README.md"
    readme.write_text("# digitnet\n")
    with pytest.raises(script.DeployError, match="front matter"):
        script.check_front_matter(readme)
    readme.write_text("---\ntitle: x\nsdk: streamlit\n---\n# digitnet\n")
    with pytest.raises(script.DeployError, match="sdk: gradio"):
        script.check_front_matter(readme)
    script.check_front_matter(REPO / "README.md")


class FakeHfApi:
    """Records the calls deploy_space makes; upload_folder selects files as the Hub client does."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        return f"https://huggingface.co/spaces/{repo_id}"

    def upload_folder(self, **kwargs):
        from huggingface_hub.utils import filter_repo_objects

        self.calls.append(("upload_folder", kwargs["repo_id"], kwargs))
        root = Path(kwargs["folder_path"])
        every = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        self.uploaded = list(filter_repo_objects(every, allow_patterns=kwargs["allow_patterns"]))

        class Info:
            commit_url = f"https://huggingface.co/spaces/{kwargs['repo_id']}/commit/abc"

        return Info()


def test_upload_creates_a_gradio_space_and_sends_exactly_the_listed_files(capsys):
    script = load_script()
    api = FakeHfApi()
    assert script.main(["--space", "someone/digitnet"], api=api) == 0
    out = capsys.readouterr().out
    assert "uploaded" in out and "someone/digitnet/commit/abc" in out
    (create, space, options), (upload, _, upload_options) = api.calls
    assert create == "create_repo" and space == "someone/digitnet"
    assert options["repo_type"] == "space" and options["space_sdk"] == "gradio"
    assert options["exist_ok"] is True
    assert upload == "upload_folder" and upload_options["repo_type"] == "space"
    assert Path(upload_options["folder_path"]) == REPO
    assert set(upload_options["delete_patterns"]) == {"digitnet/*", "assets/*"}
    # What the Hub client would pick from the folder is exactly the dry run's listing.
    assert api.uploaded == [f.path for f in script.space_files(REPO)]
    assert_only_what_a_space_needs(api.uploaded)


def test_upload_needs_a_space_and_a_token(capsys, monkeypatch):
    script = load_script()
    assert script.main([], api=FakeHfApi()) == 2
    assert capsys.readouterr().err.startswith("error: give --space")
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert script.main(["--space", "someone/digitnet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no Hugging Face token") and "HF_TOKEN" in err


def test_the_hubs_refusal_is_one_line(capsys):
    script = load_script()

    class Offline:
        def create_repo(self, *args, **kwargs):
            raise ConnectionError("Name or service not known\nmore detail")

    assert script.main(["--space", "someone/digitnet"], api=script._OneLineErrors(Offline())) == 2
    err = capsys.readouterr().err
    assert err == "error: the Hub refused create_repo: Name or service not known\n"
