#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarise a benchmark session (bench/guest-bench.sh's raw files).

    bench/report.py RAW_DIR OUT_DIR

Writes OUT_DIR/results.md (the table, also printed), OUT_DIR/results.json
(every value) and OUT_DIR/ratios.dat (input of bench/ratios.gp).
Ratios are rust_loop / loop.c of the medians over the rounds, every metric
being "higher is better"; the paired range pairs the k-th loop.c round with
the k-th rust_loop round, which the A B B A order keeps close in time.
One table per benchmark group the session ran (session.txt "groups"):
devices (B9, device management cost by population), tmpfs (B1-B8) and disk
(real storage, ext4 and xfs on virtio-blk), the latter with rust_loop / raw
file beside rust_loop / loop.c and CPU per I/O for all three.
"""
import json
import re
import statistics
import sys
from pathlib import Path

# /proc/stat counts CPU time in USER_HZ ticks, always 100 per second.
USER_HZ = 100

# (benchmark, description, device job, raw-file job, metric, goal)
ROWS = [
    ("B1", "4k QD1 psync randread, dio", "B1-dio-randread", "B1-randread", "iops", 1.00),
    ("B1", "4k QD1 psync randwrite, dio", "B1-dio-randwrite", "B1-randwrite", "iops", 1.00),
    ("B1", "4k QD1 psync randread, buffered", "B1-buf-randread", "B1-randread", "iops", 1.00),
    ("B1", "4k QD1 psync randwrite, buffered", "B1-buf-randwrite", "B1-randwrite", "iops", 1.00),
    ("B2", "4k io_uring QD32x2 randread, dio", "B2-randread", "B2-randread", "iops", 1.10),
    ("B2", "4k io_uring QD32x2 randwrite, dio", "B2-randwrite", "B2-randwrite", "iops", 1.10),
    ("B2", "4k io_uring QD32x2 randrw 70/30, dio", "B2-randrw", "B2-randrw", "iops", 1.10),
    ("B3", "4k io_uring QD32x2 randread, buffered", "B3-randread", "B2-randread", "iops", 1.25),
    ("B3", "4k io_uring QD32x2 randwrite, buffered", "B3-randwrite", "B2-randwrite", "iops", 1.25),
    ("B3", "4k io_uring QD32x2 randrw 70/30, buffered", "B3-randrw", "B2-randrw", "iops", 1.25),
    ("B4", "1M io_uring QD8 read, dio", "B4-dio-read", None, "MB/s", 1.00),
    ("B4", "1M io_uring QD8 write, dio", "B4-dio-write", None, "MB/s", 1.00),
    ("B4", "1M io_uring QD8 read, buffered", "B4-buf-read", None, "MB/s", 1.00),
    ("B4", "1M io_uring QD8 write, buffered", "B4-buf-write", None, "MB/s", 1.00),
    ("B6", "4k libaio QD16 randwrite, sparse file, dio", "B6-randwrite", "B6-randwrite", "iops", 1.00),
    ("B7", "attach/detach cycles, LOOP_CONFIGURE", "B7-configure", None, "cycles/s", 2.0),
    ("B7", "attach/detach cycles, SET_FD+SET_STATUS64", "B7-legacy", None, "cycles/s", 2.0),
    ("B8", "64 parallel attaches", "B8-attach", None, "attaches/s", 1.5),
    ("B8", "256 LOOP_CTL_ADD + 256 REMOVE, 64 threads", "B8-ctl", None, "ops/s", 1.5),
]

# The disk group (bench/guest-bench.sh, jobs D-FS-MODE-KIND-RW): (kind,
# description, unit, rws). Raw-file jobs have the device job's name (fio
# --direct=1 on the file beside dio mode, --direct=0 beside buffered mode).
DISK_FS = ("ext4", "xfs")
DISK_MODES = (("dio", "dio"), ("buf", "buffered, cold cache"))
DISK_KINDS = (("qd1", "4k QD1 psync", "iops", ("randread", "randwrite")),
              ("qd32", "4k io_uring QD32x1", "iops", ("randread", "randwrite")),
              ("1m", "1M io_uring QD8", "MB/s", ("read", "write")))


def disk_goals(mode, kind):
    """Goals of issue 10 for a disk-group row: (rust/loop.c, rust/raw or None).
    QD32 direct I/O >= 0.9 x raw and >= 1.2 x loop.c; buffered QD32 with a
    cold cache >= 2 x loop.c; 1 MiB >= 0.9 x raw; every row >= 1.0 x loop.c."""
    if kind == "qd32":
        return (1.2, 0.9) if mode == "dio" else (2.0, None)
    if kind == "1m":
        return 1.0, 0.9
    return 1.0, None


DISK_ROWS = [("D", f"{fs}: {kdesc} {rw}, {mdesc}", f"D-{fs}-{mode}-{kind}-{rw}",
              f"D-{fs}-{mode}-{kind}-{rw}", unit) + disk_goals(mode, kind)
             for fs in DISK_FS for mode, mdesc in DISK_MODES
             for kind, kdesc, unit, rws in DISK_KINDS for rw in rws]

# loop_setup_bench's figure for each of its jobs.
SETUP_METRIC = {"B7-configure": "per_second", "B7-legacy": "per_second",
                "B8-attach": "attach_per_second", "B8-ctl": "ops_per_second"}
# The device prefixes: loop.c (A) and rust_loop (B).
DRIVERS = ("loop", "rloop")
TCG_NOTE = ("Under TCG (no KVM) absolute numbers are meaningless: "
            "only the ratios rust_loop / loop.c mean anything.")
RAW_NAME = re.compile(r"^(\d+)-(loop|rloop|raw)-(.+?)\.(fio\.json|stat|json)$")


def fio_figures(path, ncpus, stat_path):
    """The figures of one fio run: IOPS, MB/s, p50/p99 completion latency,
    and, from the CPU counters sampled in its steady state, CPU time and
    context switches per I/O."""
    job = json.loads(path.read_text())["jobs"][0]
    dirs = [job[d] for d in ("read", "write") if job[d]["io_bytes"]]
    iops = sum(d["iops"] for d in dirs)
    figures = {
        "iops": iops,
        "MB/s": sum(d["bw_bytes"] for d in dirs) / 1e6,
        "clat_p50_us": max(d["clat_ns"]["percentile"]["50.000000"] for d in dirs) / 1e3,
        "clat_p99_us": max(d["clat_ns"]["percentile"]["99.000000"] for d in dirs) / 1e3,
    }
    lines = stat_path.read_text().splitlines()
    before, after = ([int(x) for x in line.split()] for line in lines[:2])
    busy, total, ctxt = (a - b for a, b in zip(after, before))
    seconds = total / USER_HZ / ncpus
    if not iops or not seconds:
        sys.exit(f"report: {path.name}: no I/O done, or no CPU sample")
    figures["cpu_us_per_io"] = busy / USER_HZ / (iops * seconds) * 1e6
    figures["ctxt_per_io"] = ctxt / (iops * seconds)
    return figures


def load_runs(raw_dir, ncpus):
    """{(arm, job): [(round, figures), ...]} sorted by round."""
    runs = {}
    for path in sorted(raw_dir.iterdir()):
        match = RAW_NAME.match(path.name)
        if not match or match[4] == "stat":
            continue
        round_, arm, job = int(match[1]), match[2], match[3]
        if match[4] == "fio.json":
            stat = path.with_name(path.name.replace(".fio.json", ".stat"))
            figures = fio_figures(path, ncpus, stat)
        else:
            data = json.loads(path.read_text())
            figures = dict(data, value=data[SETUP_METRIC[job]]) if job in SETUP_METRIC else data
        runs.setdefault((arm, job), []).append((round_, figures))
    return {key: sorted(value, key=lambda r: r[0]) for key, value in runs.items()}


def summary(values):
    return {"median": statistics.median(values), "min": min(values),
            "max": max(values), "values": values}


def values(runs, arm, job, key):
    found = runs.get((arm, job))
    if not found:
        sys.exit(f"report: no {arm} run of {job} in the raw results")
    return [figures[key] for _, figures in found]


DIAGNOSTIC_NAMES = ("cpu_us_per_io", "ctxt_per_io", "clat_p50_us", "clat_p99_us")


def diagnostics(runs, job, raw_job=None):
    """Per arm, the medians of the figures that explain a ratio."""
    arms = [(arm, job) for arm in DRIVERS] + ([("raw", raw_job)] if raw_job else [])
    return {arm: {name: statistics.median(values(runs, arm, j, name)) for name in DIAGNOSTIC_NAMES}
            for arm, j in arms}


def build_rows(runs, specs=ROWS):
    """One row per spec: (bench, description, job, raw job, metric, goal
    against loop.c[, goal against the raw file])."""
    rows = []
    for bench, desc, job, raw_job, metric, goal, *raw_goal in specs:
        raw_goal = raw_goal[0] if raw_goal else None
        is_fio = metric in ("iops", "MB/s")
        key = metric if is_fio else "value"
        row = {"bench": bench, "description": desc, "job": job, "unit": metric, "goal": goal,
               "raw_goal": raw_goal}
        for arm in DRIVERS:
            row[arm] = summary(values(runs, arm, job, key))
        row["raw"] = summary(values(runs, "raw", raw_job, key)) if raw_job else None
        c, rust = row["loop"], row["rloop"]
        row["ratio"] = rust["median"] / c["median"]
        paired = [r / l for l, r in zip(c["values"], rust["values"])]
        row["paired_ratio_min"] = min(paired)
        row["paired_ratio_max"] = max(paired)
        row["raw_ratio"] = rust["median"] / row["raw"]["median"] if row["raw"] else None
        row["met"] = row["ratio"] >= goal and (raw_goal is None or row["raw_ratio"] >= raw_goal)
        if is_fio:
            row["diagnostics"] = diagnostics(runs, job, raw_job if bench == "D" else None)
        rows.append(row)
    return rows


def setup_errors(runs):
    """EBUSY + EAGAIN per driver, summed over the rounds, for B7 and B8."""
    return {bench: {arm: sum(sum(values(runs, arm, job, "ebusy")) + sum(values(runs, arm, job, "eagain"))
                        for job in jobs)
                    for arm in DRIVERS}
            for bench, jobs in (("B7", ("B7-configure", "B7-legacy")), ("B8", ("B8-attach", "B8-ctl")))}


def fmt(value):
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def spread(s):
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def verdicts(rows, errors):
    """Goal verdict per benchmark: every row at or above its goal; B8 also
    needs rust_loop to have met no EBUSY/EAGAIN."""
    result = {}
    for row in rows:
        result[row["bench"]] = result.get(row["bench"], True) and row["met"]
    result["B8"] = result["B8"] and errors["B8"]["rloop"] == 0
    return result


def session_line(session):
    return (f"Kernel {session.get('kernel')}, {session.get('cpus')} vCPUs, "
            f"{session.get('runtime')} s per fio run (+1 s ramp), {session.get('fio')}; "
            "rounds in A B B A order (A = loop.c); udevd stopped in the guest (running in "
            "the devices group). Values: "
            "median (min–max) over the rounds; ratio: rust_loop / loop.c of the medians "
            "(paired min–max).")


def markdown(session, rows, errors, met):
    out = [f"## tmpfs group: backing files on tmpfs ({session.get('reps')} rounds per driver)", "",
           "Backing files on tmpfs in the guest, filled with random data. Raw file: the "
           "same fio job on the backing file itself, the ceiling (none for B4: under TCG "
           "the file is slower than the devices at 1 MiB; B3 shares B2's).", "",
           "| # | benchmark | unit | loop.c | rust_loop | raw file | rust/loop.c | goal |",
           "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        raw = fmt(row["raw"]["median"]) if row["raw"] else "–"
        out.append(
            f"| {row['bench']} | {row['description']} | {row['unit']} | {spread(row['loop'])} "
            f"| {spread(row['rloop'])} | {raw} | **{row['ratio']:.2f}** "
            f"({row['paired_ratio_min']:.2f}–{row['paired_ratio_max']:.2f}) "
            f"| ≥{row['goal']:.2f} {'met' if row['met'] else 'MISSED'} |")
    for bench in ("B7", "B8"):
        out.append(f"| {bench} | EBUSY + EAGAIN, all rounds | count | {errors[bench]['loop']} "
                   f"| {errors[bench]['rloop']} | – | – | {'0 for rust_loop' if bench == 'B8' else '–'} |")
    out += ["", "Goals per benchmark: " + ", ".join(
        f"{b} {'met' if ok else 'missed'}" for b, ok in met.items()), "",
        "Diagnostics (medians; guest-wide CPU time and context switches in the "
        "steady state of each run, divided by the I/Os done; p99 completion latency):", "",
        "| job | CPU µs/IO loop.c | CPU µs/IO rust | ctx sw/IO loop.c | ctx sw/IO rust "
        "| p99 µs loop.c | p99 µs rust |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        if "diagnostics" in row:
            c, r = row["diagnostics"]["loop"], row["diagnostics"]["rloop"]
            out.append(f"| {row['job']} | {c['cpu_us_per_io']:.1f} | {r['cpu_us_per_io']:.1f} "
                       f"| {c['ctxt_per_io']:.2f} | {r['ctxt_per_io']:.2f} "
                       f"| {fmt(c['clat_p99_us'])} | {fmt(r['clat_p99_us'])} |")
    return "\n".join(out) + "\n"


def disk_markdown(session, rows):
    disks = "; ".join(f"{fs}: {session[f'disk_{fs}']}" for fs in DISK_FS if f"disk_{fs}" in session)
    out = [f"## disk group: backing files on ext4 and xfs on virtio-blk "
           f"({session.get('disk_reps')} rounds per driver)", "",
           "A 256 MiB backing file written in full with random data, on ext4 and on xfs "
           "on a virtio-blk disk each (QEMU cache=none)"
           + (f" ({disks})" if disks else "") + ". fio on the device always uses "
           "--direct=1; \"dio\" and \"buffered\" are the device's mode. Raw file: the same "
           "job on the backing file, with --direct=1 beside dio mode and --direct=0 beside "
           "buffered mode. Every run starts with cold caches (sync, drop_caches). Goals "
           "(issue 10): QD32 dio ≥ 1.2 × loop.c and ≥ 0.9 × raw; buffered QD32 ≥ 2 × loop.c; "
           "1 MiB ≥ 0.9 × raw; every row ≥ 1.0 × loop.c. CPU µs/IO: guest-wide CPU time "
           "in the steady state of the run divided by the I/Os done (2 vCPUs; idle time "
           "waiting for the disk is not counted).", "",
           "| benchmark | unit | loop.c | rust_loop | raw file | rust/loop.c | goal "
           "| rust/raw | goal | CPU µs/IO loop.c / rust / raw | verdict |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        d = row["diagnostics"]
        raw_goal = f"≥{row['raw_goal']:.2f}" if row["raw_goal"] is not None else "–"
        out.append(
            f"| {row['description']} | {row['unit']} | {spread(row['loop'])} "
            f"| {spread(row['rloop'])} | {spread(row['raw'])} | **{row['ratio']:.2f}** "
            f"({row['paired_ratio_min']:.2f}–{row['paired_ratio_max']:.2f}) "
            f"| ≥{row['goal']:.2f} | {row['raw_ratio']:.2f} | {raw_goal} "
            f"| {d['loop']['cpu_us_per_io']:.1f} / {d['rloop']['cpu_us_per_io']:.1f} "
            f"/ {d['raw']['cpu_us_per_io']:.1f} | {'met' if row['met'] else 'MISSED'} |")
    met = sum(row["met"] for row in rows)
    out += ["", f"Disk-group rows meeting their goals: {met} of {len(rows)}.", "",
            "Diagnostics (medians; context switches per I/O and p99 completion latency):", "",
            "| job | ctx sw/IO loop.c | ctx sw/IO rust | ctx sw/IO raw | p99 µs loop.c "
            "| p99 µs rust | p99 µs raw |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        c, r, w = (row["diagnostics"][arm] for arm in ("loop", "rloop", "raw"))
        out.append(f"| {row['job']} | {c['ctxt_per_io']:.2f} | {r['ctxt_per_io']:.2f} "
                   f"| {w['ctxt_per_io']:.2f} | {fmt(c['clat_p99_us'])} "
                   f"| {fmt(r['clat_p99_us'])} | {fmt(w['clat_p99_us'])} |")
    return "\n".join(out) + "\n"


# B9 (the devices group): per population, the cost of each operation (ms,
# lower is better), from loop_setup_bench's "population" command.
B9_JOB = "B9-population"
B9_OPS = (("add_ms", "LOOP_CTL_ADD(-1)"), ("remove_ms", "LOOP_CTL_REMOVE"),
          ("get_free_bind_unbind_ms", "GET_FREE + LOOP_CONFIGURE + LOOP_CLR_FD"))
# rust_loop / loop.c may exceed 1.0 by this much (TCG noise) and still meet
# the goal; the same margin applies to its growth against loop.c's.
B9_NOISE = 1.10


def population_rows(runs):
    """One row per (operation, population): per-driver medians over the rounds
    of each round's median, the ratio rust_loop / loop.c, and each driver's
    growth (its cost over its cost at the smallest population). Goal (issue
    13): ratio <= 1.10 and rust_loop's growth <= 1.10 x loop.c's."""
    points = {arm: [] for arm in DRIVERS}
    for arm in DRIVERS:
        for _, data in runs.get((arm, B9_JOB), []):
            points[arm].append({p["devices"]: p for p in data["points"]})
        if not points[arm]:
            sys.exit(f"report: no {arm} run of {B9_JOB} in the raw results")
    sizes = sorted(points["loop"][0])
    rows = []
    for key, desc in B9_OPS:
        base = {}
        for size in sizes:
            row = {"op": key, "description": desc, "devices": size}
            for arm in DRIVERS:
                row[arm] = summary([r[size][key] for r in points[arm] if size in r])
                base.setdefault(arm, row[arm]["median"])
                row[f"{arm}_growth"] = row[arm]["median"] / base[arm]
            row["ratio"] = row["rloop"]["median"] / row["loop"]["median"]
            row["met"] = (row["ratio"] <= B9_NOISE
                          and row["rloop_growth"] <= B9_NOISE * row["loop_growth"])
            rows.append(row)
    return rows


def population_markdown(session, rows):
    out = [f"## devices group (B9): device management by population "
           f"({session.get('devices_reps')} rounds per driver, "
           f"{session.get('devices_samples')} samples per operation and population)", "",
           "All devices unbound; `udevd` running and settled before each step. Cost per "
           "operation in ms: median (min–max over the rounds) of each round's median. "
           "Growth: the cost over the same driver's cost at the smallest population. Goal "
           "(issue 13): rust_loop ≤ loop.c (ratio ≤ 1.10, TCG noise) and growth no faster "
           "than loop.c's (≤ 1.10 × loop.c's growth) at every population.", "",
           "| operation | devices | loop.c ms | rust_loop ms | rust/loop.c | growth loop.c "
           "| growth rust | verdict |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        out.append(f"| {row['description']} | {row['devices']:,} | {spread(row['loop'])} "
                   f"| {spread(row['rloop'])} | **{row['ratio']:.2f}** "
                   f"| {row['loop_growth']:.2f} | {row['rloop_growth']:.2f} "
                   f"| {'met' if row['met'] else 'MISSED'} |")
    met = sum(row["met"] for row in rows)
    out += ["", f"B9 rows meeting the goal: {met} of {len(rows)}."]
    return "\n".join(out) + "\n"


def main():
    raw_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    session = dict(line.split(" ", 1) for line in (raw_dir / "session.txt").read_text().splitlines())
    groups = session.get("groups", "tmpfs").split()
    runs = load_runs(raw_dir, int(session["cpus"]))
    rows, errors, met, disk_rows, population = [], None, None, [], []
    parts = [f"# rust_loop vs loop.c, {session.get('date', '')}", "",
             f"**{TCG_NOTE}**", "", session_line(session), ""]
    if "devices" in groups:
        population = population_rows(runs)
        parts.append(population_markdown(session, population))
    if "tmpfs" in groups:
        rows = build_rows(runs)
        errors = setup_errors(runs)
        met = verdicts(rows, errors)
        parts.append(markdown(session, rows, errors, met))
    if "disk" in groups:
        disk_rows = build_rows(runs, DISK_ROWS)
        parts.append(disk_markdown(session, disk_rows))
    table = "\n".join(parts)
    (out_dir / "results.md").write_text(table)
    (out_dir / "results.json").write_text(json.dumps(
        {"note": TCG_NOTE, "session": session, "rows": rows, "setup_errors": errors,
         "goals_met": met, "disk_rows": disk_rows, "population_rows": population,
         "runs": {f"{arm}/{job}": dict(r) for (arm, job), r in runs.items()}}, indent=1) + "\n")
    with open(out_dir / "ratios.dat", "w") as dat:
        dat.write("# label ratio paired_min paired_max goal\n")
        for row in rows + disk_rows:
            label = (f"{row['bench']} {row['job'].split('-', 1)[1]}" if row["bench"] != "D"
                     else row["job"][2:])
            dat.write(f"\"{label}\" {row['ratio']:.4f} {row['paired_ratio_min']:.4f} "
                      f"{row['paired_ratio_max']:.4f} {row['goal']}\n")
    print(table)


if __name__ == "__main__":
    main()
