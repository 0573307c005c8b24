//! Built-in start-of-record detection for the `multiline` stage's `mode`
//! (a tailtrace extension): stack traces of the common runtimes are joined
//! to the log line they belong to without a `firstline` regex.
//!
//! Owns: [`Mode`] and the per-stream [`State`] the detection needs (am I in
//! a Go panic dump, in a Python traceback?), and the line classification
//! [`Mode::classify`].
//!
//! The rules, for every mode:
//! - A line starting with a space or a tab continues the record (stack
//!   frames are indented in every runtime, and so are the continuation
//!   lines of most multi-line messages — the usual `firstline: '^\S'`).
//! - A blank (or whitespace-only) line continues the record only inside a
//!   stack trace (Go dumps and chained Python tracebacks contain blank
//!   lines); elsewhere it is a record of its own — except in `java` (and
//!   `auto`), where it continues any open record: Spring Boot's default
//!   layout (`%wEx`) prints a blank line between the message and its stack
//!   trace, and one after it.
//! - *Header* lines open a stack trace: they join the open block if there is
//!   one (the trace belongs to the log line just before it) and start a new
//!   block otherwise (an uncaught exception at the top of a file).
//! - Every other line starts a new record.
//!
//! Per runtime (unindented lines; `auto` applies all of them):
//! - `java`: `Caused by: `, `Suppressed: `, `Wrapped by: ` and `... N more` /
//!   `... N common frames omitted` continue; a qualified exception name
//!   (`java.lang.IllegalStateException: boom`, last segment ending in
//!   `Exception`, `Error` or `Throwable`) is a header. `Exception in thread
//!   "main" …` starts a record.
//! - `go`: `panic: `, `fatal error: ` and `SIGxxx: ` start a record and a Go
//!   dump; `goroutine N [running]:` is a header that starts a dump; inside a
//!   dump, `[signal …`, function lines (`main.main()`,
//!   `net/http.(*conn).serve(0xc000…)`), `created by …`, `exit status N`,
//!   `...additional frames elided...`, and a signal dump's `PC=…` and
//!   register lines (`rax    0x0`) continue.
//! - `python`: `Traceback (most recent call last):` is a header; after its
//!   (indented) frames, the first unindented line is the exception
//!   (`ValueError: bad`) and continues; then `During handling of the above
//!   exception, another exception occurred:` and `The above exception was
//!   the direct cause of the following exception:` continue.
//! - `dotnet`: a qualified exception name (`System.InvalidOperationException:
//!   …`) is a header; `--- End of …` and `---> …` continue (`   at …` frames
//!   and `   --- End of inner exception stack trace ---` are indented).
//!   `Unhandled exception. …` starts a record.
//! - `node`: an error header (`Error: boom`, `TypeError: x`, `Error
//!   [ERR_X]: y`, `Uncaught Error: z`) is a header; `Node.js vN` and, in a
//!   trace, a closing `}` of the error's properties continue.
//!
//! Must never: allocate or use a regex per line (byte checks only).

use serde::Deserialize;

/// Which runtimes' stack traces `mode` recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Java,
    Go,
    Python,
    Dotnet,
    Node,
    /// Every rule of every runtime.
    Auto,
}

/// What a line is to the record before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Starts a new record.
    First,
    /// Belongs to the record before it.
    Continuation,
    /// Opens a stack trace: joins an open block, else starts one.
    Header,
}

/// Per-stream detection state; reset when a record starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct State {
    /// The record holds a stack trace (blank lines continue it).
    trace: bool,
    /// Inside a Go panic / goroutine dump.
    go: bool,
    py: Py,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Py {
    #[default]
    Out,
    /// After `Traceback (most recent call last):`: frames, then the
    /// exception line.
    Frames,
    /// After the exception line: chained tracebacks may follow.
    AfterExc,
}

