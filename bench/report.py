#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Summarise a benchmark session (bench/guest-bench.sh's raw files).

    bench/report.py RAW_DIR OUT_DIR

Writes OUT_DIR/results.md (the table, also printed), OUT_DIR/results.json
(every value) and OUT_DIR/ratios.dat (input of bench/ratios.gp).
Ratios are rust_loop / loop.c of the medians over the rounds, every metric
being "higher is better"; the paired range pairs the k-th loop.c round with
the k-th rust_loop round, which the A B B A order keeps close in time.
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
            figures = dict(data, value=data[SETUP_METRIC[job]])
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


def diagnostics(runs, job):
    """Per driver, the medians of the figures that explain a ratio."""
    names = ("cpu_us_per_io", "ctxt_per_io", "clat_p50_us", "clat_p99_us")
    return {arm: {name: statistics.median(values(runs, arm, job, name)) for name in names}
            for arm in DRIVERS}


def build_rows(runs):
    rows = []
    for bench, desc, job, raw_job, metric, goal in ROWS:
        is_fio = metric in ("iops", "MB/s")
        key = metric if is_fio else "value"
        row = {"bench": bench, "description": desc, "job": job, "unit": metric, "goal": goal}
        for arm in DRIVERS:
            row[arm] = summary(values(runs, arm, job, key))
        row["raw"] = summary(values(runs, "raw", raw_job, key)) if raw_job else None
        c, rust = row["loop"], row["rloop"]
        row["ratio"] = rust["median"] / c["median"]
        paired = [r / l for l, r in zip(c["values"], rust["values"])]
        row["paired_ratio_min"] = min(paired)
        row["paired_ratio_max"] = max(paired)
        row["met"] = row["ratio"] >= goal
        if is_fio:
            row["diagnostics"] = diagnostics(runs, job)
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


def markdown(session, rows, errors, met):
    out = [f"# rust_loop vs loop.c, {session.get('date', '')}", "",
           f"**{TCG_NOTE}**", "",
           f"Kernel {session.get('kernel')}, {session.get('cpus')} vCPUs, "
           f"{session.get('reps')} rounds per driver in A B B A order "
           f"(A = loop.c), {session.get('runtime')} s per fio run (+1 s ramp), "
           f"{session.get('fio')}; backing files on tmpfs in the guest, filled "
           "with random data; udevd stopped in the guest. Values: median "
           "(min–max) over the rounds; ratio: rust_loop / loop.c of the medians "
           "(paired min–max); raw file: the same fio job on the backing file "
           "itself, the ceiling (none for B4: under TCG the file is slower than "
           "the devices at 1 MiB; B3 shares B2's).", "",
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


def main():
    raw_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2])
    session = dict(line.split(" ", 1) for line in (raw_dir / "session.txt").read_text().splitlines())
    runs = load_runs(raw_dir, int(session["cpus"]))
    rows = build_rows(runs)
    errors = setup_errors(runs)
    met = verdicts(rows, errors)
    table = markdown(session, rows, errors, met)
    (out_dir / "results.md").write_text(table)
    (out_dir / "results.json").write_text(json.dumps(
        {"note": TCG_NOTE, "session": session, "rows": rows, "setup_errors": errors,
         "goals_met": met,
         "runs": {f"{arm}/{job}": dict(r) for (arm, job), r in runs.items()}}, indent=1) + "\n")
    with open(out_dir / "ratios.dat", "w") as dat:
        dat.write("# label ratio paired_min paired_max goal\n")
        for row in rows:
            label = f"{row['bench']} {row['job'].split('-', 1)[1]}"
            dat.write(f"\"{label}\" {row['ratio']:.4f} {row['paired_ratio_min']:.4f} "
                      f"{row['paired_ratio_max']:.4f} {row['goal']}\n")
    print(table)


if __name__ == "__main__":
    main()
