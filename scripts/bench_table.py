#!/usr/bin/env python3
"""scripts/bench_table.py — turns the Google Benchmark JSON written by
scripts/bench.sh into docs/performance.md (and a short summary on stdout).

Usage: bench_table.py RESULTS_DIR OUTPUT_MD

RESULTS_DIR holds pin_bench.json, alloc_bench.json, spill_bench.json and
commands.txt (the exact command lines bench.sh ran, one per line). Every
number in the output comes from those files; the machine description comes
from /proc, `df -T` and `uname`. A block between the NOTES markers in an
existing OUTPUT_MD (hand-written findings) is carried over unchanged.
Standard library only.
"""

import json
import os
import platform
import re
import subprocess
import sys

NOTES_BEGIN = "<!-- BEGIN NOTES (kept when bench.sh regenerates this file) -->"
NOTES_END = "<!-- END NOTES -->"

PIN_TARGET_NS = 25.0
PIN_SCALING_TARGETS = {2: 1.8, 8: 1.5}  # own buffers: throughput vs one thread
PIN_SHARED_TARGET = 0.5              # two threads on one buffer, vs one thread
ALLOC_MIMALLOC_TARGET = 3.0          # pool alloc+pin+touch+free / mimalloc, one thread
ALLOC_SCALING_TARGET = 1.6           # two threads' throughput vs one thread
ALLOC_TARGET_SIZES = [(4096, "4 KiB"), (65536, "64 KiB"), (1 << 20, "1 MiB")]
BRANCHES_TARGET = 1.7                # 4 independent branches, 2 inter-op threads vs 1
SWEEP_READER_TARGET = 1.1            # spillway (Lookahead) / the hand-written verifying reader
SPILL_TARGET_RATIO = 0.90  # of raw pwrite/pread, incompressible data
SIZES = ["1MiB", "16MiB", "64MiB"]
CODECS = ["none", "lz4", "adaptive"]
DATA = ["random", "compressible"]
TARGET_CODEC = "adaptive"  # the default DiskOptions::compression


# ---- reading the results -------------------------------------------------------------

def key_of(run_name):
    """'spill/none/random/1MiB/min_time:0.200/real_time' -> 'spill/none/random/1MiB'
    (keeps /threads:N)."""
    parts = [p for p in run_name.split("/")
             if not p.startswith(("min_time:", "min_warmup_time:", "iterations:"))
             and p not in ("real_time", "process_time", "manual_time")]
    return "/".join(parts)


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        return None
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def load(path):
    """Returns (context, {key: {'median': run, 'cv': run or None, 'n': reps,
    'error': message or None}})."""
    with open(path) as f:
        doc = json.load(f)
    runs = {}
    iterations = {}
    for b in doc.get("benchmarks", []):
        key = key_of(b.get("run_name", b["name"]))
        entry = runs.setdefault(key, {"median": None, "cv": None, "n": 1, "error": None})
        if b.get("error_occurred"):
            entry["error"] = b.get("error_message", "error")
            continue
        if b.get("run_type") == "aggregate":
            entry["n"] = b.get("repetitions", 1)
            if b.get("aggregate_name") == "median":
                entry["median"] = b
            elif b.get("aggregate_name") == "cv":
                entry["cv"] = b
        else:
            iterations.setdefault(key, []).append(b)
    # Without aggregates (one repetition, or aggregates not reported): the
    # iteration runs themselves.
    for key, its in iterations.items():
        entry = runs[key]
        if entry["median"] is None:
            its = sorted(its, key=lambda b: b["real_time"])
            entry["median"] = its[len(its) // 2]
            entry["n"] = len(its)
    return doc.get("context", {}), runs


def ns(run):
    scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}[run.get("time_unit", "ns")]
    return run["real_time"] * scale


def gbps(run):
    return run["bytes_per_second"] / 1e9  # decimal GB/s (the console output of benchmark uses 2^30)


def cv_pct(entry, field):
    c = entry.get("cv")
    if not c or field not in c:
        return None
    return 100.0 * c[field]


# ---- machine ---------------------------------------------------------------------------

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ram_gib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return None