impl Mode {
    fn java(self) -> bool {
        matches!(self, Mode::Java | Mode::Auto)
    }
    fn go(self) -> bool {
        matches!(self, Mode::Go | Mode::Auto)
    }
    fn python(self) -> bool {
        matches!(self, Mode::Python | Mode::Auto)
    }
    fn dotnet(self) -> bool {
        matches!(self, Mode::Dotnet | Mode::Auto)
    }
    fn node(self) -> bool {
        matches!(self, Mode::Node | Mode::Auto)
    }

    /// Classifies `line`; `open`: a block is open (a header joins it).
    /// Updates `st`: reset and re-seeded when the line starts a record.
    pub fn classify(self, line: &str, st: &mut State, open: bool) -> Class {
        if open && self.java() && line.bytes().all(|c| c.is_ascii_whitespace()) {
            // Spring Boot's `%wEx`: `msg`, blank, `java.lang.X: …`, frames.
            return Class::Continuation;
        }
        match self.raw(line, st) {
            Class::Continuation => {
                st.trace = true;
                Class::Continuation
            }
            Class::Header if open => {
                st.trace = true;
                self.enter_header(line, st);
                Class::Continuation
            }
            c => {
                *st = State::default();
                if c == Class::Header {
                    st.trace = true;
                    self.enter_header(line, st);
                } else if self.go() && go_dump_start(line) {
                    st.trace = true;
                    st.go = true;
                }
                Class::First
            }
        }
    }

    /// State changes a header brings.
    fn enter_header(self, line: &str, st: &mut State) {
        if self.python() && line.starts_with(PY_TRACEBACK) {
            st.py = Py::Frames;
        }
        if self.go() && go_goroutine_header(line) {
            st.go = true;
        }
    }

    /// The classification before `open` is taken into account; updates the
    /// Python state for continuation lines.
    fn raw(self, line: &str, st: &mut State) -> Class {
        let b = line.as_bytes();
        let Some(&c0) = b.first() else {
            return blank(st);
        };
        if c0 == b' ' || c0 == b'\t' {
            if b.iter().all(|c| c.is_ascii_whitespace()) {
                return blank(st);
            }
            return Class::Continuation;
        }
        if c0 == b'\r' && b.len() == 1 {
            return blank(st);
        }
        // Python first: inside a traceback, the first unindented line after
        // the frames is the exception, whatever it looks like.
        if self.python() {
            if line.starts_with(PY_TRACEBACK) {
                return Class::Header;
            }
            match st.py {
                Py::Frames => {
                    st.py = Py::AfterExc;
                    return Class::Continuation;
                }
                Py::AfterExc
                    if line.starts_with(PY_DURING) || line.starts_with(PY_DIRECT_CAUSE) =>
                {
                    return Class::Continuation;
                }
                _ => {}
            }
        }
        if self.java()
            && (line.starts_with("Caused by: ")
                || line.starts_with("Suppressed: ")
                || line.starts_with("Wrapped by: ")
                || java_more(line))
        {
            return Class::Continuation;
        }
        if self.dotnet() && (line.starts_with("--- End of ") || line.starts_with("---> ")) {
            return Class::Continuation;
        }
        if (self.java() || self.dotnet()) && qualified_exception(line) {
            return Class::Header;
        }
        if self.go() {
            if go_goroutine_header(line) {
                return Class::Header;
            }
            if st.go
                && (line.starts_with("[signal ")
                    || line.starts_with("created by ")
                    || line.starts_with("...additional frames elided...")
                    || line.starts_with("PC=")
                    || go_exit_status(line)
                    || go_register_line(line)
                    || go_func_line(line))
            {
                return Class::Continuation;
            }
        }
        if self.node() {
            if node_error_header(line) {
                return Class::Header;
            }
            if line.starts_with("Node.js v") && b.get(9).is_some_and(u8::is_ascii_digit) {
                return Class::Continuation;
            }
            if st.trace && c0 == b'}' {
                return Class::Continuation;
            }
        }
        Class::First
    }
}

const PY_TRACEBACK: &str = "Traceback (most recent call last):";
const PY_DURING: &str = "During handling of the above exception, another exception occurred:";
const PY_DIRECT_CAUSE: &str =
    "The above exception was the direct cause of the following exception:";

