//! The e2e bench's report: the table (the machine and git state come from
//! machine.rs).
//!
//! Design: everything reads the one JSON object the bench writes, so the
//! table and bench-results/e2e.json can never disagree.
//!
//! Must never: fail the run; a missing figure prints as NaN.

use serde_json::Value;

use super::{
    TARGET_MIB_PER_CORE, TARGET_MIB_PER_CORE_MANY, TARGET_P99_MS, TARGET_RSS_MIB,
    TARGET_RSS_MIB_SPOOL,
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

pub fn print_table(results: &Value) {
    println!();
    println!("tailtrace e2e — {}", results["machine"]);
    // Columns: each shape, spool off and on (when run).
    let mut cols: Vec<(&str, &str, String)> = Vec::new();
    for (shape, name) in [("one_file", "1 file"), ("many_files", "many files")] {
        for (sfx, tag) in [("", ""), ("_spool", "+spool")] {
            if results[shape].get(format!("throughput{sfx}")).is_some() {
                cols.push((shape, sfx, format!("{name}{tag}")));
            }
        }
    }
    let head: Vec<String> = cols.iter().map(|c| format!("{:>13}", c.2)).collect();
    println!(
        "{:<34} {}   target",
        "throughput (pre-written input)",
        head.join(" ")
    );
    let row = |phase: &str, label: &str, key: &str, prec: usize, target: &str| {
        let vals: Vec<String> = cols
            .iter()
            .map(|(shape, sfx, _)| {
                format!(
                    "{:>13.*}",
                    prec,
                    f(&results[*shape][format!("{phase}{sfx}")], &[key])
                )
            })
            .collect();
        println!("{label:<34} {}   {target}", vals.join(" "));
    };
    let t = |label: &str, key: &str, prec: usize, target: &str| {
        row("throughput", label, key, prec, target)
    };
    t("  input MiB", "input_mib", 1, "");
    t("  lines", "lines", 0, "");
    t("  drain wall s", "drain_s", 2, "");
    t("  lines/s", "lines_per_s", 0, "");
    t("  MiB/s", "mib_per_s", 1, "");
    t("  agent CPU s", "agent_cpu_s", 2, "");
    t("  agent cores busy", "agent_cores", 2, "");
    t("  agent CPU s per GiB", "agent_cpu_s_per_gib", 2, "");
    t(
        "  MiB/s per core (MiB / CPU s)",
        "mib_per_core_s",
        1,
        &format!("≥ {TARGET_MIB_PER_CORE} (1 file), ≥ {TARGET_MIB_PER_CORE_MANY} (many)"),
    );
    t("  drain s to 99% of lines", "drain_s_to_99pct", 2, "");
    t("  peak RSS MiB (VmHWM)", "peak_rss_mib", 1, "");
    t(
        "  agent ctx switches / 1k lines",
        "agent_vol_ctxt_switches_per_1k_lines",
        0,
        "",
    );
    t("  fake-Loki+checker CPU s", "receiver_cpu_s", 2, "");
    println!("latency (paced writer)");
    let l = |label: &str, key: &str, prec: usize, target: &str| {
        row("latency", label, key, prec, target)
    };
    l("  lines/s achieved", "achieved_rate", 0, "");
    l("  p50 ms", "p50_ms", 1, "");
    l("  p90 ms", "p90_ms", 1, "");
    l(
        "  p99 ms",
        "p99_ms",
        1,
        &format!("≤ {TARGET_P99_MS} (batchwait + 50 ms; no spool)"),
    );
    l("  p99.9 ms", "p999_ms", 1, "");
    l("  max ms (incl. warm-up)", "max_ms_all_lines", 1, "");
    l(
        "  peak RSS MiB (VmHWM)",
        "peak_rss_mib",
        1,
        &format!("< {TARGET_RSS_MIB} many files; < {TARGET_RSS_MIB_SPOOL} with the spool"),
    );
    l("  agent cores busy", "agent_cores", 3, "");
    l(
        "  agent ctx switches / 1k lines",
        "agent_vol_ctxt_switches_per_1k_lines",
        0,
        "",
    );
    println!("targets:");
    for (k, v) in results["targets"].as_object().into_iter().flatten() {
        println!("  {k}: {v}");
    }
}
