//! The e2e bench's report: the table (the machine and git state come from
//! machine.rs).
//!
//! Design: everything reads the one JSON object the bench writes, so the
//! table and bench-results/e2e.json can never disagree. One column per
//! (shape, spool) that ran; the first table has the figures, then
//! details, the verdicts and, when profiled, the per-stage breakdown.
//!
//! Must never: fail the run; a missing figure prints as `-`.

use serde_json::Value;

use super::profile::BUCKETS;
use super::{
    col_name, TARGET_MANY_FILES, TARGET_MIB_PER_CORE_ONE, TARGET_P99_MS, TARGET_RSS_SPOOL,
    TARGET_SPOOL_OVERHEAD, TARGET_VS_FLOOR, TARGET_VS_ONE_FILE,
};

pub fn f(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "meets"
    } else {
        "MISSES"
    }
}

/// `v` with `prec` decimals, `-` when missing.
fn num(v: f64, prec: usize) -> String {
    if v.is_finite() {
        format!("{v:.prec$}")
    } else {
        "-".into()
    }
}

/// A ratio as `1.23×`, `-` when missing.
fn times(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.2}×")
    } else {
        "-".into()
    }
}

/// The detail rows: label, JSON path in the phase's figures, decimals.
type Detail = (&'static str, &'static [&'static str], usize);

const THROUGHPUT_DETAILS: &[Detail] = &[
    ("input KiB per file", &["input_kib_per_file"], 0),
    ("lines", &["lines"], 0),
    ("lines/s", &["lines_per_s"], 0),
    ("MiB/s (wall)", &["mib_per_s"], 1),
    ("agent CPU s", &["agent_cpu_s"], 2),
    ("agent cores busy", &["agent_cores"], 2),
    ("drain s to 99% of lines", &["drain_s_to_99pct"], 2),
    (
        "agent ctx switches / 1k lines",
        &["agent_vol_ctxt_switches_per_1k_lines"],
        0,
    ),
    ("pushes", &["push_stats", "pushes"], 0),
    ("fake-Loki+checker CPU s", &["receiver_cpu_s"], 2),
];

const LATENCY_DETAILS: &[Detail] = &[
    ("lines/s achieved", &["achieved_rate"], 0),
    ("p90 ms", &["p90_ms"], 1),
    ("p99.9 ms", &["p999_ms"], 1),
    ("max ms (incl. warm-up)", &["max_ms_all_lines"], 1),
    ("max sampled RSS MiB (VmRSS)", &["max_sampled_rss_mib"], 1),
    ("agent cores busy", &["agent_cores"], 3),
    (
        "agent ctx switches / 1k lines",
        &["agent_vol_ctxt_switches_per_1k_lines"],
        0,
    ),
];

/// One column: a shape's figures with the spool off or on.
struct Col<'a> {
    /// `500 files+spool`: in the verdicts and the profile's headings.
    name: String,
    /// `500 +spool`: the table's header.
    short: String,
    /// The shape's floor (support/floor.rs), MiB per CPU-s.
    floor: f64,
    /// The shape's bare loop (support/bare.rs), MiB per CPU-s.
    bare: f64,
    thr: &'a Value,
    lat: &'a Value,
}

const LABEL: usize = 36;
const CELL: usize = 13;

fn row(cols: &[Col], label: &str, target: &str, cell: impl Fn(&Col) -> String) {
    let cells: Vec<String> = cols.iter().map(|c| format!("{:>CELL$}", cell(c))).collect();
    println!("{label:<LABEL$}{}   {target}", cells.join(""));
}

/// Lost / duplicated / corrupted lines over a column's phases.
fn losses(c: &Col) -> String {
    let sum = |key: &str| -> f64 {
        [c.thr, c.lat]
            .iter()
            .filter(|v| v.is_object())
            .map(|v| f(v, &["check", key]))
            .sum()
    };
    if !c.thr.is_object() && !c.lat.is_object() {
        return "-".into();
    }
    format!(
        "{} / {} / {}",
        num(sum("missing"), 0),
        num(sum("duplicates"), 0),
        num(sum("corrupt") + sum("unparsed"), 0)
    )
}

pub fn print_table(results: &Value) {
    println!();
    println!(
        "tailtrace e2e — {} — commit {}{}",
        results["machine"],
        results["git_commit"].as_str().unwrap_or("?"),
        if results["git_dirty"] == true {
            " (dirty)"
        } else {
            ""
        }
    );
    let mut cols = Vec::new();
    for s in results["shapes"].as_array().into_iter().flatten() {
        let files = s["files"].as_u64().unwrap_or(0) as usize;
        for (sfx, spool) in [("", false), ("_spool", true)] {
            let (thr, lat) = (&s[format!("throughput{sfx}")], &s[format!("latency{sfx}")]);
            if thr.is_object() || lat.is_object() {
                cols.push(Col {
                    name: col_name(files, spool),
                    short: if spool {
                        format!("{files} +spool")
                    } else {
                        col_name(files, false)
                    },
                    floor: f(s, &["floor", "mib_per_cpu_s"]),
                    bare: f(s, &["bare_loop", "mib_per_cpu_s"]),
                    thr,
                    lat,
                });
            }
        }
    }
    let rate = f(results, &["config", "rate_lines_per_s"]);
    let rss_target = TARGET_RSS_SPOOL
        .iter()
        .map(|(n, mib)| format!("≤ {mib} at {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    row(&cols, "", "target", |c| c.short.clone());
    let t = |c: &Col, key: &str, prec: usize| num(f(c.thr, &[key]), prec);
    row(&cols, "input drained (MiB in wall s)", "", |c| {
        format!(
            "{} in {}s",
            t(c, "input_mib", 0),
            num(f(c.thr, &["drain_s"]), 1)
        )
    });
    row(
        &cols,
        "MiB per agent CPU-s",
        &format!("≥ {TARGET_MIB_PER_CORE_ONE} (1 file)"),
        |c| t(c, "mib_per_core_s", 1),
    );
    row(&cols, "agent CPU-s per GiB", "", |c| {
        t(c, "agent_cpu_s_per_gib", 2)
    });
    row(&cols, "floor (read + snappy) MiB per CPU-s", "", |c| {
        num(c.floor, 0)
    });
    row(
        &cols,
        "agent CPU per byte vs the floor",
        &format!("≤ {TARGET_VS_FLOOR}× (1 file)"),
        |c| times(f(c.thr, &["cpu_vs_floor"])),
    );
    row(&cols, "bare loop (one thread) MiB per CPU-s", "", |c| {
        num(c.bare, 0)
    });
    row(&cols, "agent CPU per byte vs the bare loop", "", |c| {
        times(f(c.thr, &["cpu_vs_bare"]))
    });
    row(
        &cols,
        "CPU per GiB vs 1 file",
        &format!("≤ {TARGET_VS_ONE_FILE}× at {TARGET_MANY_FILES} files"),
        |c| times(f(c.thr, &["cpu_per_gib_vs_1_file"])),
    );
    row(
        &cols,
        "spool's CPU per GiB / without",
        &format!("≤ {TARGET_SPOOL_OVERHEAD}×"),
        |c| times(f(c.thr, &["spool_cpu_per_gib_vs_off"])),
    );
    row(
        &cols,
        "peak RSS MiB, bulk drain",
        &format!("spool: {rss_target}"),
        |c| t(c, "peak_rss_mib", 1),
    );
    row(
        &cols,
        &format!("peak RSS MiB at {rate:.0} lines/s"),
        &format!("spool: {rss_target}"),
        |c| num(f(c.lat, &["peak_rss_mib"]), 1),
    );
    row(
        &cols,
        &format!("agent cores busy at {rate:.0} lines/s"),
        "",
        |c| num(f(c.lat, &["agent_cores"]), 3),
    );
    row(
        &cols,
        &format!("latency p50 / p99 ms at {rate:.0}/s"),
        &format!("p99 ≤ {TARGET_P99_MS}"),
        |c| {
            format!(
                "{} / {}",
                num(f(c.lat, &["p50_ms"]), 0),
                num(f(c.lat, &["p99_ms"]), 0)
            )
        },
    );
    row(
        &cols,
        "lost / duplicated / corrupt",
        "0 (else FAIL)",
        losses,
    );

    println!("details, throughput (pre-written input)");
    for &(label, key, prec) in THROUGHPUT_DETAILS {
        row(&cols, &format!("  {label}"), "", |c| {
            num(f(c.thr, key), prec)
        });
    }
    let range = |v: &Value, key: &str, prec: usize| -> String {
        let xs: Vec<f64> = v[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_f64)
            .collect();
        let (lo, hi) = xs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &x| {
                (l.min(x), h.max(x))
            });
        if xs.len() > 1 {
            format!("{}–{}", num(lo, prec), num(hi, prec))
        } else {
            "-".into()
        }
    };
    if cols
        .iter()
        .any(|c| c.thr["repeat"].as_u64().is_some_and(|n| n > 1))
    {
        row(&cols, "  runs (E2E_REPEAT; median shown)", "", |c| {
            num(f(c.thr, &["repeat"]), 0)
        });
        row(&cols, "  agent CPU s, range of runs", "", |c| {
            range(c.thr, "runs_agent_cpu_s", 2)
        });
        row(&cols, "  peak RSS MiB, range of runs", "", |c| {
            range(c.thr, "runs_peak_rss_mib", 1)
        });
    }
    println!("details, latency (paced writer)");
    for &(label, key, prec) in LATENCY_DETAILS {
        row(&cols, &format!("  {label}"), "", |c| {
            num(f(c.lat, key), prec)
        });
    }

    println!("targets (issue #11; measured, not asserted):");
    for t in results["targets"].as_array().into_iter().flatten() {
        println!(
            "  {:<44} {:<16} {:>9}  {}",
            t["target"].as_str().unwrap_or(""),
            t["column"].as_str().unwrap_or(""),
            num(f(t, &["measured"]), 2),
            t["verdict"].as_str().unwrap_or("")
        );
    }
    print_profile(&cols, results);
}

/// The per-stage breakdown, when the throughput phases were profiled.
fn print_profile(cols: &[Col], results: &Value) {
    if let Some(note) = results["config"]["profile_note"].as_str() {
        println!("{note}");
    }
    if !cols.iter().any(|c| c.thr["profile"].is_object()) {
        return;
    }
    println!(
        "where the agent's CPU goes (perf, bulk drain, % of samples by leaf symbol; \
         profiled runs: the figures above include perf's overhead)"
    );
    fn p<'a>(c: &Col<'a>) -> &'a Value {
        &c.thr["profile"]
    }
    row(cols, "", "", |c| c.short.clone());
    row(cols, "  samples", "", |c| {
        p(c)["samples"]
            .as_u64()
            .map_or_else(|| "-".into(), |n| n.to_string())
    });
    for b in BUCKETS {
        row(cols, &format!("  {b}"), "", |c| {
            num(f(p(c), &["buckets_pct", b]), 1)
        });
    }
    for c in cols {
        let prof = p(c);
        if let Some(why) = prof["skipped"].as_str() {
            println!("{}: profile skipped: {why}", c.name);
            continue;
        }
        if !prof.is_object() {
            continue;
        }
        println!("top symbols, {}:", c.name);
        for s in prof["top_symbols"]
            .as_array()
            .into_iter()
            .flatten()
            .take(12)
        {
            let mut sym = s["symbol"].as_str().unwrap_or("").to_string();
            if sym.chars().count() > 90 {
                sym = sym.chars().take(89).collect::<String>() + "…";
            }
            println!(
                "  {:>5.1}%  {:<24} {sym}",
                f(s, &["pct"]),
                s["bucket"].as_str().unwrap_or("")
            );
        }
        let pairs = |key: &str| -> String {
            prof[key]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| format!("{} {:.1}%", p[0].as_str().unwrap_or("?"), f(&p[1], &[])))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  threads: {}", pairs("threads_pct"));
        println!("  kernel by system call: {}", pairs("kernel_syscalls_pct"));
    }
}