fn blank(st: &State) -> Class {
    if st.trace {
        Class::Continuation
    } else {
        Class::First
    }
}

/// `... 12 more`, `... 3 common frames omitted` (unindented variant).
fn java_more(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("... ") else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && {
        let tail = &rest[digits..];
        tail == " more" || tail.starts_with(" common frames omitted")
    }
}

fn is_ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$'
}

/// `java.lang.IllegalStateException`, `System.IO.IOException: msg`: a
/// dotted name whose last segment ends in Exception/Error/Throwable,
/// followed by the end of the line or `: `.
fn qualified_exception(line: &str) -> bool {
    let b = line.as_bytes();
    let name_len = b
        .iter()
        .take_while(|&&c| is_ident_byte(c) || c == b'.' || c == b'+' || c == b'`')
        .count();
    let name = &line[..name_len];
    let rest = &b[name_len..];
    if !(rest.is_empty() || rest == b":" || rest.starts_with(b": ") || rest == b"\r") {
        return false;
    }
    let Some(dot) = name.rfind('.') else {
        return false;
    };
    let first = name.as_bytes()[0];
    let last = &name[dot + 1..];
    (first.is_ascii_alphabetic() || first == b'_')
        && !name.contains("..")
        && (last.ends_with("Exception") || last.ends_with("Error") || last.ends_with("Throwable"))
}

/// `panic: `, `fatal error: `, `SIGQUIT: quit`: the first line of a Go dump.
fn go_dump_start(line: &str) -> bool {
    if line.starts_with("panic: ") || line.starts_with("fatal error: ") {
        return true;
    }
    let Some(rest) = line.strip_prefix("SIG") else {
        return false;
    };
    let n = rest.bytes().take_while(u8::is_ascii_uppercase).count();
    n > 0 && rest[n..].starts_with(": ")
}

/// `goroutine 1 [running]:`, `goroutine 7 gp=0xc… m=0 mp=0x… [chan receive, 2 minutes]:`.
fn go_goroutine_header(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("goroutine ") else {
        return false;
    };
    let n = rest.bytes().take_while(u8::is_ascii_digit).count();
    n > 0 && rest.as_bytes().get(n) == Some(&b' ') && {
        let t = line.trim_end_matches('\r');
        t.ends_with("]:") && t.contains(" [")
    }
}

/// `exit status 2` (`go run` after a panic).
fn go_exit_status(line: &str) -> bool {
    line.strip_prefix("exit status ").is_some_and(|r| {
        let r = r.trim_end_matches('\r');
        !r.is_empty() && r.bytes().all(|c| c.is_ascii_digit())
    })
}

/// A register of a signal dump: `rax    0x0`, `rflags 0x10246`.
fn go_register_line(line: &str) -> bool {
    let t = line.trim_end_matches('\r');
    let n = t
        .bytes()
        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        .count();
    let rest = &t[n..];
    let spaces = rest.bytes().take_while(|&c| c == b' ').count();
    n > 0
        && spaces > 0
        && rest[spaces..]
            .strip_prefix("0x")
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit()))
}

/// A Go dump's function line: `main.main()`, `main.(*T).M(...)`,
/// `net/http.(*conn).serve(0xc000208000, {0x7f2c70, 0xc00007e0f0})`,
/// `main.Map[...](...)`, `panic({0x5c1a40?, 0x6b4d60?})`.
fn go_func_line(line: &str) -> bool {
    let t = line.trim_end_matches('\r');
    if !t.ends_with(')') {
        return false;
    }
    let b = t.as_bytes();
    // The call's parenthesis: the first `(` right after a name character.
    let Some(call) =
        (1..b.len()).find(|&i| b[i] == b'(' && (is_ident_byte(b[i - 1]) || b[i - 1] == b']'))
    else {
        return false;
    };
    let name = &t[..call];
    let allowed = |c: u8| {
        is_ident_byte(c)
            || matches!(
                c,
                b'.' | b'/' | b'-' | b'~' | b'*' | b'(' | b')' | b'[' | b']' | b','
            )
    };
    (name.contains('.') || name == "panic") && name.bytes().all(allowed)
}

