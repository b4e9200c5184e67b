"""The ``milvus`` engine against a real Milvus server (``tests/milvus_server.py``, started once per session).

The engine's conformance checks run in ``test_search.py``; here: pushing an
index folder (idempotent, resumed after a kill -9, kept current when the index
changes), answers through ``Recommender`` and the CLI equal to exact search,
filters whose values hold quotes and backslashes, the query product excluded by
id, HNSW really built and at its recall, and the failures a user meets — an
unreachable or silent server, a missing collection, another dimension, another
index's collection, a collection fashionrec did not make — each one line, in
bounded time. The server listens on all interfaces with authentication off;
these tests only connect to it over 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from fashionrec.catalog.filters import Filter
from fashionrec.errors import IndexFolderError
from fashionrec.index import IndexFolder, write_index
from fashionrec.search.milvus import FilterTranslator, MilvusEngine, MilvusError, push_index, quote, server_address
from fashionrec.search.milvus.connection import split_credentials

NASTY = ['Nike "Air" 9\\" Sneaker', "O'Neil \\ back\\slash", 'ends with a backslash \\', 'tab\tand "both\' quotes',
         'x" or id >= 0 or "y']
"""Attribute values a filter must match exactly, whatever their quotes and backslashes (the last one would
match every product if it were pasted into the expression unquoted)."""

runner = CliRunner()


def make_index(path: Path, n: int = 600, dim: int = 32, seed: int = 0, shift: float = 0.0) -> Path:
    """An index folder of ``n`` products with clustered vectors, duplicates, missing values and nasty names."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dim))
    X = (centres[rng.integers(0, 12, n)] + 0.4 * rng.normal(size=(n, dim)) + shift).astype(np.float32)
    if n > 40:
        X[[5, 17, 30]] = X[40]  # identical vectors: ties resolved by id
    ids = np.sort(rng.choice(60_000, size=n, replace=False)).astype(np.int64)
    names = [NASTY[(i // 2) % len(NASTY)] if i % 2 == 0 else f"product {i}" for i in range(n)]
    products = pd.DataFrame({
        "id": ids,
        "gender": rng.choice(["Women", "Men", "Unisex", None], size=n, p=[0.4, 0.4, 0.1, 0.1]),
        "articleType": rng.choice(["Heels", "Flats", "Sandals", "Casual Shoes"], size=n),
        "year": pd.array(rng.choice([2011, 2012, None], size=n, p=[0.45, 0.45, 0.1]), dtype="Int64"),
        "productDisplayName": names,
        "image": [f"images/{i}.jpg" for i in ids],
    })
    manifest = {"backbone": "tiny-test", "weights": "synthetic", "preprocessing": {"mode": "crop"},
                "catalog": {"root": None, "where": {}}}
    write_index(path, X, products, manifest)
    return path


@pytest.fixture(scope="module")
def pushed(milvus_server, tmp_path_factory):
    """An index folder pushed to a FLAT collection (shared by the tests that only read it)."""
    index = make_index(tmp_path_factory.mktemp("milvus") / "shoes")
    summary = push_index(index, uri=milvus_server.uri, collection="t_shoes", index_type="FLAT", timeout=3.0)
    return index, summary


def exact_and_milvus(index: Path, metric: str = "euclidean"):
    from fashionrec.recommend import Recommender

    return Recommender.load(index), Recommender.load(index, engine="milvus")


def client(server):
    from pymilvus import MilvusClient

    return MilvusClient(uri=server.uri, timeout=10)


# --------------------------------------------------------------------------- answers


def test_flat_push_answers_exactly_like_exact_search(pushed):
    index, summary = pushed
    assert summary.created and summary.added == 600 and summary.vectors == 600
    assert summary.tuning["recall"] == 1.0
    exact, milvus = exact_and_milvus(index)
    assert milvus.engine("euclidean").name == "milvus"  # not the exact fallback
    ids = exact.products["id"].tolist()
    for pid in ids[::20] + [ids[40]]:
        for where in (None, {"gender": "women"}, {"articleType": ["Heels", "FLATS"], "year": 2012}):
            a, b = exact.similar(pid, k=10, where=where), milvus.similar(pid, k=10, where=where)
            assert a["id"].tolist() == b["id"].tolist()
            assert a["distance"].tolist() == b["distance"].tolist()  # bit for bit: the same arithmetic
            assert pid not in b["id"].tolist()
    tied = milvus.similar(ids[40], k=3)["id"].tolist()  # three identical vectors: lower ids first
    assert tied == sorted(ids[i] for i in (5, 17, 30))


def test_filters_with_quotes_and_backslashes_are_matched_not_broken(pushed, milvus_server):
    index, _ = pushed
    exact, milvus = exact_and_milvus(index)
    engine = milvus.engine("euclidean")
    products = exact.products
    pid = products["id"].iloc[1]
    for value in NASTY:
        expected = products.loc[products["productDisplayName"] == value, "id"].tolist()
        assert len(expected) == 60  # more than the 41 candidates a search for 5 asks Milvus for: it answers
        for spelled in (value, value.upper()):  # case-insensitive, like every filter
            flt = Filter.from_where({"productDisplayName": spelled})
            expression = engine._translator.expression(flt)  # what the server is sent, read by its parser
            held = client(milvus_server).query("t_shoes", filter=expression, output_fields=["id"], limit=1000)
            assert sorted(row["id"] for row in held) == sorted(expected)
            a, b = exact.similar(pid, k=5, where=flt.to_dict()), milvus.similar(pid, k=5, where=flt.to_dict())
            assert a["id"].tolist() == b["id"].tolist() and set(b["id"]) <= set(expected)
        where = {"productDisplayName": [value, "product 3"], "gender": ["Men", "Women"]}
        assert exact.similar(pid, k=3, where=where)["id"].tolist() == \
            milvus.similar(pid, k=3, where=where)["id"].tolist()


def test_ties_beyond_what_milvus_returned_are_fetched(milvus_server):
    """120 identical vectors: Milvus returns 41 of them in any order; the engine fetches more until no product
    left out can tie, so the answer is the lowest ids, as exact search gives."""
    from fashionrec.search import create_engine

    rng = np.random.default_rng(8)
    X = rng.normal(size=(500, 8)).astype(np.float32)
    X[:120] = X[0]
    ids = rng.permutation(10_000)[:500].astype(np.int64)
    engine = create_engine("milvus", index_type="FLAT", collection="t_ties", tune_queries=0).build(X, ids)
    exact = create_engine("exact").build(X, ids)
    for k in (1, 5):
        a, b = exact.search(X[:2], k), engine.search(X[:2], k)
        np.testing.assert_array_equal(a[1], b[1])
        assert sorted(ids[:120])[:k] == b[1][0].tolist()


def test_exclusion_is_by_id(pushed):
    index, _ = pushed
    exact, milvus = exact_and_milvus(index)
    engine, reference = milvus.engine("euclidean"), exact.engine("euclidean")
    ids = exact.index.vector_ids
    queries = exact.index.embeddings[[40, 41]]
    exclude = [[int(ids[40]), int(ids[5]), 123_456_789], [int(ids[41])]]  # an unknown id is ignored
    a, b = reference.search(queries, 6, exclude_ids=exclude), engine.search(queries, 6, exclude_ids=exclude)
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[0], b[0])
    assert not set(b[1][0].tolist()) & {int(ids[40]), int(ids[5])} and int(ids[17]) in b[1][0]


def test_second_push_changes_nothing(pushed, milvus_server):
    index, _ = pushed
    engine_json = index / "engines" / "milvus" / "euclidean" / "engine.json"
    before = engine_json.read_text()
    described = client(milvus_server).describe_collection("t_shoes")
    again = push_index(index)  # the server and collection recorded by the first push
    assert (again.added, again.changed, again.removed, again.unchanged, again.created) == (0, 0, 0, 600, False)
    after = client(milvus_server).describe_collection("t_shoes")
    assert after["collection_id"] == described["collection_id"] and after["properties"] == described["properties"]
    assert engine_json.read_text() == before


def test_push_records_where_the_vectors_live_without_secrets(pushed, milvus_server):
    index, _ = pushed
    record = json.loads((index / "engines" / "milvus" / "euclidean" / "engine.json").read_text())
    assert record["params"]["uri"] == milvus_server.uri and record["params"]["collection"] == "t_shoes"
    assert record["milvus"]["index_type"] == "FLAT" and record["milvus"]["metric_type"] == "L2"
    entry = next(e for e in IndexFolder.load(index).manifest["engines"] if e["name"] == "milvus")
    assert entry["params"]["collection"] == "t_shoes" and entry["vectors"] == 600 and entry["recall_at_10"] == 1.0


def test_credentials_are_used_never_written_and_a_dropped_collection_names_the_push(milvus_server, tmp_path):
    from fashionrec.cli import app

    index = make_index(tmp_path / "secret", n=80)
    host = milvus_server.uri.split("://")[1]
    push_index(index, uri=f"http://reader:s3cr3t-pass@{host}", collection="t_secret", index_type="FLAT",
               token="other:t0ken-value")  # auth is off on the test server: any token is accepted
    written = " ".join(p.read_text(errors="replace") for p in index.rglob("*.json"))
    assert "s3cr3t-pass" not in written and "t0ken-value" not in written and milvus_server.uri in written
    client(milvus_server).drop_collection("t_secret")
    result = runner.invoke(app, ["recommend", str(index), "--id", str(IndexFolder.load(index).products["id"][0]),
                                 "--engine", "milvus"])
    message = one_line_error(result)
    assert "collection 't_secret' is not on the Milvus server" in message
    assert f"fashionrec milvus push {index}" in message


def test_hnsw_is_built_and_reaches_its_recall(milvus_server):
    from fashionrec.search import create_engine

    rng = np.random.default_rng(3)
    centres = rng.normal(size=(60, 32))
    X = (centres[rng.integers(0, 60, 4000)] + 0.35 * rng.normal(size=(4000, 32))).astype(np.float32)
    ids = rng.choice(10**6, size=4000, replace=False).astype(np.int64)
    engine = create_engine("milvus", index_type="HNSW", collection="t_hnsw", tune_queries=100).build(X, ids)
    index = client(milvus_server).describe_index("t_hnsw", "vector")
    assert index["index_type"] == "HNSW" and index["indexed_rows"] == 4000  # the graph exists: not a scan
    assert engine.tuning["recall_low"] >= 0.95 and engine.tuning["param"] == "ef"
    exact = create_engine("exact").build(X, ids)
    rows = np.arange(7, 4000, 40)
    own = [[int(i)] for i in ids[rows]]
    truth = exact.search(X[rows], 10, exclude_ids=own)
    found = engine.search(X[rows], 10, exclude_ids=own)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found[1].tolist(), truth[1].tolist())])
    assert recall >= 0.9
    row_of = {int(i): r for r, i in enumerate(ids)}
    X64 = X.astype(np.float64)
    for q, row in enumerate(rows):  # every distance exact, whatever HNSW's float32 said
        expected = [np.sqrt(((X64[row_of[i]] - X64[row]) ** 2).sum()) for i in found[1][q].tolist()]
        np.testing.assert_allclose(found[0][q], expected, rtol=1e-12)