def filesystem(path):
    try:
        out = subprocess.run(["df", "-T", path], capture_output=True, text=True, check=True).stdout
        lines = out.strip().splitlines()
        fields = lines[-1].split()
        return f"{fields[1]} ({fields[0]}, mounted on {fields[-1]})"
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def compiler():
    cache = os.path.join("build", "release", "CMakeCache.txt")
    cxx = "c++"
    try:
        with open(cache) as f:
            for line in f:
                if line.startswith("CMAKE_CXX_COMPILER:"):
                    cxx = line.split("=", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
        return out.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return cxx


def git_revision():
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return f"`{rev}`" + (" plus uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---- formatting ------------------------------------------------------------------------

def fmt(x, digits=1):
    if x is None:
        return "n/a"
    return f"{x:.{digits}f}"


NOISY_CV_PCT = 20.0


def with_cv(value_text, cv):
    if cv is None:
        return value_text
    flag = " noisy" if cv > NOISY_CV_PCT else ""
    return f"{value_text} (±{cv:.0f}%{flag})"


def pct(ratio):
    return "n/a" if ratio is None else f"{100 * ratio:.0f}%"


def yes_no(ok):
    return "yes" if ok else "**no**"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


# ---- the report --------------------------------------------------------------------------

def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results, output = sys.argv[1], sys.argv[2]
    ctx_pin, pin = load(os.path.join(results, "pin_bench.json"))
    ctx_alloc, alloc = load(os.path.join(results, "alloc_bench.json"))
    ctx_spill, spill = load(os.path.join(results, "spill_bench.json"))
    with open(os.path.join(results, "commands.txt")) as f:
        commands = [l.rstrip("\n") for l in f if l.strip()]

    def get(runs, key):
        e = runs.get(key)
        if e is None or e["error"] or e["median"] is None:
            return None, e
        return e["median"], e

    md = []
    summary = []
    verdicts = []
    md.append("# Performance")
    md.append("")
    md.append("Measured by `scripts/bench.sh` (Google Benchmark programs in `bench/`). "
              "Every table below is generated by `scripts/bench_table.py` from the JSON of one run; "
              "each spillway number is measured beside its baseline in the same program run. "
              "Values are medians over the repetitions; ± is the coefficient of variation "
              f"across repetitions, marked *noisy* above {NOISY_CV_PCT:.0f}% (the machine may be "
              "shared; rerun before trusting such a number).")
    md.append("")

    # Machine.
    spill_dir = ctx_spill.get("spill_parent", "")
    ram = ram_gib()
    md.append("## Machine and run")
    md.append("")
    md.append(f"- Date: {ctx_pin.get('date', 'unknown')} (pin_bench start), "
              f"{ctx_spill.get('date', 'unknown')} (spill_bench start)")
    md.append(f"- CPU: {cpu_model()}, {os.cpu_count()} cores online "
              f"(benchmark saw {ctx_pin.get('num_cpus', '?')} CPUs at "
              f"{ctx_pin.get('mhz_per_cpu', '?')} MHz), "
              f"L3 {max((c['size'] for c in ctx_pin.get('caches', []) if c.get('level') == 3), default=0) >> 20} MiB")
    md.append(f"- RAM: {fmt(ram)} GiB")
    md.append(f"- Kernel: {platform.system()} {platform.release()}")
    md.append(f"- Spill directory parent: `{spill_dir}`, filesystem {filesystem(spill_dir) if spill_dir else 'unknown'}")
    md.append(f"- Source: commit {git_revision()}")
    md.append(f"- Compiler: {compiler()}; library built with the `release` preset")
    try:
        with open("/proc/loadavg") as f:
            load_end = ", ".join(f.read().split()[:3])
    except OSError:
        load_end = "unknown"
    md.append(f"- Load average (1, 5, 15 min) at the start of pin_bench: "
              f"{', '.join(f'{x:.2f}' for x in ctx_pin.get('load_avg', []))}; "
              f"of spill_bench: {', '.join(f'{x:.2f}' for x in ctx_spill.get('load_avg', []))}; "
              f"at the end of the run: {load_end} (the benchmarks themselves keep 1-2 threads busy)")
    if ctx_pin.get("library_build_type") == "debug":
        md.append("- Google Benchmark prints \"Library was built as DEBUG\": that is Debian's "
                  "libbenchmark 1.7.1 package (the harness), not spillway, which is built Release.")
    md.append("- Command (the first line; it ran the others):")
    md.append("")
    md.append("```")
    md.extend(commands)
    md.append("```")
    md.append("")

    # ---- pin ----
    md.append("## 1. Pin + unpin of a resident buffer (`bench/pin_bench.cpp`)")
    md.append("")
    md.append("A 4 KiB buffer already primary on the tier; the loop body is "
              "`{ Pin p = b.pin(tier, access); DoNotOptimize(p.data()); }`: one atomic increment "
              "and one decrement of the buffer's own state word, and the thread's own counters "
              "(no pool lock). Baseline: two uncontended `std::mutex` lock/unlock round trips plus "
              "one `std::shared_ptr` copy and release — what a pin cost when residency sat under "
              "one mutex and every Pin kept the pool alive. Device is the simulated backend. "
              f"Target: <= {PIN_TARGET_NS:.0f} ns, single thread.")
    md.append("")
    base, base_e = get(pin, "BM_Baseline_TwoMutexRoundTrips_SharedPtrCopy")
    rows = []
    pin_ok = True
    for tier in ["Host", "Device"]:
        for acc in ["Read", "ReadWrite"]:
            r, e = get(pin, f"BM_PinUnpin_{tier}_{acc}")
            if r is None:
                rows.append([f"{tier} / {acc}", "missing", "", "", "**no**"])
                pin_ok = False
                continue
            t = ns(r)
            ok = t <= PIN_TARGET_NS
            pin_ok &= ok
            rows.append([f"{tier} / {acc}", with_cv(fmt(t), cv_pct(e, "real_time")),
                         fmt(ns(base)) if base else "n/a",
                         fmt(t / ns(base), 2) + "x" if base else "n/a", yes_no(ok)])
    md.append(table(["tier / access", "spillway ns", "baseline ns", "spillway / baseline",
                     f"<= {PIN_TARGET_NS:.0f} ns"], rows))
    md.append("")
    verdicts.append(f"pin+unpin <= {PIN_TARGET_NS:.0f} ns (single thread, all four variants): "
                    f"{'MET' if pin_ok else 'MISSED'}")

    md.append("**Threads.** Host / Read pins from several threads at once, each on its own buffer "
              "or all on one buffer. Google Benchmark divides the wall time by the operations of all "
              "threads together, so the time below is the inverse of the combined throughput, and "
              "*vs 1 thread* is that throughput over one thread's. Baselines beside them: the mutex "
              "pair above, and one atomic increment+decrement pair on each thread's own cache line or "
              "on one line all threads share (the floor of any design that counts pins in the buffer).")
    md.append("")
    rows = []
    one, _ = get(pin, "BM_PinUnpin_Host_Read")
    one_shared, _ = get(pin, "BM_PinUnpin_SharedBuffer_Host_Read/threads:1")
    cases = [("own buffers", "BM_PinUnpin_Host_Read", one, [1, 2, 8], PIN_SCALING_TARGETS),
             ("one shared buffer", "BM_PinUnpin_SharedBuffer_Host_Read", one_shared, [1, 2], {2: PIN_SHARED_TARGET})]
    for label, name, ref, counts, targets in cases:
        for n in counts:
            key = name if (n == 1 and name == "BM_PinUnpin_Host_Read") else f"{name}/threads:{n}"
            r, e = get(pin, key)
            if not r:
                rows.append([label, n, "missing", "", "", ""])
                continue
            ratio = ns(ref) / ns(r) if ref else None
            target = targets.get(n)
            verdict = "-" if target is None or ratio is None else yes_no(ratio >= target)
            rows.append([label, n, with_cv(fmt(ns(r), 2), cv_pct(e, "real_time")),
                         f"{ratio:.2f}x" if ratio else "n/a",
                         f">= {target}x" if target else "-", verdict])
            if target is not None:
                verdicts.append(f"pin+unpin, {n} threads on {label}: >= {target}x one thread's throughput: "
                                f"{'MET' if ratio and ratio >= target else 'MISSED'} "
                                f"({f'{ratio:.2f}x' if ratio else 'n/a'})")
    for label, key in [("baseline: mutex pair + shared_ptr", "BM_Baseline_TwoMutexRoundTrips_SharedPtrCopy"),
                       ("baseline: mutex pair + shared_ptr", "BM_Baseline_TwoMutexRoundTrips_SharedPtrCopy/threads:2"),
                       ("baseline: atomic pair, own line", "BM_Baseline_AtomicPair_OwnLine/threads:1"),
                       ("baseline: atomic pair, own line", "BM_Baseline_AtomicPair_OwnLine/threads:2"),
                       ("baseline: atomic pair, one shared line", "BM_Baseline_AtomicPair_SharedLine/threads:2")]:
        r, e = get(pin, key)
        if r:
            n = int(key.rsplit(":", 1)[1]) if "threads:" in key else 1
            rows.append([label, n, with_cv(fmt(ns(r), 2), cv_pct(e, "real_time")), "-", "-", "-"])
    md.append(table(["pins on", "threads", "ns per pin+unpin (all threads)", "vs 1 thread", "target", "met"], rows))
    md.append("")

    # ---- alloc ----
    md.append("## 2. Allocate + free of resident host buffers (`bench/alloc_bench.cpp`)")
    md.append("")
    md.append("Pool: host tier 1 GiB, no device tier, no disk tier, proactive spilling off. "
              "The allocator baselines (glibc malloc, the process's own; jemalloc and mimalloc, "
              "Debian's, loaded with `dlopen` so they replace nothing else) write one byte of "
              "each block so it cannot be elided; the pool's fair counterpart must pin the "
              "buffer to write that byte (allocate, pin ReadWrite, write 1 byte, unpin, free). "
              "Allocate+free alone is shown too. The 2-thread rows share the one pool (each thread "
              "with its own block cache and counters); Google Benchmark divides their wall time by "
              "the operations of both threads, so an allocator that scales perfectly shows half its "
              "1-thread time. Nanoseconds per allocate+free; ratios are pool (alloc+pin+touch+free) "
              f"/ the allocator. Targets, for 4 KiB-1 MiB: <= {ALLOC_MIMALLOC_TARGET:.0f}x mimalloc on one "
              f"thread; two threads >= {ALLOC_SCALING_TARGET}x one thread's throughput. Where a baseline "
              "takes tens of microseconds (glibc above its "
              "32 MiB mmap threshold, jemalloc from its 8 MiB oversize threshold, mimalloc's huge "
              "blocks) it hands the block back to the kernel on every free (`munmap` or "
              "`madvise`) and faults a fresh page on the touch; the pool's arena stays resident.")
    md.append("")
    libs = []
    for lib in ("jemalloc", "mimalloc"):
        info = ctx_alloc.get(lib)
        if info and not info.startswith("missing:"):  # a missing one is named under the table
            libs.append(f"{lib}: {info}")
    if ctx_alloc.get("static_tls_reexec", "no") != "no":
        libs.append(f"alloc_bench re-ran itself with GLIBC_TUNABLES={ctx_alloc['static_tls_reexec']} "
                    "(Debian's jemalloc needs more static TLS than glibc keeps for dlopen)")
    if libs:
        md.append("Baselines loaded: " + "; ".join(libs) + ".")
        md.append("")
    def alloc_ns(run, entry):
        if not run:
            return "n/a"
        t = ns(run)
        return with_cv(fmt(t, 1 if t < 1000 else 0), cv_pct(entry, "real_time"))

    def times(ratio):  # two significant digits below 1 (the kernel-bound large sizes)
        return (f"{ratio:.2g}" if ratio < 1 else fmt(ratio, 1)) + "x"

    baselines = [("BM_Malloc_TouchFree", "glibc malloc"), ("BM_Jemalloc_TouchFree", "jemalloc"),
                 ("BM_Mimalloc_TouchFree", "mimalloc")]
    errors = {}
    rows = []
    for threads in (1, 2):
        suffix = "" if threads == 1 else f"/threads:{threads}"
        for size, label in [(64, "64 B"), (4096, "4 KiB"), (65536, "64 KiB"), (1 << 20, "1 MiB"),
                            (16 << 20, "16 MiB"), (64 << 20, "64 MiB")]:
            pt, pte = get(alloc, f"BM_Pool_AllocTouchFree/{size}{suffix}")
            pf, pfe = get(alloc, f"BM_Pool_AllocFree/{size}{suffix}")
            row = [label, threads, alloc_ns(pt, pte), alloc_ns(pf, pfe)]
            ratios = []
            for bench, name in baselines:
                m, me = get(alloc, f"{bench}/{size}{suffix}")
                if me and me["error"]:
                    errors.setdefault(name, me["error"])
                row.append(alloc_ns(m, me))
                ratios.append(times(ns(pt) / ns(m)) if pt and m else "n/a")
            rows.append(row + ratios)
    md.append(table(["size", "threads", "pool alloc+pin+touch+free ns", "pool alloc+free ns",
                     "glibc malloc+touch+free ns", "jemalloc ns", "mimalloc ns",
                     "pool (touch) / glibc", "pool (touch) / jemalloc", "pool (touch) / mimalloc"],
                    rows))
    md.append("")
    for name, err in errors.items():
        md.append(f"{name}: n/a, {err}")
        md.append("")
    vs_mi, scale = [], []
    for size, label in ALLOC_TARGET_SIZES:
        p1, _ = get(alloc, f"BM_Pool_AllocTouchFree/{size}")
        p2, _ = get(alloc, f"BM_Pool_AllocTouchFree/{size}/threads:2")
        m1, _ = get(alloc, f"BM_Mimalloc_TouchFree/{size}")
        vs_mi.append((label, ns(p1) / ns(m1) if p1 and m1 else None))
        scale.append((label, ns(p1) / ns(p2) if p1 and p2 else None))
    ok = all(v is not None and v <= ALLOC_MIMALLOC_TARGET for _, v in vs_mi)
    verdicts.append(f"allocate+pin+touch+free, one thread, <= {ALLOC_MIMALLOC_TARGET:.0f}x mimalloc: "
                    f"{'MET' if ok else 'MISSED'} (" + ", ".join(
                        f"{l} {v:.1f}x" if v else f"{l} n/a" for l, v in vs_mi) + ")")
    ok = all(v is not None and v >= ALLOC_SCALING_TARGET for _, v in scale)
    verdicts.append(f"allocate+pin+touch+free, two threads >= {ALLOC_SCALING_TARGET}x one thread: "
                    f"{'MET' if ok else 'MISSED'} (" + ", ".join(
                        f"{l} {v:.2f}x" if v else f"{l} n/a" for l, v in scale) + ")")

    # ---- spill / fetch ----
    md.append("## 3. Host -> disk spill and disk -> host fetch (`bench/spill_bench.cpp`)")
    md.append("")
    md.append("Two IO modes, each beside its own baseline. **O_DIRECT** (`DiskOptions::io` = "
              "`direct`; the default `auto` uses it for records of 256 KiB and more where the "
              "filesystem supports it, so every row here is the default's path): every byte "
              "reaches the device and nothing stays in the page cache; baselines `pwrite`/`pread` "
              "through an O_DIRECT descriptor. **Buffered** (`io` = `buffered`): through the page "
              "cache, which absorbs the writes while the machine has memory to spare; baselines "
              "buffered `pwrite`/`pread`. "
              "`spill` times `Buffer::evict(Tier::Disk)` only; between iterations (untimed) a "
              "`pin(Host, ReadWrite)` brings the buffer back and invalidates the disk copy so the "
              "next evict writes. A small second record sits after the measured one in the spill "
              "file, so the released extent is a hole the next spill reuses (the steady state of a "
              "pool with many records). `fetch` times `pin(Host, Read)` of a buffer on disk; the "
              "untimed `evict` in between is free (the Read pin kept the clean disk copy). "
              "Baselines: `pwrite` of the same bytes over an existing file (pages already cached) "
              "and `pread` of a cached file, in the same directory. "
              "`random` is incompressible; `compressible` is stored by LZ4 in about half the "
              "bytes; `sparse` is what a ReLU leaves (float32, half the values exactly zero in no "
              "pattern, the rest uniform in (0, 4)), with the default codec only and no target "
              "of its own (column *stored/raw*: bytes written or read per logical byte, from "
              "PoolStats; 1.00 means the record was stored raw). GB/s are decimal (10^9 B/s).")
    md.append("")

    def paired_base(r):
        """The raw operation timed in the same loop as a *_direct row (PairedRaw)."""
        bps = r.get("raw_bytes_per_second") if r else None
        return {"bytes_per_second": bps} if bps else None

    # The machine's own limits, from the same run: what every ratio below is a fraction of.
    md.append("### Physical limits of this machine (same run)")
    md.append("")
    md.append("`memcpy` between two buffers of the size, both faulted in (in cache at 1 MiB); the raw "
              "file IO of the spill filesystem: through the page cache, timed on its own, and with "
              "O_DIRECT from and into huge-page memory of a pool (the baselines paired with the "
              "`none`/`random` rows below, timed in the same loop as spillway; from scattered 4 KiB "
              "pages O_DIRECT runs at about 1 GB/s here, see the notes); GB/s.")
    md.append("")
    rows = []
    for size in SIZES:
        cells = [size]
        for key in (f"limit/memcpy/{size}", f"raw_pwrite/{size}", f"raw_pread/{size}"):
            r, e = get(spill, key)
            cells.append(with_cv(fmt(gbps(r), 2), cv_pct(e, "bytes_per_second")) if r else "n/a")
        for key in (f"spill_direct/none/random/{size}", f"fetch_direct/none/random/{size}"):
            r, e = get(spill, key)
            b = paired_base(r)
            cells.append(with_cv(fmt(gbps(b), 2), cv_pct(e or {}, "raw_bytes_per_second")) if b else "n/a")
        rows.append(cells)
    md.append(table(["size", "memcpy", "pwrite (page cache)", "pread (page cache)", "pwrite O_DIRECT",
                     "pread O_DIRECT"], rows))
    md.append("")
    rows = []
    for data in DATA + ["sparse"]:
        c, ce = get(spill, f"component/lz4_compress/{data}/16MiB")
        d, de = get(spill, f"component/lz4_decompress/{data}/16MiB")
        if c and d:
            rows.append([data, with_cv(fmt(gbps(c), 2), cv_pct(ce, "bytes_per_second")),
                         with_cv(fmt(gbps(d), 2), cv_pct(de, "bytes_per_second")),
                         fmt(c.get("stored_per_raw"), 2)])
    if rows:
        md.append("LZ4 (the library's, in 1 MiB chunks as the disk tier uses it), 16 MiB of each kind of data:")
        md.append("")
        md.append(table(["data", "compress GB/s", "decompress GB/s", "compressed / raw"], rows))
        md.append("")

    def io_table(kind, base_name):
        rows = []
        paired = kind.endswith("_direct")
        for size in SIZES:
            b, be = get(spill, f"{base_name}/{size}")
            if b is None and be and be.get("error"):
                rows.append([size, "", "", "", be["error"], "", "", ""])
                continue
            for data in DATA + ["sparse"]:
                for codec in CODECS:
                    if data == "sparse" and codec != TARGET_CODEC:
                        continue  # measured with the default codec only
                    r, e = get(spill, f"{kind}/{codec}/{data}/{size}")
                    if r is None:
                        err = e["error"] if e and e["error"] else "missing"
                        rows.append([size, data, codec, err, "", "", "", ""])
                        continue
                    if paired:
                        cv = (e or {}).get("cv") or {}
                        b = paired_base(r)
                        be = {"cv": {"bytes_per_second": cv["raw_bytes_per_second"]}} if "raw_bytes_per_second" in cv else {}
                    ratio = gbps(r) / gbps(b) if b else None
                    target = ("n/a" if ratio is None else
                              "-" if data == "sparse" else
                              yes_no(ratio >= SPILL_TARGET_RATIO) if data == "random" else
                              yes_no(ratio > 1.0))
                    rows.append([size, data, codec,
                                 with_cv(fmt(gbps(r), 2), cv_pct(e, "bytes_per_second")),
                                 with_cv(fmt(gbps(b), 2), cv_pct(be, "bytes_per_second")) if b else "n/a",
                                 fmt(ratio, 2) if ratio is not None else "n/a",
                                 fmt(r.get("stored_per_raw"), 2), target])
        return rows

    hdr_target = f"target (random: >= {SPILL_TARGET_RATIO:.0%}; compressible: > 100%)"
    paired_text = ("Each O_DIRECT row's raw baseline ran in the same loop, taking turns with spillway "
                   "(`PairedRaw` in bench/spill_bench.cpp): this machine's virtual disk drifts by 2-3x "
                   "within seconds, and alternating puts both under the same conditions. The raw "
                   "operation reads into or writes from a pinned buffer of the same pool, because "
                   "O_DIRECT speed here depends on the memory (see the notes).")
    for title, kind, base_name, op, intro in [
            ("Spill (host -> disk), O_DIRECT (the default for records of 256 KiB and more)",
             "spill_direct", "raw_pwrite_direct", ("spill", "raw O_DIRECT pwrite"), paired_text),
            ("Fetch (disk -> host), O_DIRECT", "fetch_direct", "raw_pread_direct",
             ("fetch", "raw O_DIRECT pread"), None),
            ("Spill (host -> disk), buffered", "spill", "raw_pwrite", ("spill", "raw pwrite"), None),
            ("Fetch (disk -> host), buffered", "fetch", "raw_pread", ("fetch", "raw pread"), None)]:
        md.append(f"### {title}")
        md.append("")
        if intro:
            md.append(intro)
            md.append("")
        md.append(table(["size", "data", "codec", f"{op[0]} GB/s", f"{op[1]} GB/s", "ratio",
                         "stored/raw", hdr_target], io_table(kind, base_name)))
        md.append("")

    md.append("### Information: other write baselines")
    md.append("")
    md.append("`spill_tail` is `spill` with the record alone in the file: releasing its extent "
              "truncates the file, so each spill writes into fresh page-cache pages; its "
              "like-for-like baseline is `pwrite` after an (untimed) `ftruncate(0)`. "
              "`pwrite + fdatasync` shows what reaching the device costs on this machine.")
    md.append("")
    rows = []
    for size in SIZES:
        ow, _ = get(spill, f"raw_pwrite/{size}")
        tr, tre = get(spill, f"raw_pwrite_truncated/{size}")
        fs, fse = get(spill, f"raw_pwrite_fdatasync/{size}")
        st, ste = get(spill, f"spill_tail/none/random/{size}")
        rows.append([size,
                     fmt(gbps(ow), 2) if ow else "n/a",
                     with_cv(fmt(gbps(tr), 2), cv_pct(tre, "bytes_per_second")) if tr else "n/a",
                     with_cv(fmt(gbps(fs), 2), cv_pct(fse, "bytes_per_second")) if fs else "n/a",
                     with_cv(fmt(gbps(st), 2), cv_pct(ste, "bytes_per_second")) if st else "n/a",
                     fmt(gbps(st) / gbps(tr), 2) if st and tr else "n/a"])
    md.append(table(["size", "raw pwrite (overwrite) GB/s", "raw pwrite after truncate GB/s",
                     "raw pwrite + fdatasync GB/s", "spill_tail none/random GB/s",
                     "spill_tail / pwrite after truncate"], rows))
    md.append("")

    # Where the time goes: fixed cost + checksum + the raw IO, per size.
    md.append("### Information: where the time goes")
    md.append("")
    md.append("Every record is checksummed (XXH3-64 of the payload) on write and verified on "
              "read, and every move is handed to an IO worker and back. The components below are "
              "measured in the same run: `component/xxh3` is libxxhash's XXH3 as loaded by "
              "libspillway (looked up at run time), `component/spill/4KiB` and "
              "`component/fetch/4KiB` are a whole spill/fetch of a 4 KiB buffer (the fixed cost "
              "of one move). Sum = fixed + checksum + raw IO of the same size; codec none, "
              "random data. Microseconds per operation. Raw records under 4 MiB are hashed in "
              "1 MiB slices just before each slice is written (after it is read), while the "
              "slice is in cache; from 4 MiB a helper thread hashes while the calling thread "
              "writes or reads (tiers/disk/hash_worker.hpp). Either way measured can come out "
              "below the sum.")
    md.append("")
    x16, _ = get(spill, "component/xxh3/16MiB")
    if x16 and x16.get("label"):
        md[-2] += f" The XXH3 measured is `{x16['label']}`."
    fixed = {k: get(spill, f"component/{k}/4KiB")[0] for k in ("spill", "fetch")}
    rows = []
    for kind, base_name in [("spill", "raw_pwrite"), ("fetch", "raw_pread")]:
        for size in SIZES:
            nbytes = int(size[:-3]) << 20
            r, _ = get(spill, f"{kind}/none/random/{size}")
            b, _ = get(spill, f"{base_name}/{size}")
            x, _ = get(spill, f"component/xxh3/{size}")
            f = fixed[kind]
            if not (r and b and x and f):
                rows.append([kind, size, "n/a", "", "", "", "", ""])
                continue
            us = lambda run: nbytes / run["bytes_per_second"] * 1e6
            fixed_us = ns(f) / 1e3
            total = fixed_us + us(x) + us(b)
            rows.append([kind, size, fmt(us(r)), fmt(fixed_us), fmt(us(x)), fmt(us(b)),
                         fmt(total), fmt(us(r) / total, 2)])
    md.append(table(["move", "size", "measured us", "fixed (4 KiB move) us", "XXH3 us",
                     "raw IO us", "sum us", "measured / sum"], rows))
    md.append("")
    lc, _ = get(spill, "component/lz4_compress/compressible/16MiB")
    ld, _ = get(spill, "component/lz4_decompress/compressible/16MiB")
    ratio_run, _ = get(spill, "spill/lz4/compressible/16MiB")
    if lc and ld and ratio_run:
        r = ratio_run.get("stored_per_raw", 0.5)
        c = gbps(lc)
        md.append(f"LZ4 on the compressible data (1 MiB chunks, 16 MiB): compress "
                  f"{fmt(c, 2)} GB/s, decompress {fmt(gbps(ld), 2)} GB/s, stored/raw "
                  f"{fmt(r, 2)}. Writing compressed costs 1/lz4 + r/disk per byte against "
                  f"1/disk raw, so compression can only win when the medium writes slower than "
                  f"lz4 x (1 - r) = **{fmt(c * (1 - r), 2)} GB/s** (one core compressing). "
                  f"Through the page cache this machine writes "
                  f"{fmt(min(gbps(get(spill, f'raw_pwrite/{s}')[0]) for s in SIZES if get(spill, f'raw_pwrite/{s}')[0]), 1)}"
                  f"+ GB/s, and even with fdatasync "
                  f"{fmt(min((gbps(get(spill, f'raw_pwrite_fdatasync/{s}')[0]) for s in SIZES if get(spill, f'raw_pwrite_fdatasync/{s}')[0]), default=None), 1)}"
                  f"+ GB/s.")
        md.append("")

    # Verdicts on the default codec.
    def ratios(kind, base_name, data):
        out = {}
        for size in SIZES:
            r, _ = get(spill, f"{kind}/{TARGET_CODEC}/{data}/{size}")
            b, _ = get(spill, f"{base_name}/{size}")
            if kind.endswith("_direct"):
                b = paired_base(r)
            out[size] = gbps(r) / gbps(b) if r and b else None
        return out

    for kind, base_name, what in [("spill_direct", "raw_pwrite_direct", "spill vs raw pwrite, O_DIRECT (default)"),
                                  ("fetch_direct", "raw_pread_direct", "fetch vs raw pread, O_DIRECT (default)"),
                                  ("spill", "raw_pwrite", "spill vs raw pwrite, buffered"),
                                  ("fetch", "raw_pread", "fetch vs raw pread, buffered")]:
        rr = ratios(kind, base_name, "random")
        ok = all(v is not None and v >= SPILL_TARGET_RATIO for v in rr.values())
        verdicts.append(f"{what}, incompressible, codec {TARGET_CODEC} (default), >= "
                        f"{SPILL_TARGET_RATIO:.0%}: {'MET' if ok else 'MISSED'} ("
                        + ", ".join(f"{s} {pct(v)}" for s, v in rr.items())
                        + ")")
        rc = ratios(kind, base_name, "compressible")
        ok = all(v is not None and v > 1.0 for v in rc.values())
        verdicts.append(f"{what}, 2x-compressible, codec {TARGET_CODEC} (default), > 100%: "
                        f"{'MET' if ok else 'MISSED'} ("
                        + ", ".join(f"{s} {pct(v)}" for s, v in rc.items())
                        + ")")
        # Best codec, for information.
        for data in DATA:
            best = []
            for size in SIZES:
                b, _ = get(spill, f"{base_name}/{size}")
                vals = []
                for codec in CODECS:
                    r, _ = get(spill, f"{kind}/{codec}/{data}/{size}")
                    if kind.endswith("_direct"):
                        b = paired_base(r)
                    if r and b:
                        vals.append((gbps(r) / gbps(b), codec))
                if vals:
                    v, c = max(vals)
                    best.append(f"{size} {100 * v:.0f}% ({c})")
            summary.append(f"  best codec, {what}, {data}: " + ", ".join(best))

    # Graph executor (bench/graph_bench.cpp), when it ran.
    graph_path = os.path.join(results, "graph_bench.json")
    if os.path.exists(graph_path):
        _, graph = load(graph_path)
        md.append("## 4. Graph executor (`bench/graph_bench.cpp`)")
        md.append("")
        md.append("Simulated device tier (host memory): what is measured is the executor and the "
                  "pool's policy, not PCIe. *dispatch*: `Session::run` of a chain of Relu nodes on a "
                  "one-element tensor with the plan cached; ns per executed node is the per-op "
                  "overhead (pin inputs, allocate the output in the pool, unpin, free, hints). "
                  "*mlp*: one training step (forward, gradients, gradient-descent updates) of a "
                  "4-layer MLP (batch 128, width 256); `fits` has a device tier that holds "
                  "everything, `lru` and `lookahead` a device tier of one third of the step's "
                  "device peak; every session runs ops on the hardware's threads "
                  "(`SessionOptions::inter_op_threads` = 0, here 2) with one BLAS thread. "
                  "*branches*: four independent compute-bound branches (a chain of four 256 x 256 "
                  "MatMuls each) summed at the end, with 2 inter-op threads against 1, timed in "
                  "pairs back to back. Targets: lookahead >= 70% of the fitting speed; "
                  f"branches >= {BRANCHES_TARGET}x faster on 2 threads.")
        md.append("")
        rows = []
        for n in ("1", "100"):
            r, e = get(graph, f"graph/dispatch/chain/{n}")
            if r:
                rows.append([f"chain of {n}", with_cv(fmt(ns(r) / 1e3, 2), cv_pct(e, "real_time")) + " µs",
                             fmt(r.get("ns_per_node", 0), 0)])
        if rows:
            md.append(table(["run", "time per run", "ns per node"], rows))
            md.append("")
        fits, _ = get(graph, "graph/mlp/fits")
        rows = []
        for mode in ("fits", "lru", "lookahead"):
            r, e = get(graph, f"graph/mlp/{mode}")
            if not r:
                continue
            speed = ns(fits) / ns(r) if fits else None
            rows.append([mode, fmt(r.get("device_budget_MiB", 0), 2), fmt(r.get("step_peak_MiB", 0), 2),
                         with_cv(fmt(ns(r) / 1e6, 2), cv_pct(e, "real_time")),
                         fmt(r.get("moved_MiB_per_step", 0), 2), pct(speed) if speed else "-"])
        if rows:
            md.append(table(["device tier", "budget MiB", "step peak MiB", "step ms", "moved MiB/step",
                             "speed vs fits"], rows))
            md.append("")
        look, _ = get(graph, "graph/mlp/lookahead")
        if fits and look:
            ok = ns(fits) / ns(look) >= 0.70
            verdicts.append(f"graph MLP step at 1/3 of its device peak, Lookahead >= 70% of fitting: "
                            f"{'MET' if ok else 'MISSED'} ({pct(ns(fits) / ns(look))})")
        br, bre = get(graph, "graph/branches/threads/2")
        if br:
            sp = br.get("speedup_vs_1_thread", 0)
            md.append(table(["run", "inter-op threads", "ms per run", "speedup vs 1 thread"],
                            [["4 independent branches", 2, with_cv(fmt(ns(br) / 1e6, 2), cv_pct(bre, "real_time")),
                              f"{sp:.2f}x"]]))
            md.append("")
            verdicts.append(f"executor, 4 independent branches, 2 inter-op threads >= {BRANCHES_TARGET}x faster "
                            f"than 1: {'MET' if sp >= BRANCHES_TARGET else 'MISSED'} ({sp:.2f}x)")
        rows = []
        for mode in ("leaky", "clear"):
            r, _ = get(graph, f"graph/session_growth/{mode}")
            if r:
                rows.append([mode, fmt(r.get("first_epoch_step_ms", 0), 2), fmt(r.get("last_epoch_step_ms", 0), 2),
                             fmt(r.get("growth_ms_per_epoch", 0), 3), fmt(r.get("graph_nodes", 0), 0)])
        if rows:
            md.append("Session growth (the experiment on a reduced setting: 1,000 samples x 32 features, "
                      "40 epochs x 5 steps, device 256 KiB, host 512 KiB; one run each): mean step time "
                      "of the first and last epoch and its least-squares growth per epoch. The full "
                      "experiment is `scripts/main.sh` ([session-growth.md](session-growth.md)).")
            md.append("")
            md.append(table(["mode", "first epoch step ms", "last epoch step ms", "growth ms/epoch",
                             "graph nodes at end"], rows))
            md.append("")

    # Out-of-core sweep (scripts/bench_sweep.sh), when it ran.
    sweep_path = os.path.join(results, "sweep.jsonl")
    if os.path.exists(sweep_path):
        runs = []
        with open(sweep_path) as f:
            for line in f:
                line = line.strip()
                if line.startswith("{"):
                    runs.append(json.loads(line))
        disk = next((r for r in runs if r["mode"] == "disk"), None)
        mm = next((r for r in runs if r["mode"] == "mmap"), None)
        # The first run of each kind is the table's; later ones are the
        # reader/spillway pairs bench_sweep.sh repeats (SWEEP_PAIR_ROUNDS).
        sw, streams = {}, {}
        for r in runs:
            if r["mode"] == "spillway":
                sw.setdefault(r.get("policy"), r)
            elif r["mode"] == "stream":
                streams.setdefault(r.get("verify"), r)
        pair_ratios = []
        last_reader = None
        for r in runs:
            if r["mode"] == "stream" and r.get("verify") == 1:
                last_reader = r
            elif r["mode"] == "spillway" and r.get("policy") == "lookahead" and last_reader:
                pair_ratios.append(median(r["pass_s"]) / median(last_reader["pass_s"]))
                last_reader = None
        if disk and mm and sw:
            ws, budget = mm["working_set"], mm["budget"]
            bw = max(disk["buffered_read_gbps"], disk.get("direct_read_gbps", 0.0)) * 1e9
            bound = (ws - budget) / bw
            spread_gbps = disk.get("direct_read_spread_gbps", 0.0)
            md.append("## 5. Out-of-core sweep (`bench/sweep_bench.cpp`, `scripts/bench_sweep.sh`)")
            md.append("")
            md.append(f"A working set of {ws / 2**30:.2f} GiB read in 4 MiB blocks, in the same order every pass, "
                      f"with a memory budget of {budget / 2**20:.0f} MiB (a quarter); each run inside a memory "
                      f"cgroup limited to the budget + 128 MiB, so the page cache is held to it too (the kernel "
                      f"gets the 128 MiB as extra cache; spillway's host tier is the budget). Every byte is summed "
                      f"in every mode. *kernel paging*: the data in a file, `mmap`ed. *spillway*: host tier = "
                      f"budget, the rest in its spill file (raw records, O_DIRECT: the default), with next-use hints and a prefetch of "
                      f"the next 4 blocks. *hand-written reader*: no library — plain POSIX that knows the order: "
                      f"the budget keeps the first blocks for good and a ring of 5 places, one IO thread reads "
                      f"the others with O_DIRECT up to 4 blocks ahead and, *verifying*, checks each against its "
                      f"XXH3 kept in memory before the reader may use it (what spillway does on every fetch); "
                      f"*trusting* does not check. *lower bound*: the bytes that must move per pass (working set - budget) "
                      f"/ the faster cold sequential read bandwidth of the same disk measured in the same run "
                      f"({disk['buffered_read_gbps']:.2f} GB/s buffered (summing each block as it goes), "
                      f"{disk['direct_read_gbps']:.2f} GB/s O_DIRECT into one reused block of huge-page memory, 4 MiB reads)")
            if spread_gbps > 0:
                md[-1] += (f"; the second bound divides by the O_DIRECT bandwidth into memory the size of the budget, "
                           f"each block landing in the next place ({spread_gbps:.2f} GB/s), as an out-of-core "
                           f"reader must land them")
            md[-1] += f". Median of {len(mm['pass_s'])} passes after the first."
            md.append("")
            rows = []
            mm_s = median(mm["pass_s"])
            rows.append(["lower bound (transfer into one reused block)", fmt(bound * 1e3, 1), "1.00x", "-", "-"])
            if spread_gbps > 0:
                b2 = (ws - budget) / (spread_gbps * 1e9)
                rows.append(["lower bound (transfer into budget-size memory)", fmt(b2 * 1e3, 1),
                             f"{b2 / bound:.2f}x", "-", "-"])
            for v, name in ((1, "hand-written reader, verifying"), (0, "hand-written reader, trusting")):
                r = streams.get(v)
                if r:
                    t = median(r["pass_s"])
                    rows.append([name, fmt(t * 1e3, 1), f"{t / bound:.2f}x", f"{mm_s / t:.2f}x",
                                 fmt(r["fetched_per_pass"] / 2**20, 0)])
            for pol in ("lookahead", "lru"):
                r = sw.get(pol)
                if not r:
                    continue
                t = median(r["pass_s"])
                rows.append([f"spillway, {pol}", fmt(t * 1e3, 1), f"{t / bound:.2f}x", f"{mm_s / t:.2f}x",
                             fmt(r["fetched_per_pass"] / 2**20, 0)])
            rows.append(["kernel paging (mmap)", fmt(mm_s * 1e3, 1), f"{mm_s / bound:.2f}x", "1.00x", "-"])
            md.append(table(["run", "ms per pass", "vs lower bound", "speed vs mmap", "MiB fetched per pass"], rows))
            md.append("")
            look = sw.get("lookahead")
            if look:
                t = median(look["pass_s"])
                verdicts.append(f"out-of-core sweep, spillway (Lookahead) <= 1.15x the transfer-bound lower bound: "
                                f"{'MET' if t / bound <= 1.15 else 'MISSED'} ({t / bound:.2f}x)")
                verdicts.append(f"out-of-core sweep, spillway (Lookahead) >= 2x faster than kernel paging: "
                                f"{'MET' if mm_s / t >= 2 else 'MISSED'} ({mm_s / t:.2f}x)")
                ver = streams.get(1)
                if ver:
                    tv = median(ver["pass_s"])
                    pr = median(pair_ratios) if pair_ratios else t / tv
                    verdicts.append(f"out-of-core sweep, spillway (Lookahead) within {SWEEP_READER_TARGET}x "
                                    f"of the hand-written verifying reader (median of {max(len(pair_ratios), 1)} "
                                    f"runs back to back): {'MET' if pr <= SWEEP_READER_TARGET else 'MISSED'} "
                                    f"({pr:.2f}x; each pair: " + ", ".join(f"{x:.2f}x" for x in pair_ratios) + ")")
                    md.append(f"Information (no target): spillway (Lookahead) takes {t / tv:.2f}x the time of the "
                              f"hand-written verifying reader, which itself takes {tv / bound:.2f}x the lower bound"
                              + (f" ({tv / b2:.2f}x the bound into budget-size memory)" if spread_gbps > 0 else "")
                              + ".")
                    md.append("")

    # The verdicts go right after the introduction.
    at = md.index("## Machine and run")
    md[at:at] = ["## Targets", ""] + [f"- {v}" for v in verdicts] + [""]

    # Carry the hand-written notes over.
    notes = None
    if os.path.exists(output):
        with open(output) as f:
            old = f.read()
        m = re.search(re.escape(NOTES_BEGIN) + r"(.*?)" + re.escape(NOTES_END), old, re.S)
        if m:
            notes = m.group(1).strip("\n")
    md.append("## Findings")
    md.append("")
    md.append(NOTES_BEGIN)
    md.append(notes if notes else "(No notes yet: write findings for this run here.)")
    md.append(NOTES_END)
    md.append("")

    with open(output, "w") as f:
        f.write("\n".join(md))

    print("== targets")
    for v in verdicts:
        print("  " + v)
    print("== best codec per case (information)")
    for s in summary:
        print(s)
    print(f"== wrote {output}")


if __name__ == "__main__":
    main()
