"""The built-in stdlib-docstring corpus: harvesting with ast, caching, atomic reuse."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from traingate.train import corpus
from traingate.train.corpus import builtin_corpus_path, file_docstrings, stdlib_files


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRAINGATE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_docstrings_are_harvested_without_importing(tmp_path: Path) -> None:
    src = tmp_path / "mod.py"
    src.write_text(
        textwrap.dedent(
            '''
            """Module docstring that is long enough to keep."""
            raise SystemExit("importing this module would exit")

            class Widget:
                """A widget holds parts and can be assembled."""

                def build(self):
                    """Assemble the widget from its parts.

                    Steps:
                        Relative indentation survives cleandoc.
                    """

                    def inner():
                        """Nested helpers are harvested too, with a qualname."""

            async def fetch():
                """Fetch a resource over the network asynchronously."""

            def short():
                """Too short."""
            '''
        ),
        encoding="utf-8",
    )
    docs = dict(file_docstrings(src, "pkg.mod"))
    assert docs == {
        "pkg.mod": "Module docstring that is long enough to keep.",
        "pkg.mod:Widget": "A widget holds parts and can be assembled.",
        "pkg.mod:Widget.build": (
            "Assemble the widget from its parts.\n\n"
            "Steps:\n    Relative indentation survives cleandoc."
        ),
        "pkg.mod:Widget.build.inner": "Nested helpers are harvested too, with a qualname.",
        "pkg.mod:fetch": "Fetch a resource over the network asynchronously.",
    }


def test_unparseable_file_yields_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('"""A docstring in a broken file."""\ndef (:\n', encoding="utf-8")
    assert list(file_docstrings(bad, "bad")) == []


def test_test_and_vendored_dirs_are_skipped(tmp_path: Path) -> None:
    for rel in [
        "json/__init__.py",
        "json/tests/t.py",
        "test/x.py",
        "site-packages/p/y.py",
        "idlelib/z.py",
        "config-3.11-x86_64-linux-gnu/c.py",
        "zz.py",
        "data.txt",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    found = [str(p.relative_to(tmp_path)) for p in stdlib_files(tmp_path)]
    assert found == ["json/__init__.py", "zz.py"]


def test_subset_build_is_cached_and_reused(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = builtin_corpus_path(max_files=25)
    assert path.parent == cache and path.name.endswith("-max25.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["text", "source"]
    texts = table.column("text").to_pylist()
    assert len(texts) > 20
    assert len(set(texts)) == len(texts)
    assert all(isinstance(t, str) and len(t) >= corpus.MIN_CHARS for t in texts)
    assert all(":" in s or s.isidentifier() or "." in s for s in table.column("source").to_pylist())
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temp file left

    def no_rebuild(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cached corpus must be reused")

    monkeypatch.setattr(corpus, "build_corpus", no_rebuild)
    assert builtin_corpus_path(max_files=25) == path


def test_subset_build_is_deterministic(cache: Path, tmp_path: Path) -> None:
    first = pq.read_table(builtin_corpus_path(max_files=10))
    rows, _ = corpus.build_corpus(tmp_path / "again.parquet", max_files=10)
    again = pq.read_table(tmp_path / "again.parquet")
    assert rows == first.num_rows
    assert again.equals(first)


def test_unreadable_cache_is_rebuilt(cache: Path) -> None:
    path = builtin_corpus_path(max_files=5)
    path.write_bytes(b"garbage")
    assert builtin_corpus_path(max_files=5) == path
    assert pq.read_table(path).num_rows > 0


@pytest.mark.slow
def test_full_build_yields_thousands_of_docstrings(cache: Path) -> None:
    # About 3-4 s on 2 cores (Python 3.11: ~7000 docstrings, ~1 MB).
    table = pq.read_table(builtin_corpus_path())
    assert table.num_rows > 3000
    sources = set(table.column("source").to_pylist())
    assert "json" in sources and any(s.startswith("collections:") for s in sources)
    assert not any(s.split(".")[0] in {"test", "idlelib", "lib2to3"} for s in sources)