# --------------------------------------------------------------------------- pushes that change, resume, update


def test_killed_push_resumes_where_it_stopped(milvus_server, tmp_path):
    """kill -9 at the third upsert batch (a crash point), then the same push again: only the rest is sent."""
    index = make_index(tmp_path / "killed", n=500)
    script = ("import sys; from fashionrec.search.milvus import push_index; "
              "push_index(sys.argv[1], uri=sys.argv[2], collection='t_killed', index_type='FLAT', batch_size=100)")
    env = {**__import__("os").environ, "FASHIONREC_CRASH_AT": "3"}
    done = subprocess.run([sys.executable, "-c", script, str(index), milvus_server.uri], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]
    assert not (index / "engines" / "milvus").exists()  # nothing recorded: no query trusts the collection
    exact, milvus = exact_and_milvus(index)
    assert milvus.engine("euclidean").name == "exact"  # the engine is not there yet: exact answers, with a warning
    summary = push_index(index, uri=milvus_server.uri, collection="t_killed", index_type="FLAT", batch_size=100)
    assert (summary.added, summary.unchanged, summary.created) == (300, 200, False)
    exact, milvus = exact_and_milvus(index)
    for pid in exact.products["id"].iloc[::25]:
        assert exact.similar(pid, k=10)["id"].tolist() == milvus.similar(pid, k=10)["id"].tolist()


