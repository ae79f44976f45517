"""Artifact I/O: upload files to a study or a running trial, replacing earlier ones by name.

Artifact ids read back from the storage become file names in the artifact directory, so each
is checked to be a plain id first (some Optuna versions this package allows do not check).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
import re
import tempfile
from typing import TYPE_CHECKING

import optuna
from optuna.trial import FrozenTrial

from optuna_robust import _optuna_compat as compat

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_ARTIFACT_ID = re.compile(r"^[A-Za-z0-9_-]+$")  # uuid4 ids, as optuna.artifacts makes them
_DPI = 100
# optuna-dashboard shows a note's images at their natural size: 900 px fit beside its side
# panels (up to 300 px on a trial page) in a 1280 px window.
MAX_WIDTH_PX = 900


def checked_artifact_id(artifact_id: object, owner: str) -> str:
    """``artifact_id`` if it is a plain id, safe as a file name; a ``ValueError`` otherwise."""
    if not isinstance(artifact_id, str) or not _ARTIFACT_ID.fullmatch(artifact_id):
        raise ValueError(
            f"The storage holds artifact id {artifact_id!r} for {owner}, which is not a plain "
            "id (letters, digits, '-' and '_' only); refusing to use it as a file name in the "
            "artifact directory. Remove that artifact's entry or use a fresh study."
        )
    return artifact_id


def figure_png(figure: Figure) -> bytes:
    """A figure rendered as PNG bytes, at most :data:`MAX_WIDTH_PX` wide."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=min(_DPI, MAX_WIDTH_PX / figure.get_figwidth()))
    return buffer.getvalue()


class ArtifactWriter:
    """Uploads files of one study (or of its running trials) into one artifact directory.

    An upload whose file name the target already holds overwrites that artifact in place (a
    temporary file renamed over it), so attaching again never piles files up.
    """

    def __init__(self, study: optuna.Study, artifact_dir: str | os.PathLike[str]) -> None:
        if not isinstance(artifact_dir, str | os.PathLike):
            raise ValueError(f"artifact_dir must be a directory path but got {artifact_dir!r}.")
        path = Path(artifact_dir)
        if path.exists() and not path.is_dir():
            raise ValueError(f"artifact_dir {str(path)!r} exists and is not a directory.")
        path.mkdir(parents=True, exist_ok=True)
        self.study = study
        self.path = path
        self.store = optuna.artifacts.FileSystemArtifactStore(path)

    def existing(self, trial: FrozenTrial | None = None) -> dict[str, str]:
        """File name -> checked artifact id of what the study (or ``trial``) holds."""
        owner = f"study {self.study.study_name!r}"
        if trial is not None:
            owner = f"trial {trial.number} of {owner}"
        target: FrozenTrial | optuna.Study = self.study if trial is None else trial
        try:
            metas = optuna.artifacts.get_all_artifact_meta(
                target, storage=compat.storage_of(self.study)
            )
        except TypeError:
            # optuna-dashboard marks an artifact deleted in its UI with a null entry, which
            # get_all_artifact_meta cannot read.
            raise ValueError(
                f"optuna.artifacts.get_all_artifact_meta cannot list the artifacts of {owner}: "
                "one was deleted in optuna-dashboard and left a null entry. Attach to a fresh "
                "study, or upgrade Optuna once it skips such entries."
            ) from None
        return {m.filename: checked_artifact_id(m.artifact_id, owner) for m in metas}

    def upload(self, content: bytes, filename: str, trial: FrozenTrial | None = None) -> str:
        """Upload ``content`` as ``filename`` to the study, or to ``trial`` (still running)."""
        existing = self.existing(trial).get(filename)
        if existing is not None:
            self._replace(existing, content)
            return existing
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / filename
            path.write_bytes(content)
            artifact_id: str = optuna.artifacts.upload_artifact(
                artifact_store=self.store,
                file_path=str(path),
                study_or_trial=self.study if trial is None else trial,
                storage=compat.storage_of(self.study),
            )
        return artifact_id

    def upload_figure(
        self, figure: Figure, filename: str, trial: FrozenTrial | None = None
    ) -> str:
        """Upload ``figure`` as a PNG named ``filename``."""
        return self.upload(figure_png(figure), filename, trial)

    def _replace(self, artifact_id: str, content: bytes) -> None:
        target = self.path / artifact_id
        partial = self.path / f".{artifact_id}.partial"
        partial.write_bytes(content)
        os.replace(partial, target)  # readers see the old file or the new, never half of one
