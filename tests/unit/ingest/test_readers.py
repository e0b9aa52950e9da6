"""Reading landing files: record numbers that hold across splits, damaged records marked, damaged files named."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from shoplake import columns as C
from shoplake.ingest.discover import LandingError, LandingFile
from shoplake.ingest.landing import EVENTS, ORDERS
from shoplake.ingest.readers import (
    CSV_MALFORMED,
    CUT_SHORT,
    HEADER_AGAIN,
    JSON_MALFORMED,
    NOT_UTF8,
    naming_unreadable_files,
    read_landing,
)

DAY = dt.date(2024, 2, 1)
HEADER = "order_id,line_number,user_id,item_id,quantity,unit_price,order_ts,status,country\n"


def _order(i: int, country: str = "UK") -> str:
    return f"o{i},1,u1,i{i},1,2.5,2024-02-01T10:00:00Z,placed,{country}\n"


def _file(path: Path, data: bytes, source: str = "orders") -> LandingFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    ext = "".join(path.suffixes)
    return LandingFile(source, DAY, str(path), ext)


def test_damaged_csv_records_are_marked_and_numbered_and_the_rest_is_whole(spark, tmp_path):
    text = (
        HEADER
        + _order(1)
        + 'o2,1,u1,i2,1,2.5,2024-02-01T10:00:00Z,placed,"United\nKingdom"\n'  # a record over two lines
        + "o3,1,u1\n"  # too few fields
        + HEADER  # the header again: a file appended to itself
        + _order(5).replace("UK", "Fran\udcffce")  # a byte that is not UTF-8
        + _order(6)
        + _order(7)[:-5]  # cut inside its last field, no line break
    )
    f = _file(tmp_path / "orders" / f"{DAY}.csv", text.encode("utf-8", "surrogateescape"))
    rows = {r[C.ROW_NUMBER]: r for r in read_landing(spark, [f], ORDERS).collect()}
    assert sorted(rows) == [1, 2, 3, 4, 5, 6, 7]
    assert {n: r["_damage"] for n, r in rows.items() if r["_damage"]} == {
        3: CSV_MALFORMED,
        4: HEADER_AGAIN,
        5: "country: not valid UTF-8",
        7: CUT_SHORT,
    }
    assert rows[2]["country"] == "United\nKingdom" and rows[6]["order_id"] == "o6"
    assert rows[3]["_corrupt"] == "o3,1,u1" and rows[1][C.RUN_DATE] == DAY
    assert rows[1][C.SOURCE_FILE].endswith(f"orders/{DAY}.csv")


def test_json_lines_are_numbered_by_line_even_when_a_file_is_read_in_many_splits(spark, tmp_path):
    lines = [json.dumps({"event_id": f"e{i}", "user_id": "u", "event_type": "view", "item_id": "i", "event_ts": "2024-02-01T10:00:00Z"})
             for i in range(1, 41)]  # fmt: skip
    lines[9] = ""  # a blank line is no record but still a line
    lines[19] = '{"event_id": "e20", "user_id"'
    lines[29] = '{"event_id": "e30", "query": "caf\udcff"}'
    lines[39] = lines[39][:-1]  # cut, at the end of the file
    data = "\n".join(lines).encode("utf-8", "surrogateescape")
    f = _file(tmp_path / "events" / f"{DAY}.jsonl", data, "events")
    previous = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "512")  # about five lines a split
    try:
        df = read_landing(spark, [f], EVENTS)
        assert df.rdd.getNumPartitions() > 1
        rows = {r[C.ROW_NUMBER]: r for r in df.collect()}
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", previous)
    assert sorted(rows) == [n for n in range(1, 41) if n != 10]
    assert all(rows[n]["event_id"] == f"e{n}" for n in rows if n not in (20, 30, 40))
    assert {n: r["_damage"] for n, r in rows.items() if r["_damage"]} == {20: JSON_MALFORMED, 30: NOT_UTF8, 40: JSON_MALFORMED}
    assert rows[20]["_corrupt"] == '{"event_id": "e20", "user_id"'


def test_gzip_files_are_read_and_a_cut_gzip_file_is_an_error_naming_it(spark, tmp_path):
    body = (HEADER + "".join(_order(i) for i in range(1, 400))).encode()
    good = _file(tmp_path / "orders" / f"{DAY}.csv.gz", gzip.compress(body))
    assert read_landing(spark, [good], ORDERS).count() == 399
    packed = gzip.compress(body)
    cut = _file(tmp_path / "orders" / "2024-02-02.csv.gz", packed[: len(packed) // 2])
    with pytest.raises(LandingError, match=r"orders/2024-02-02\.csv\.gz: unreadable, the gzip data is damaged or cut short"):
        read_landing(spark, [good, cut], ORDERS)
    plain = _file(tmp_path / "events" / "2024-02-03.jsonl.gz", b'{"event_id": "e1"}\n', "events")
    with pytest.raises(LandingError, match=r"events/2024-02-03\.jsonl\.gz: unreadable"):
        read_landing(spark, [plain], EVENTS)


def test_a_file_spark_cannot_read_becomes_one_line_naming_it():
    failure = (
        "An error occurred while calling o51.count.\n: org.apache.spark.SparkException: [FAILED_READ_FILE.NO_HINT] "
        "Encountered error while reading file file:///landing/orders/2024-02-01.parquet.  SQLSTATE: KD001\n\tat x.y(z)\n"
        "Caused by: java.io.IOException: can not read class org.apache.parquet.format.PageHeader\n\tat a.b(c)\n"
    )
    with pytest.raises(LandingError) as err, naming_unreadable_files():
        raise RuntimeError(failure)
    assert str(err.value) == (
        "file:///landing/orders/2024-02-01.parquet: unreadable "
        "(java.io.IOException: can not read class org.apache.parquet.format.PageHeader)"
    )
    with pytest.raises(RuntimeError, match="something else"), naming_unreadable_files():
        raise RuntimeError("something else")