/// `Error: boom`, `TypeError: x`, `Error [ERR_HTTP_HEADERS_SENT]: y`,
/// `Uncaught Error: z`, `AggregateError`.
fn node_error_header(line: &str) -> bool {
    let l = line.strip_prefix("Uncaught ").unwrap_or(line);
    let b = l.as_bytes();
    if !b
        .first()
        .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_' || *c == b'$')
    {
        return false;
    }
    let n = b.iter().take_while(|&&c| is_ident_byte(c)).count();
    let name = &l[..n];
    if !(name.ends_with("Error") || name.ends_with("Exception")) {
        return false;
    }
    let mut rest = &l[n..];
    if let Some(r) = rest.strip_prefix(" [") {
        let Some(end) = r.find(']') else {
            return false;
        };
        let code = &r[..end];
        if code.is_empty()
            || !code
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        {
            return false;
        }
        rest = &r[end + 1..];
    }
    let rest = rest.trim_end_matches('\r');
    rest.is_empty() || rest == ":" || rest.starts_with(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Classifies `lines` in order as the stage does (a block is open once a
    /// first line came); returns which lines start records.
    fn starts(mode: Mode, text: &[&str]) -> Vec<usize> {
        let mut st = State::default();
        let mut open = false;
        let mut out = Vec::new();
        for (i, l) in text.iter().enumerate() {
            if mode.classify(l, &mut st, open) == Class::First {
                out.push(i);
            }
            open = true;
        }
        out
    }

    #[test]
    fn java_stack_traces_join_their_log_line() {
        let t: &[&str] = &[
            "2024-01-01 10:00:00 ERROR [main] c.e.App - request failed",
            "java.lang.IllegalStateException: boom",
            "\tat com.example.App.handle(App.java:42)",
            "\tat com.example.App.main(App.java:10)",
            "Caused by: java.io.IOException: disk full",
            "\tat com.example.Store.write(Store.java:7)",
            "\t... 2 more",
            "\tSuppressed: java.lang.RuntimeException: close failed",
            "\t\tat com.example.Store.close(Store.java:9)",
            "... 5 common frames omitted",
            "2024-01-01 10:00:01 INFO [main] c.e.App - next",
            "Exception in thread \"main\" java.lang.NullPointerException",
            "\tat com.example.App.main(App.java:3)",
            "java.lang.OutOfMemoryError: Java heap space",
        ];
        assert_eq!(starts(Mode::Java, t), [0, 10, 11]);
        assert_eq!(starts(Mode::Auto, t), [0, 10, 11]);
    }

    #[test]
    fn spring_boot_blank_lines_around_a_stack_trace_stay_with_the_message() {
        // Spring Boot's default layout ends with `%m%n%wEx`: a blank line
        // before the trace and one after it.
        let t: &[&str] = &[
            "2024-01-20T10:00:05.117Z ERROR 1 --- [nio-8080-exec-1] o.a.c.c.C.[.[.[/].[dispatcherServlet]    : Servlet.service() … with root cause",
            "",
            "java.lang.NullPointerException: Cannot invoke \"Price.amount()\"",
            "\tat com.example.shop.PricingService.total(PricingService.java:57)",
            "",
            "2024-01-20T10:00:05.998Z DEBUG 1 --- [nio-8080-exec-2] c.e.shop.OrderController : GET /orders/43",
        ];
        assert_eq!(starts(Mode::Java, t), [0, 5]);
        assert_eq!(starts(Mode::Auto, t), [0, 5]);
    }

    #[test]
    fn a_header_starts_a_record_when_nothing_is_open() {
        let mut st = State::default();
        let c = Mode::Java.classify("java.lang.RuntimeException: x", &mut st, false);
        assert_eq!(c, Class::First);
        let c = Mode::Python.classify(PY_TRACEBACK, &mut st, false);
        assert_eq!(c, Class::First);
        assert_eq!(
            Mode::Python.classify("  File \"a.py\", line 1, in <module>", &mut st, true),
            Class::Continuation
        );
        assert_eq!(
            Mode::Python.classify("ValueError: x", &mut st, true),
            Class::Continuation
        );
    }

    #[test]
    fn go_panics_and_goroutine_dumps() {
        let t: &[&str] = &[
            "2024/01/01 10:00:00 starting",
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a2b3c]",
            "",
            "goroutine 1 [running]:",
            "main.(*Server).handle(0x0, {0x5c1a40?, 0xc000012345})",
            "\t/app/main.go:42 +0x1c",
            "net/http.HandlerFunc.ServeHTTP(...)",
            "\t/usr/local/go/src/net/http/server.go:2136",
            "main.main()",
            "\t/app/main.go:10 +0x25",
            "panic({0x5c1a40?, 0x6b4d60?})",
            "\t/usr/local/go/src/runtime/panic.go:770 +0x132",
            "created by net/http.(*Server).Serve in goroutine 1",
            "\t/usr/local/go/src/net/http/server.go:3285 +0x4b4",
            "",
            "goroutine 7 gp=0xc000007340 m=nil [chan receive, 2 minutes]:",
            "main.worker[...](0xc00001c0c0)",
            "...additional frames elided...",
            "exit status 2",
            "2024/01/01 10:00:05 restarted",
            "main.main()",
        ];
        // The last `main.main()` is outside a dump: a record of its own.
        assert_eq!(starts(Mode::Go, t), [0, 1, 20, 21]);
        assert_eq!(starts(Mode::Auto, t), [0, 1, 20, 21]);
        let t: &[&str] = &[
            "SIGQUIT: quit",
            "PC=0x46e3a1 m=0 sigcode=0",
            "",
            "goroutine 0 [idle]:",
            "runtime.futex(0x7a1c48)",
            "rax    0x0",
            "rflags 0x10246",
        ];
        assert_eq!(starts(Mode::Go, t), [0]);
        let t: &[&str] = &[
            "fatal error: all goroutines are asleep - deadlock!",
            "",
            "goroutine 1 [chan receive]:",
            "main.main()",
            "\t/app/x.go:5 +0x2d",
        ];
        assert_eq!(starts(Mode::Go, t), [0]);
    }

    #[test]
    fn python_tracebacks_including_chained_ones() {
        let t: &[&str] = &[
            "2024-01-01 10:00:00,000 ERROR app: failed",
            "Traceback (most recent call last):",
            "  File \"/app/x.py\", line 3, in <module>",
            "    foo()",
            "    ~~~^^",
            "KeyError: 'a'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"/app/x.py\", line 5, in <module>",
            "    raise ValueError(\"bad\")",
            "ValueError: bad",
            "2024-01-01 10:00:01,000 INFO app: next",
            "KeyError: 'not a traceback'",
        ];
        assert_eq!(starts(Mode::Python, t), [0, 13, 14]);
        // In `auto`, Node's rule takes `KeyError: …` for an error header.
        assert_eq!(starts(Mode::Auto, t), [0, 13]);
        let t: &[&str] = &[
            "x",
            "Traceback (most recent call last):",
            "  File \"a\", line 1",
            "SystemExit: 1",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            "  File \"b\", line 2",
            "RuntimeError",
            "next record",
        ];
        assert_eq!(starts(Mode::Python, t), [0, 10]);
    }

    #[test]
    fn dotnet_exceptions() {
        let t: &[&str] = &[
            "fail: Microsoft.AspNetCore.Server.Kestrel[13]",
            "      Connection id \"0HM\": An unhandled exception was thrown by the application.",
            "      System.InvalidOperationException: Operation is not valid",
            "         at App.Controllers.Home.Index() in /src/Home.cs:line 42",
            "info: Microsoft.Hosting.Lifetime[0]",
            "Unhandled exception. System.AggregateException: One or more errors occurred.",
            " ---> System.Exception: inner",
            "   at Program.Main() in /src/Program.cs:line 5",
            "   --- End of inner exception stack trace ---",
            "--- End of stack trace from previous location ---",
            "System.IO.IOException: The file is locked",
            "   at System.IO.FileStream.Open()",
        ];
        assert_eq!(starts(Mode::Dotnet, t), [0, 4, 5]);
        assert_eq!(starts(Mode::Auto, t), [0, 4, 5]);
    }

    #[test]
    fn node_errors() {
        let t: &[&str] = &[
            "2024-01-01T10:00:00.000Z error: request failed",
            "Error: boom",
            "    at handler (/app/server.js:10:5)",
            "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5) {",
            "  code: 'ERR_X'",
            "}",
            "2024-01-01T10:00:01.000Z info: ok",
            "/app/index.js:3",
            "    throw new TypeError('bad');",
            "    ^",
            "",
            "TypeError [ERR_INVALID_ARG_TYPE]: bad",
            "    at Object.<anonymous> (/app/index.js:3:11)",
            "",
            "Node.js v20.11.0",
            "}",
        ];
        assert_eq!(starts(Mode::Node, t), [0, 6, 7]);
        assert_eq!(starts(Mode::Auto, t), [0, 6, 7]);
    }

    #[test]
    fn blank_lines_outside_a_trace_are_records_and_modes_are_specific() {
        assert_eq!(starts(Mode::Go, &["a", "", "b"]), [0, 1, 2]);
        assert_eq!(starts(Mode::Python, &["a", "", "b"]), [0, 1, 2]);
        // Java: a blank line continues an open record (Spring Boot's %wEx);
        // at the start of a stream it is a record.
        assert_eq!(starts(Mode::Java, &["a", "", "b"]), [0, 2]);
        assert_eq!(starts(Mode::Java, &["", " x", "b"]), [0, 2]);
        // Java's rules do not apply in go mode and the reverse.
        assert_eq!(
            starts(Mode::Go, &["a", "java.lang.X.FooException: y"]),
            [0, 1]
        );
        assert_eq!(
            starts(Mode::Java, &["panic: x", "", "goroutine 1 [running]:"]),
            [0, 2]
        );
        assert_eq!(
            starts(Mode::Python, &["panic: x", "", "goroutine 1 [running]:"]),
            [0, 1, 2]
        );
        assert_eq!(
            starts(Mode::Node, &["a", "java.lang.FooException: y"]),
            [0, 1]
        );
        assert_eq!(starts(Mode::Python, &["a", "Error: y"]), [0, 1]);
    }

    #[test]
    fn helpers() {
        assert!(qualified_exception("java.lang.NullPointerException"));
        assert!(qualified_exception("a.b.CustomError: x"));
        assert!(qualified_exception("System.Exception:"));
        assert!(!qualified_exception("NullPointerException: x"));
        assert!(!qualified_exception("java.lang.Foo: x"));
        assert!(!qualified_exception("com.example.FooException happened"));
        assert!(!qualified_exception(".FooException"));
        assert!(go_func_line("main.main()"));
        assert!(go_func_line(
            "github.com/a/b-c/d.(*T).M(0xc000010000, {0x0, 0x0})"
        ));
        assert!(!go_func_line("hello world (x)"));
        assert!(!go_func_line("f(x)"));
        assert!(!go_func_line("main.main() extra"));
        assert!(java_more("... 23 more"));
        assert!(!java_more("... more"));
        assert!(go_exit_status("exit status 2"));
        assert!(!go_exit_status("exit status two"));
        assert!(node_error_header("Error"));
        assert!(node_error_header("Uncaught RangeError: x"));
        assert!(!node_error_header("Error [bad]: x"));
        assert!(!node_error_header("Errors: x"));
        assert!(!node_error_header("Error happened"));
        assert!(go_dump_start("SIGSEGV: segmentation violation"));
        assert!(!go_dump_start("SIG: x"));
    }
}