def test_fashionrec_index_keeps_the_collection_current(milvus_server, tmp_path):
    """After the index changes (as `fashionrec index` rewrites it), the saved engines are brought up to date:
    the collection gets the added and changed rows and loses the removed ones."""
    from fashionrec.search import update_saved_engines

    index = make_index(tmp_path / "grows", n=300)
    push_index(index, uri=milvus_server.uri, collection="t_grows", index_type="FLAT")
    folder = IndexFolder.load(index)
    products = folder.products.copy()
    vectors = np.array(folder.embeddings)
    keep = np.r_[1:300]  # the first product removed
    vectors, products = vectors[keep], products.iloc[keep].reset_index(drop=True)
    vectors[10] += 0.5  # one vector changed
    products.loc[20, "gender"] = 'Wo"men'  # one attribute changed
    new = products.iloc[[0]].assign(id=99_999, productDisplayName="new")
    products = pd.concat([products, new], ignore_index=True)
    vectors = np.vstack([vectors, vectors[:1] + 1.0])
    write_index(index, vectors, products, {k: folder.manifest[k] for k in ("backbone", "weights", "preprocessing")})
    updated = IndexFolder.load(index)
    [(saved, action)] = update_saved_engines(updated)
    assert action == "updated (+1 added, 2 changed, -1 removed)"
    exact, milvus = exact_and_milvus(index)
    assert milvus.engine("euclidean").name == "milvus"
    for pid in [99_999, *exact.products["id"].iloc[::30]]:
        for where in (None, {"gender": 'wo"men'}):
            a, b = exact.similar(pid, k=5, where=where), milvus.similar(pid, k=5, where=where)
            assert a["id"].tolist() == b["id"].tolist() and a["distance"].tolist() == b["distance"].tolist()


