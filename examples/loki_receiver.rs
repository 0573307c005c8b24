//! A standalone fake Loki for trying tailtrace by hand: runs the test receiver
//! (tests/support/receiver.rs) on 127.0.0.1 and prints what it received.
//!
//! ```text
//! cargo run --example loki_receiver -- [PORT] [--auth] [--max-line-size BYTES]
//!                                      [--every SECONDS] [--ignore-stdin] [--lines N]
//! ```
//! A summary is printed every few seconds when something changed, and a final
//! one on Ctrl-C or when stdin reaches EOF (unless `--ignore-stdin`, for running
//! in the background). `--lines N` also prints the last N lines received.
//!
//! Must never: listen on anything but 127.0.0.1.

#[path = "../tests/support/receiver.rs"]
mod receiver;

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use receiver::{Options, Receiver};

struct Args {
    opts: Options,
    every: Duration,
    ignore_stdin: bool,
    lines: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        opts: Options {
            port: 3100,
            ..Options::default()
        },
        every: Duration::from_secs(5),
        ignore_stdin: false,
        lines: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse::<u64>().map_err(|e| format!("{name} {v:?}: {e}"))
        };
        match arg.as_str() {
            "--auth" => a.opts.auth_enabled = true,
            "--ignore-stdin" => a.ignore_stdin = true,
            "--max-line-size" => a.opts.max_line_size = num("--max-line-size")? as usize,
            "--every" => a.every = Duration::from_secs(num("--every")?.max(1)),
            "--lines" => a.lines = num("--lines")? as usize,
            "-h" | "--help" => {
                return Err("usage: loki_receiver [PORT] [--auth] [--max-line-size BYTES] [--every SECONDS] [--ignore-stdin] [--lines N]".into())
            }
            p => {
                a.opts.port = p
                    .parse()
                    .map_err(|e| format!("port {p:?}: {e}"))?;
            }
        }
    }
    Ok(a)
}

fn summary(r: &Receiver, last_lines: usize) -> String {
    let mut s = String::new();
    let reqs = r.requests();
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut bytes = 0usize;
    for q in &reqs {
        *by_status.entry(q.status).or_default() += 1;
        bytes += q.bytes;
    }
    let statuses: Vec<String> = by_status
        .iter()
        .map(|(st, n)| {
            if *st == 0 {
                format!("dropped×{n}")
            } else {
                format!("{st}×{n}")
            }
        })
        .collect();
    s.push_str(&format!(
        "== {} entries in {} requests ({} bytes on the wire) [{}]; {} duplicates\n",
        r.count(),
        reqs.len(),
        bytes,
        statuses.join(" "),
        r.duplicates().len()
    ));
    for ((tenant, labels), entries) in r.streams() {
        let bad = entries.iter().filter(|e| !e.valid_utf8).count();
        let extra = if bad > 0 {
            format!(" ({bad} not UTF-8)")
        } else {
            String::new()
        };
        s.push_str(&format!("  {tenant} {labels}: {}{extra}\n", entries.len()));
    }
    if let Some(err) = reqs.iter().rev().find_map(|q| q.error.as_ref()) {
        let first = err.lines().next().unwrap_or_default();
        s.push_str(&format!("  last error: {first}\n"));
    }
    if last_lines > 0 {
        let e = r.entries();
        for x in e.iter().skip(e.len().saturating_sub(last_lines)) {
            s.push_str(&format!(
                "  {} {} {}\n",
                x.ts_ns,
                x.canonical_labels(),
                x.line
            ));
        }
    }
    s
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let r = match Receiver::try_start_with(args.opts.clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{}: {e}", args.opts.port);
            std::process::exit(1);
        }
    };
    println!("fake Loki listening: {}", r.push_url());

    let (tx, rx) = mpsc::channel::<&'static str>();
    if !args.ignore_stdin {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send("stdin closed");
        });
    }
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            let _ = tx.send("interrupted");
        }
    });

    let mut last = (usize::MAX, usize::MAX);
    loop {
        match rx.recv_timeout(args.every) {
            Ok(why) => {
                println!("{why}; final summary:");
                print!("{}", summary(&r, args.lines));
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let now = (r.count(), r.requests().len());
                if now != last {
                    print!("{}", summary(&r, args.lines));
                    last = now;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
}
