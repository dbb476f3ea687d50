"""The languages a code task may be written in, shared by the server, the workers and the SDK.

Each :class:`Language` says how its toolchain is found and its version probed, which file
names it goes by, and how a worker runs a file of it (``{file}`` and ``{dir}`` stand for the
private file the code is written to and its private directory). Nothing here starts a
process: the worker probes (:mod:`taskqueue.worker.toolchains`), the SDK only reads the table.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LANGUAGES", "Language", "canonical_language", "detect_language", "language_named"]


@dataclass(frozen=True)
class Language:
    """One language: its name, other names, file extensions, version probe and run command."""

    name: str
    aliases: tuple[str, ...]
    extensions: tuple[str, ...]
    #: The program whose presence (``shutil.which``) says the language can run.
    program: str
    #: The command printing the toolchain's version (its first non-empty line is kept).
    version: tuple[str, ...]
    #: The shell command running the file, ``{file}`` and ``{dir}`` quoted by the worker.
    run: str


#: Every language a worker may offer, in the order ``GET /api/languages`` lists them.
LANGUAGES: tuple[Language, ...] = (
    Language("python3", ("python", "py"), (".py",), "python3", ("python3", "--version"),
             "exec python3 {file}"),
    Language("bash", (), (".bash",), "bash", ("bash", "--version"), "exec bash {file}"),
    Language("sh", ("shell",), (".sh",), "sh", ("sh", "-c", "echo POSIX sh"), "exec sh {file}"),
    Language("node", ("javascript", "js", "nodejs"), (".js", ".mjs", ".cjs"), "node",
             ("node", "--version"), "exec node {file}"),
    Language("ruby", ("rb",), (".rb",), "ruby", ("ruby", "--version"), "exec ruby {file}"),
    Language("perl", ("pl",), (".pl", ".pm"), "perl", ("perl", "-e", "print $^V"),
             "exec perl {file}"),
    Language("php", (), (".php",), "php", ("php", "--version"), "exec php {file}"),
    Language("go", ("golang",), (".go",), "go", ("go", "version"), "exec go run {file}"),
    Language("rust", ("rustc", "rs"), (".rs",), "rustc", ("rustc", "--version"),
             "rustc -o {dir}/main {file} && exec {dir}/main"),
    Language("lua", (), (".lua",), "lua", ("lua", "-v"), "exec lua {file}"),
    Language("r", ("rscript",), (".r",), "Rscript", ("Rscript", "--version"),
             "exec Rscript {file}"),
    Language("awk", ("gawk",), (".awk",), "awk", ("awk", "-W", "version"), "exec awk -f {file}"),
)  # fmt: skip

_BY_NAME: dict[str, Language] = {}
for _language in LANGUAGES:
    for _name in (_language.name, *_language.aliases):
        _BY_NAME[_name.lower()] = _language
_BY_EXTENSION: dict[str, Language] = {
    extension.lower(): language for language in LANGUAGES for extension in language.extensions
}


def language_named(name: str) -> Language | None:
    """The language called ``name`` or one of its aliases (any case); None if unknown."""
    return _BY_NAME.get(name.strip().lower())


def canonical_language(name: str) -> str | None:
    """The table's name for ``name`` (``"py"`` → ``"python3"``); None if unknown."""
    language = language_named(name)
    return None if language is None else language.name


def detect_language(filename: str) -> str | None:
    """The language of a file, from its extension (any case); None if none fits.

    >>> detect_language("scripts/hello.py")
    'python3'
    """
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in base.lstrip("."):
        return None
    extension = "." + base.rsplit(".", 1)[1].lower()
    language = _BY_EXTENSION.get(extension)
    return None if language is None else language.name