# --------------------------------------------------------------------------- failures: one line, bounded time


@pytest.fixture
def silent_port():
    """A local port that accepts connections and never answers (a hung server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held = []
    stop = threading.Event()

    def accept():
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


def cli():
    from fashionrec.cli.milvus import milvus_app

    root = typer.Typer()
    root.callback()(lambda: None)
    root.add_typer(milvus_app, name="milvus")
    return root


def one_line_error(result) -> str:
    output = result.output.strip()
    assert result.exit_code == 1, output
    assert "Traceback" not in output and len(output.splitlines()) == 1, output
    return output


@pytest.mark.parametrize("kind", ["silent", "closed"])
def test_unreachable_server_is_one_line_within_the_timeout(kind, silent_port, tmp_path):
    index = make_index(tmp_path / "alone", n=40)
    if kind == "closed":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # closed again: connections are refused
    else:
        port = silent_port
    started = time.monotonic()
    result = runner.invoke(cli(), ["milvus", "push", str(index), "--uri", f"http://127.0.0.1:{port}",
                                   "--timeout", "2"])
    elapsed = time.monotonic() - started
    message = one_line_error(result)
    assert f"cannot reach the Milvus server at http://127.0.0.1:{port} within 2 s" in message
    assert elapsed < 10


def test_unreachable_server_at_query_time(pushed, silent_port, monkeypatch):
    from fashionrec.cli import app

    index, _ = pushed
    monkeypatch.setenv("FASHIONREC_MILVUS_URI", f"http://127.0.0.1:{silent_port}")  # a server now elsewhere
    record = json.loads((index / "engines" / "milvus" / "euclidean" / "engine.json").read_text())
    assert record["params"]["timeout"] == 3.0  # recorded by the push
    started = time.monotonic()
    result = runner.invoke(app, ["recommend", str(index), "--id", str(IndexFolder.load(index).products["id"][0]),
                                 "--engine", "milvus"])
    message = one_line_error(result)
    assert f"cannot reach the Milvus server at http://127.0.0.1:{silent_port} within 3 s" in message
    assert time.monotonic() - started < 12


def test_dimension_and_another_index_are_refused(milvus_server, tmp_path):
    """Index folders pushed to one collection: each later push takes it over (remaking it for another
    dimension); the earlier folders' queries then refuse it, naming the push that repairs it."""
    small = make_index(tmp_path / "small", n=60, dim=16)
    push_index(small, uri=milvus_server.uri, collection="t_shared", index_type="FLAT")
    other = make_index(tmp_path / "other", n=60, dim=32, seed=1)
    push_index(other, uri=milvus_server.uri, collection="t_shared", index_type="FLAT")  # remade for 32-d
    with pytest.raises(MilvusError, match=r"holds 32-dimension vectors, the index 16-dimension ones; push the index "
                                          r"with `fashionrec milvus push .*small"):
        exact_and_milvus(small)[1].engine("euclidean")
    same_dim = make_index(tmp_path / "same", n=60, dim=32, seed=1, shift=0.1)  # same ids, other vectors
    push_index(same_dim, uri=milvus_server.uri, collection="t_shared", index_type="FLAT")
    with pytest.raises(MilvusError, match="does not hold this index's vectors: it holds the vectors of another push"):
        exact_and_milvus(other)[1].engine("euclidean")


