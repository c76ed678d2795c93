"""Writing output files atomically, and never over an input."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from digitnet.errors import DigitnetError


def write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(temp_path)``, then move the result onto ``path`` in one step.

    A crash or an error mid-way leaves ``path`` as it was (absent or the old file),
    never half-written.
    """
    path = Path(path)
    if path.is_dir():
        raise DigitnetError(f"{path}: is a folder; give a file name to write")
    temp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        os.close(handle)
        temp = Path(temp_name)
        write(temp)
        os.chmod(temp, 0o644)  # mkstemp makes files private; outputs are ordinary files
        os.replace(temp, path)
    except OSError as error:
        raise DigitnetError(
            f"{path}: could not write the file ({error.strerror or error}); "
            f"check the folder exists and is writable"
        ) from None
    finally:
        if temp is not None:
            temp.unlink(missing_ok=True)
    return path


def check_writable(path: str | Path) -> None:
    """Fail now, not after an hour of training, if ``path``'s folder cannot be written."""
    folder = Path(path).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise DigitnetError(
            f"{folder}: cannot write there ({error.strerror or error}); choose another --out"
        ) from None


def write_text_atomically(path: str | Path, text: str) -> Path:
    return write_atomically(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def refuse_overwriting_inputs(output: str | Path, inputs: Iterable[str | Path]) -> None:
    """Raise if ``output`` is one of ``inputs`` (or inside an input folder)."""
    output = Path(output).resolve()
    for source in inputs:
        source = Path(source).resolve()
        if output == source or (source.is_dir() and source in output.parents):
            raise DigitnetError(
                f"{output}: the output would replace or land inside the input "
                f"{source}; choose another --out"
            )
