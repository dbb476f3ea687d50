"""The public API is fully typed, as pyright's --verifytypes sees it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_pyright_verifytypes_scores_the_package_fully_typed(tmp_path: Path) -> None:
    pyright = Path(sys.executable).parent / "pyright"
    result = subprocess.run(
        [
            str(pyright),
            "--pythonpath",
            sys.executable,
            "--verifytypes",
            "taskqueue",
            "--ignoreexternal",
            "--outputjson",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    report = json.loads(result.stdout)
    completeness = report["typeCompleteness"]
    problems = [d["message"] for d in report.get("generalDiagnostics", [])][:10]
    assert completeness["exportedSymbolCounts"]["withUnknownType"] == 0, problems
    assert completeness["exportedSymbolCounts"]["withAmbiguousType"] == 0, problems
    assert completeness["completenessScore"] == 1.0, problems
