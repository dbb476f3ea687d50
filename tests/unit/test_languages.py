"""The languages table and ``detect_language``: every extension of the table, any case."""

from __future__ import annotations

import pytest

from taskqueue.languages import LANGUAGES, canonical_language, detect_language, language_named

EXTENSIONS = [(ext, lang.name) for lang in LANGUAGES for ext in lang.extensions]


@pytest.mark.parametrize(("extension", "name"), EXTENSIONS)
def test_every_extension_of_the_table_is_detected(extension: str, name: str) -> None:
    assert detect_language(f"script{extension}") == name
    assert detect_language(f"some/dir.v2/script{extension.upper()}") == name
    assert detect_language(f"C:\\code\\x{extension}") == name


@pytest.mark.parametrize(
    "filename", ["Makefile", "notes.txt", ".py", "archive.tar.gz", "", "dir.py/file"]
)
def test_files_of_no_known_language_are_none(filename: str) -> None:
    assert detect_language(filename) is None


def test_names_and_aliases_are_unique_and_resolve_to_their_language() -> None:
    names = [n.lower() for lang in LANGUAGES for n in (lang.name, *lang.aliases)]
    assert len(names) == len(set(names))
    extensions = [e.lower() for lang in LANGUAGES for e in lang.extensions]
    assert len(extensions) == len(set(extensions))
    for language in LANGUAGES:
        for name in (language.name, *language.aliases):
            assert language_named(name.upper()) is language
            assert canonical_language(name) == language.name
        assert "{file}" in language.run
    assert canonical_language("cobol") is None