def test_a_collection_fashionrec_did_not_make_is_left_alone(milvus_server, tmp_path):
    from pymilvus import DataType, MilvusClient

    c = client(milvus_server)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=32)
    c.create_collection("t_theirs", schema=schema)
    index = make_index(tmp_path / "mine", n=40)
    with pytest.raises(MilvusError, match="'t_theirs' .* was not made by fashionrec .* left alone"):
        push_index(index, uri=milvus_server.uri, collection="t_theirs", recreate=True)
    assert c.has_collection("t_theirs") and c.describe_collection("t_theirs")["fields"][1]["params"]["dim"] == 32


# --------------------------------------------------------------------------- the commands


def test_cli_push_and_recommend_with_the_milvus_engine(milvus_server, tmp_path):
    from fashionrec.cli import app

    index = make_index(tmp_path / "cli", n=120)
    result = runner.invoke(cli(), ["milvus", "push", str(index), "--uri", milvus_server.uri,
                                   "--index-type", "flat", "--batch-size", "50"])
    assert result.exit_code == 0, result.output
    assert re.search(r"120 vectors in collection 'fashionrec_cli_[0-9a-f]{6}_euclidean'", result.output)
    assert "120 added, 0 changed, 0 removed" in result.output and "recall@10 1.000" in result.output
    again = runner.invoke(cli(), ["milvus", "push", str(index)])
    assert again.exit_code == 0 and "nothing to send" in again.output
    pid = str(IndexFolder.load(index).products["id"][7])
    answers = [runner.invoke(app, ["recommend", str(index), "--id", pid, "-k", "6", "--json", "--engine", engine,
                                   "--where", "articleType=heels"]) for engine in ("exact", "milvus")]
    assert [a.exit_code for a in answers] == [0, 0], answers[1].output
    assert json.loads(answers[0].stdout) == json.loads(answers[1].stdout)


@pytest.mark.parametrize("args,expected", [
    (["--index-type", "ANNOY"], "--index-type ANNOY: expected one of FLAT, HNSW, IVF_FLAT, IVF_SQ8"),
    (["--metric", "manhattan"], "unknown metric 'manhattan'"),
    (["--batch-size", "0"], "--batch-size 0: expected a whole number of rows"),
    (["--user", "alice"], "give both --user and --password"),
    (["--collection", "no-dashes"], "collection name 'no-dashes': expected letters, digits and underscores"),
    (["--uri", "ftp://host:1"], "Milvus URI 'ftp://host:1': expected http(s)://HOST:PORT"),
])
def test_cli_mistakes_are_one_line(args, expected, tmp_path, monkeypatch):
    monkeypatch.delenv("FASHIONREC_MILVUS_PASSWORD", raising=False)
    index = make_index(tmp_path / "x", n=20)
    message = one_line_error(runner.invoke(cli(), ["milvus", "push", str(index), *args]))
    assert expected in message


