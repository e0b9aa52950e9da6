"""The scale benchmark's measurements: peak memory, Spark stages' rows read, rows written, bytes on disk per table."""

from __future__ import annotations

import threading

#: Seconds between two memory samples.
SAMPLE_SECONDS = 0.25


class MemorySampler:
    """Peak memory of this process and of the processes it started, sampled in a thread.

    ``python``: this driver's RSS; ``jvm``: the Spark JVM's RSS and ``jvm_heap`` the bytes
    of its heap in use (the RSS follows ``spark.driver.memory`` more than the data);
    ``others``: the proportional set size of every other descendant (Python workers,
    whose pages shared with the daemon they fork from count once); ``total``: their sum.
    """

    def __init__(self, interval: float = SAMPLE_SECONDS):
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self._interval = interval
        self._lock = threading.Lock()
        self._peak: dict[str, int] = {}
        self._jvm_pid: int | None = None
        self._heap = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def watch_jvm(self, spark) -> None:
        """Sample the JVM of ``spark``: its RSS, its heap, and which of its children to count."""
        self._jvm_pid = spark.sparkContext._gateway.proc.pid
        self._heap = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getMemoryMXBean()

    def sample(self) -> dict[str, int]:
        out = {"python": self._me.memory_info().rss, "jvm": 0, "jvm_heap": 0, "others": 0}
        for child in self._me.children(recursive=True):
            try:
                if child.pid == self._jvm_pid:
                    out["jvm"] = child.memory_info().rss
                elif child.ppid() == self._jvm_pid and not child.name().startswith("python"):
                    # What the JVM spawns besides the Python daemon (chmod, through Hadoop's shell on a machine
                    # without its native library) shows the JVM's own memory until it execs.
                    continue
                elif child.name() != "java":
                    out["others"] += child.memory_full_info().pss
            except self._psutil.Error:
                continue
        if self._heap is not None:
            try:
                out["jvm_heap"] = int(self._heap.getHeapMemoryUsage().getUsed())
            except Exception:  # noqa: BLE001 - the gateway closes when the session stops
                pass
        out["total"] = out["python"] + out["jvm"] + out["others"]
        return out

    def _add(self, sample: dict[str, int]) -> None:
        with self._lock:
            for key, value in sample.items():
                self._peak[key] = max(self._peak.get(key, 0), value)

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            self._add(self.sample())

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def reset(self) -> None:
        """Start a new peak from the current usage."""
        sample = self.sample()
        with self._lock:
            self._peak = sample

    def peak(self) -> dict[str, int]:
        """The peak of each figure since :meth:`reset`."""
        self._add(self.sample())
        with self._lock:
            return dict(self._peak)


class SparkStages:
    """Input records of the Spark stages run since a mark, from the driver's status store (what the Spark UI shows)."""

    def __init__(self, spark):
        self._sc = spark.sparkContext
        self._mark = -1

    def _stages(self):
        """Every stage the store retains, newest first."""
        gateway = self._sc._gateway
        store = self._sc._jsc.sc().statusStore()
        stages = store.stageList(None, False, False, gateway.new_array(gateway.jvm.double, 0), None)
        return gateway.jvm.scala.jdk.javaapi.CollectionConverters.asJava(stages)

    def mark(self) -> None:
        newest = next(iter(self._stages()), None)
        self._mark = -1 if newest is None else int(newest.stageId())

    def since_mark(self) -> dict:
        """``records`` read by the completed stages since the mark, how many ``stages``, and whether the store held them all."""
        records, ids = 0, set()
        oldest, reached = None, False
        for stage in self._stages():
            stage_id = int(stage.stageId())
            if stage_id <= self._mark:
                reached = True
                break
            oldest = stage_id
            if stage.status().toString() == "COMPLETE":
                records += int(stage.inputRecords())
                ids.add(stage_id)
        # The store keeps the newest spark.ui.retainedStages stages: past that, the oldest of the step's are gone.
        complete = reached or oldest is None or oldest == self._mark + 1
        return {"records": records, "stages": len(ids), "complete": complete}


def table_versions(lake) -> dict[str, int | None]:
    """The newest version of every table of the catalog (None: no table)."""
    from shoplake.lake.catalog import all_specs

    return {spec.full_name: lake.current_version(spec) for spec in all_specs()}


def rows_written(lake, before: dict[str, int | None]) -> dict[str, int]:
    """Rows of the commits made since ``before`` (:func:`table_versions`), per table written (commits that count none, such as the run manifest's, left out)."""
    out = {}
    for table, version in table_versions(lake).items():
        old = before.get(table)
        if version is None or version == old:
            continue
        first = 0 if old is None else old + 1
        commits = [e for e in lake.history(table, limit=version - first + 1) if int(e["version"]) >= first]
        counted = [int(e["shoplake.rows"]) for e in commits if e.get("shoplake.rows") is not None]
        if counted:
            out[table] = sum(counted)
    return out


def folder_bytes(uri: str, storage_options=None) -> tuple[int, int]:
    """Bytes and number of the files under a folder (every file: data, logs, checkpoints)."""
    import pyarrow.fs as pafs

    from shoplake.lake.files import filesystem

    fs, root = filesystem(uri, storage_options)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    files = [i for i in infos if i.type == pafs.FileType.File]
    return sum(i.size for i in files), len(files)


def table_bytes(lake) -> dict[str, int]:
    """Bytes on disk of every table of the catalog that has a folder."""
    from shoplake.lake.catalog import all_specs

    out = {}
    for spec in all_specs():
        size, files = folder_bytes(lake.uri(spec), lake.storage_options)
        if files:
            out[spec.full_name] = size
    return out


def layer_bytes(tables: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for table, size in tables.items():
        layer = table.split(".", 1)[0]
        out[layer] = out.get(layer, 0) + size
    return out


# ---------------------------------------------------------------- one scale