def test_cli_push_of_a_folder_that_is_not_an_index(tmp_path):
    message = one_line_error(runner.invoke(cli(), ["milvus", "push", str(tmp_path / "nowhere")]))
    assert "index folder" in message and "not found" in message


# --------------------------------------------------------------------------- no server needed


def test_quote_escapes_what_would_end_or_inject():
    assert quote('a "b" \\ c') == '"a \\"b\\" \\\\ c"'
    assert quote("line\nbreak") == '"line\\nbreak"' and quote("é") == '"é"'


def test_filter_translation_spells_values_as_the_catalog_does():
    attrs = pd.DataFrame({"gender": ["Women", "WOMEN", "Men", None], "usage": ["", "Casual", None, "Sports"],
                          "weird-name": ["a", "b", "a", "b"]})
    ids = np.array([10, 11, 12, 13])
    translate = FilterTranslator(attrs, ["gender", "usage"], ids).expression
    assert translate(Filter.from_where({"gender": "women"})) == 'gender in ["WOMEN", "Women"]'
    assert translate(Filter.from_where({"gender": ["men", "kids"], "usage": "casual"})) == \
        'gender in ["Men"] and usage in ["Casual"]'
    assert translate(Filter.from_where({"gender": "kids"})) is None  # no product holds it: nothing matches
    assert translate(Filter.from_where({"usage": ""})) == "id in [10]"  # "" stored like a missing value
    assert translate(Filter.from_where({"weird-name": "a"})) == "id in [10, 12]"  # not a field: by ids


def test_credentials_come_out_of_the_uri(monkeypatch):
    for name in ("FASHIONREC_MILVUS_URI", "FASHIONREC_MILVUS_TOKEN", "FASHIONREC_MILVUS_USER",
                 "FASHIONREC_MILVUS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    assert split_credentials("https://u:p@db.example:443/x") == ("https://db.example:443/x", "u:p")
    assert server_address().uri == "http://127.0.0.1:19530"
    address = server_address("http://u:p@h:1", token=None)
    assert (address.uri, address.token) == ("http://h:1", "u:p") and "p" not in repr(address).replace("http", "")
    monkeypatch.setenv("FASHIONREC_MILVUS_URI", "http://elsewhere:19530")
    monkeypatch.setenv("FASHIONREC_MILVUS_TOKEN", "tok")
    assert server_address() == type(address)("http://elsewhere:19530", "tok")
    assert server_address(user="a", password="b").token == "a:b"
    assert MilvusEngine(uri="http://x:1", token="secret").params()["uri"] == "http://x:1"
    assert "secret" not in json.dumps(MilvusEngine(uri="http://a:secret@x:1").params())


def test_missing_pymilvus_names_the_extra(monkeypatch):
    import fashionrec.search.milvus.connection as connection

    monkeypatch.setitem(sys.modules, "pymilvus", None)  # import fails as when not installed
    with pytest.raises(MilvusError, match=r"needs the pymilvus package .*pip install 'fashionrec\[milvus\]'"):
        connection.connect(server_address("http://127.0.0.1:1"), 1.0)


def test_loading_an_engine_of_other_vectors_is_an_index_folder_error(pushed, tmp_path):
    index, _ = pushed
    copy = tmp_path / "copy"
    shutil.copytree(index, copy, symlinks=True)
    folder = copy / "engines" / "milvus" / "euclidean"
    X = np.zeros((3, 32), np.float32)
    with pytest.raises(IndexFolderError, match="pushed from other vectors .* push it again with `fashionrec milvus "
                                               "push"):
        MilvusEngine.load(folder, X, np.arange(3))


def test_default_collection_names_keep_same_named_folders_apart(tmp_path):
    from fashionrec.search.milvus import default_collection

    a, b = default_collection(tmp_path / "a" / "shoes", "euclidean"), default_collection(tmp_path / "b" / "shoes",
                                                                                            "euclidean")
    assert a != b and a.startswith("fashionrec_shoes_") and a.endswith("_euclidean")
    assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", default_collection(tmp_path / "all-lite0 (copy)", "cosine"))
