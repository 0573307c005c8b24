//! The functions a Promtail `template` can call: Go's `text/template`
//! built-ins, the sprig v3 library (Promtail adds `sprig.TxtFuncMap()`), and
//! Promtail's own (`ToLower`, `ToUpper`, `Replace`, `Trim`, `TrimLeft`,
//! `TrimRight`, `TrimPrefix`, `TrimSuffix`, `TrimSpace`, `Hash`, `Sha2Hash`,
//! `regexReplaceAll`, `regexReplaceAllLiteral`), with Go's signatures: the
//! parameter types decide how arguments are checked (see
//! [`exec`](super::exec)).
//!
//! Semantics follow the Go sources: `Hash`/`Sha2Hash salt input` hash
//! `salt + input` (SHA3-256 / SHA-256, hex); sprig's argument order puts
//! the string last (`contains "x" .s`, `trimPrefix "p" .s`, `replace "a"
//! "b" .s`); `toDate` returns the zero time on a parse failure;
//! `date` of something that is not a time or an integer formats *now*;
//! arithmetic converts like spf13/cast (`add "7" 2` is 9); `regexReplaceAll`
//! and friends fail the template on a bad pattern (Promtail's `MustCompile`
//! panics, which the template turns into an error), `regexMatch` is false.
//!
//! Sprig functions tailtrace does not implement (certificates, AES,
//! bcrypt, semver, URL parsing, DNS, `merge*`, `wrap`, the case converters,
//! `seq`, `abbrevboth`) are refused when the template is built, by name.
//!
//! Must never: panic (Go's panics inside functions are errors here), or
//! grow without bound on input (`repeat`, `until` are capped).

use super::exec::{fmt_float_g, fmt_v, truth, Env, Val};
use crate::pipeline::gotime::{self, GoLocation, ZonedTime};
use crate::pipeline::stages::pack::{write_json_string, JsonFlavor};
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::rc::Rc;

/// A parameter's Go type.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum P {
    /// `interface{}` / `reflect.Value`
    Any,
    Str,
    Int,
    Float,
    Bool,
    Time,
    /// `map[string]interface{}`
    Map,
}

impl P {
    pub fn go_name(self) -> &'static str {
        match self {
            P::Any => "interface {}",
            P::Str => "string",
            P::Int => "int",
            P::Float => "float64",
            P::Bool => "bool",
            P::Time => "time.Time",
            P::Map => "map[string]interface {}",
        }
    }
}

type F = fn(&mut Env, Vec<Val>) -> Result<Val, String>;

/// A callable function.
pub(super) struct FuncDef {
    pub name: &'static str,
    pub params: &'static [P],
    pub variadic: Option<P>,
    pub f: F,
}

impl std::fmt::Debug for FuncDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

pub(super) enum Lookup {
    Found(&'static FuncDef),
    /// A sprig function tailtrace does not implement.
    Unsupported,
    Unknown,
}

/// Resolves a function name, as the parser does.
pub(super) fn lookup(name: &str) -> Lookup {
    if let Some(d) = FUNCS.iter().find(|d| d.name == name) {
        return Lookup::Found(d);
    }
    if UNSUPPORTED.contains(&name) {
        return Lookup::Unsupported;
    }
    Lookup::Unknown
}

/// A method of `time.Time` (`.Unix`, `.Format "…"`); the receiver is the
/// first parameter.
pub(super) fn time_method(name: &str) -> Option<&'static FuncDef> {
    TIME_METHODS.iter().find(|d| d.name == name)
}

/// Sprig functions not implemented: refused at build, by name.
const UNSUPPORTED: &[&str] = &[
    "abbrevboth",
    "bcrypt",
    "buildCustomCert",
    "camelcase",
    "decryptAES",
    "derivePassword",
    "encryptAES",
    "genCA",
    "genCAWithKey",
    "genPrivateKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "getHostByName",
    "htpasswd",
    "kebabcase",
    "merge",
    "mergeOverwrite",
    "mustMerge",
    "mustMergeOverwrite",
    "randBytes",
    "semver",
    "semverCompare",
    "seq",
    "snakecase",
    "urlJoin",
    "urlParse",
    "wrap",
    "wrapWith",
    "call",
];

// ------------------------------------------------------------ arg access

fn s(v: &Val) -> &str {
    match v {
        Val::Str(s) => s,
        _ => "",
    }
}

fn int(v: &Val) -> i64 {
    match v {
        Val::Int(i) | Val::Int64(i) => *i,
        _ => 0,
    }
}

fn time(v: &Val) -> ZonedTime {
    match v {
        Val::Time(t) => t.clone(),
        _ => ZonedTime::zero(),
    }
}

fn st(x: impl Into<String>) -> Result<Val, String> {
    Ok(Val::Str(x.into()))
}

fn bl(b: bool) -> Result<Val, String> {
    Ok(Val::Bool(b))
}

/// Go's `s[a:b]` on bytes; out of range is Go's runtime panic.
fn byte_slice(s: &str, a: i64, b: i64) -> Result<String, String> {
    let len = s.len() as i64;
    if a < 0 || b < a || b > len {
        return Err(format!(
            "runtime error: slice bounds out of range [{a}:{b}]"
        ));
    }
    Ok(String::from_utf8_lossy(&s.as_bytes()[a as usize..b as usize]).into_owned())
}

/// Upper bound on strings and lists functions build from small inputs.
const MAX_BUILD: usize = 1 << 20;

// ------------------------------------------------------------ cast

/// spf13/cast's `ToInt64` (sprig's `toInt64`): numbers truncate, strings
/// parse in Go's base-0 syntax (`0x1f`, `0o17`, `1_000`; `"3.00"` reads as
/// 3), bools are 1/0, anything else is 0.
pub(super) fn to_int64(v: &Val) -> i64 {
    match v {
        Val::Int(i) | Val::Int64(i) => *i,
        Val::Float(f) => *f as i64,
        Val::Bool(b) => i64::from(*b),
        Val::Str(s) => super::parse::parse_int_base0(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

fn trim_zero_decimal(s: &str) -> &str {
    let b = s.as_bytes();
    let mut found_zero = false;
    for i in (1..=b.len()).rev() {
        match b[i - 1] {
            b'.' => {
                if found_zero {
                    return &s[..i - 1];
                }
                return s;
            }
            b'0' => found_zero = true,
            _ => return s,
        }
    }
    s
}

/// spf13/cast's `ToFloat64`.
pub(super) fn to_float64(v: &Val) -> f64 {
    match v {
        Val::Int(i) | Val::Int64(i) => *i as f64,
        Val::Float(f) => *f,
        Val::Bool(b) => f64::from(u8::from(*b)),
        Val::Str(s) => go_parse_float(s).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Go's `strconv.ParseFloat(s, 64)` for decimal input (and inf/nan words).
fn go_parse_float(s: &str) -> Option<f64> {
    let t = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = t.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return s.parse().ok();
    }
    if t.is_empty()
        || !t
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-' | b'_'))
    {
        return None;
    }
    let clean: String = s.chars().filter(|&c| c != '_').collect();
    clean.parse().ok()
}

/// sprig's `strval`: strings as they are, anything else `%v`.
fn strval(v: &Val) -> String {
    match v {
        Val::Str(s) => s.clone(),
        v => fmt_v(v),
    }
}

/// sprig's `strslice`: a list as strings (nil elements skipped), nil as
/// none, anything else as a one-element list.
fn strslice(v: &Val) -> Vec<String> {
    match v {
        Val::List(l) => l.iter().filter(|e| !e.is_nil()).map(strval).collect(),
        Val::Nil => Vec::new(),
        v => vec![strval(v)],
    }
}

/// sprig's `empty`.
fn empty(v: &Val) -> bool {
    match v {
        Val::Time(_) => false,
        v => !truth(v),
    }
}

fn list_of(v: &Val, what: &str) -> Result<Rc<Vec<Val>>, String> {
    match v {
        Val::List(l) => Ok(l.clone()),
        v => Err(format!("Cannot {what} on type {}", v.kind_name())),
    }
}

fn strs(v: Vec<String>) -> Val {
    Val::list(v.into_iter().map(Val::Str).collect())
}

/// Go's `reflect.DeepEqual` on template values.
fn deep_equal(a: &Val, b: &Val) -> bool {
    match (a, b) {
        (Val::Nil, Val::Nil) => true,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        (Val::Int(x), Val::Int(y)) | (Val::Int64(x), Val::Int64(y)) => x == y,
        (Val::Float(x), Val::Float(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::List(x), Val::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(a, b)| deep_equal(a, b))
        }
        (Val::Map(x), Val::Map(y)) => {
            let (x, y) = (x.borrow(), y.borrow());
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (Val::Time(x), Val::Time(y)) => x == y,
        _ => false,
    }
}

// ------------------------------------------------------------ comparisons

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

fn basic_kind(v: &Val) -> Option<Kind> {
    match v {
        Val::Bool(_) => Some(Kind::Bool),
        Val::Int(_) | Val::Int64(_) => Some(Kind::Int),
        Val::Float(_) => Some(Kind::Float),
        Val::Str(_) => Some(Kind::Str),
        _ => None,
    }
}

fn go_eq(a: &Val, rest: &[Val]) -> Result<bool, String> {
    if rest.is_empty() {
        return Err("missing argument for comparison".into());
    }
    let k1 = basic_kind(a);
    for b in rest {
        let k2 = basic_kind(b);
        let t = if k1 != k2 {
            if !a.is_nil() && !b.is_nil() {
                return Err(format!(
                    "incompatible types for comparison: {} and {}",
                    a.type_name(),
                    b.type_name()
                ));
            }
            false
        } else {
            match (a, b) {
                (Val::Bool(x), Val::Bool(y)) => x == y,
                (Val::Float(x), Val::Float(y)) => x == y,
                (Val::Str(x), Val::Str(y)) => x == y,
                _ if k1 == Some(Kind::Int) => int(a) == int(b),
                _ => {
                    if a.is_nil() || b.is_nil() {
                        a.is_nil() == b.is_nil()
                    } else if let (Val::Time(x), Val::Time(y)) = (a, b) {
                        x == y
                    } else if a.kind_name() != b.kind_name() {
                        return Err(format!(
                            "non-comparable types {}: {}, {}: {}",
                            fmt_v(a),
                            a.type_name(),
                            b.type_name(),
                            fmt_v(b)
                        ));
                    } else {
                        return Err(format!(
                            "non-comparable type {}: {}",
                            fmt_v(b),
                            b.type_name()
                        ));
                    }
                }
            }
        };
        if t {
            return Ok(true);
        }
    }
    Ok(false)
}

fn go_lt(a: &Val, b: &Val) -> Result<bool, String> {
    let (Some(k1), Some(k2)) = (basic_kind(a), basic_kind(b)) else {
        return Err("invalid type for comparison".into());
    };
    if k1 != k2 {
        return Err(format!(
            "incompatible types for comparison: {} and {}",
            a.type_name(),
            b.type_name()
        ));
    }
    Ok(match (a, b) {
        (Val::Bool(_), _) => return Err("invalid type for comparison".into()),
        (Val::Float(x), Val::Float(y)) => x < y,
        (Val::Str(x), Val::Str(y)) => x < y,
        _ => int(a) < int(b),
    })
}

// ------------------------------------------------------------ fmt

/// `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !matches!(a, Val::Str(_)) && !matches!(args[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        out.push_str(&fmt_v(a));
    }
    out
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `unicode.IsPrint` (letters, marks, numbers,
/// punctuation, symbols and the ASCII space).
fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    !(c.is_control()
        || c.is_whitespace()
        || matches!(c as u32, 0xad | 0x2028 | 0x2029 | 0xfeff | 0xfff9..=0xfffb | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0xe000..=0xf8ff))
}

/// `fmt.Sprintf` for the verbs templates use: `%v %s %d %q %x %X %o %b
/// %c %U %t %f %F %e %E %g %G %%`, flags `+ - # 0 space`, width and
/// precision (`*` too). Mismatches print Go's `%!d(string=x)` markers.
fn sprintf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut argi = 0;
    let mut it = format.char_indices().peekable();
    while let Some((_, c)) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut sharp, mut zero, mut space) =
            (false, false, false, false, false);
        while let Some(&(_, f)) = it.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '#' => sharp = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => break,
            }
            it.next();
        }
        let num = |it: &mut std::iter::Peekable<std::str::CharIndices>,
                   argi: &mut usize|
         -> Option<i64> {
            if it.peek().map(|x| x.1) == Some('*') {
                it.next();
                let v = args.get(*argi).map(int);
                *argi += 1;
                return v;
            }
            let mut n: Option<i64> = None;
            while let Some(&(_, d)) = it.peek() {
                let Some(d) = d.to_digit(10) else { break };
                n = Some(
                    n.unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(i64::from(d)),
                );
                it.next();
            }
            n
        };
        let width = num(&mut it, &mut argi);
        let mut prec = None;
        if it.peek().map(|x| x.1) == Some('.') {
            it.next();
            prec = Some(num(&mut it, &mut argi).unwrap_or(0));
        }
        let Some((_, verb)) = it.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let bad = |a: &Val| format!("%!{verb}({}={})", a.type_name(), fmt_v(a));
        let mut numeric = false;
        let mut body = match (verb, arg) {
            ('v', Val::Str(s)) if sharp => go_quote(s),
            ('v', a) => fmt_v(a),
            ('s', Val::Str(s)) => s.clone(),
            ('s', a @ (Val::List(_) | Val::Map(_) | Val::Time(_) | Val::Nil)) => fmt_v(a),
            ('q', Val::Str(s)) => go_quote(s),
            ('q', Val::Int(i) | Val::Int64(i)) => match char::from_u32(*i as u32) {
                Some(c) => format!(
                    "'{}'",
                    if c == '\'' {
                        "\\'".to_string()
                    } else {
                        go_quote(&c.to_string()).trim_matches('"').to_string()
                    }
                ),
                None => bad(arg),
            },
            ('t', Val::Bool(b)) => b.to_string(),
            ('d', Val::Int(i) | Val::Int64(i)) => {
                numeric = true;
                i.to_string()
            }
            ('b', Val::Int(i) | Val::Int64(i)) => {
                numeric = true;
                sign_radix(*i, 2, false, sharp.then_some("0b"))
            }
            ('o', Val::Int(i) | Val::Int64(i)) => {
                numeric = true;
                sign_radix(*i, 8, false, sharp.then_some("0"))
            }
            ('x' | 'X', Val::Int(i) | Val::Int64(i)) => {
                numeric = true;
                sign_radix(
                    *i,
                    16,
                    verb == 'X',
                    sharp.then_some(if verb == 'X' { "0X" } else { "0x" }),
                )
            }
            ('x' | 'X', Val::Str(s)) => {
                let h: String = s.bytes().map(|b| format!("{b:02x}")).collect();
                if verb == 'X' {
                    h.to_uppercase()
                } else {
                    h
                }
            }
            ('c', Val::Int(i) | Val::Int64(i)) => {
                char::from_u32(*i as u32).unwrap_or('\u{fffd}').to_string()
            }
            ('U', Val::Int(i) | Val::Int64(i)) => format!("U+{:04X}", i),
            ('f' | 'F' | 'e' | 'E' | 'g' | 'G', Val::Float(f)) => {
                numeric = true;
                fmt_float_verb(*f, verb, prec)
            }
            _ => bad(arg),
        };
        if numeric {
            let neg = body.starts_with('-');
            if !neg && plus {
                body.insert(0, '+');
            } else if !neg && space {
                body.insert(0, ' ');
            }
        } else if let Some(p) = prec {
            if matches!(verb, 's' | 'v' | 'q') && matches!(arg, Val::Str(_)) && verb != 'q' {
                body = body.chars().take(p.max(0) as usize).collect();
            }
        }
        let w = width.unwrap_or(0).max(0) as usize;
        let n = body.chars().count();
        if n < w {
            let pad = w - n;
            if minus {
                body.push_str(&" ".repeat(pad));
            } else if zero && numeric {
                let sign = body.starts_with(['-', '+', ' ']);
                let at = usize::from(sign);
                body.insert_str(at, &"0".repeat(pad));
            } else {
                body.insert_str(0, &" ".repeat(pad));
            }
        }
        out.push_str(&body);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), fmt_v(a)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn sign_radix(i: i64, radix: u32, upper: bool, prefix: Option<&str>) -> String {
    let u = i.unsigned_abs();
    let digits = match radix {
        2 => format!("{u:b}"),
        8 => format!("{u:o}"),
        _ if upper => format!("{u:X}"),
        _ => format!("{u:x}"),
    };
    format!(
        "{}{}{}",
        if i < 0 { "-" } else { "" },
        prefix.unwrap_or(""),
        digits
    )
}

fn fmt_float_verb(f: f64, verb: char, prec: Option<i64>) -> String {
    match verb {
        'f' | 'F' => format!("{:.*}", prec.unwrap_or(6).max(0) as usize, f),
        'e' | 'E' => {
            let s = format!("{:.*e}", prec.unwrap_or(6).max(0) as usize, f);
            let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
            let e: i32 = e.parse().unwrap_or(0);
            let r = format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs());
            if verb == 'E' {
                r.to_uppercase()
            } else {
                r
            }
        }
        _ => {
            let r = fmt_float_g(f);
            if verb == 'G' {
                r.to_uppercase()
            } else {
                r
            }
        }
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{fffd}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if c.is_ascii() || is_go_printable(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Arguments of `html`/`js`/`urlquery` as text (Go's `evalArgs`: a missing
/// value reads `<no value>`).
fn eval_args(a: &[Val]) -> String {
    if let [Val::Str(s)] = a {
        return s.clone();
    }
    let shown: Vec<Val> = a
        .iter()
        .map(|v| match v {
            Val::Nil => Val::str("<no value>"),
            v => v.clone(),
        })
        .collect();
    sprint(&shown)
}

// ------------------------------------------------------------ JSON

fn write_json(
    out: &mut String,
    v: &Val,
    flavor: JsonFlavor,
    indent: Option<usize>,
) -> Result<(), String> {
    let nl = |out: &mut String, depth: usize| {
        if indent.is_some() {
            out.push('\n');
            for _ in 0..depth {
                out.push_str("  ");
            }
        }
    };
    let depth = indent.unwrap_or(0);
    match v {
        Val::Nil => out.push_str("null"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) | Val::Int64(i) => out.push_str(&i.to_string()),
        Val::Float(f) => out.push_str(&json_float(*f)?),
        Val::Str(s) => write_json_string(out, s, flavor),
        Val::Time(t) => {
            if !(0..=9999).contains(&t.year()) {
                return Err("Time.MarshalJSON: year outside of range [0,9999]".into());
            }
            let s = t.format("2006-01-02T15:04:05.999999999Z07:00");
            write_json_string(out, &s, flavor);
        }
        Val::List(l) => {
            out.push('[');
            if l.is_empty() {
                out.push(']');
                return Ok(());
            }
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                write_json(out, e, flavor, indent.map(|d| d + 1))?;
            }
            nl(out, depth);
            out.push(']');
        }
        Val::Map(m) => {
            out.push('{');
            let m = m.borrow();
            if m.is_empty() {
                out.push('}');
                return Ok(());
            }
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                nl(out, depth + 1);
                write_json_string(out, k, flavor);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_json(out, e, flavor, indent.map(|d| d + 1))?;
            }
            nl(out, depth);
            out.push('}');
        }
        Val::Root => out.push_str("{}"),
    }
    Ok(())
}

/// `encoding/json`'s float64: `'f'` unless the exponent is below -6 or at
/// least 21, then `'e'` with a short exponent (`1e-07`→`1e-7`).
fn json_float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!("json: unsupported value: {}", fmt_float_g(f)));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let e = format!("{f:e}");
        let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
        let x: i32 = x.parse().unwrap_or(0);
        return Ok(
            format!("{m}e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs()).replace("e-0", "e-"),
        );
    }
    Ok(crate::pipeline::extracted::format_float(f))
}

fn to_json(v: &Val, flavor: JsonFlavor, pretty: bool) -> Result<String, String> {
    let mut out = String::new();
    write_json(&mut out, v, flavor, pretty.then_some(0))?;
    Ok(out)
}

fn from_json(s: &str) -> Result<Val, String> {
    let v: serde_json::Value = serde_json::from_str(s).map_err(|e| e.to_string())?;
    fn conv(v: serde_json::Value) -> Val {
        match v {
            serde_json::Value::Null => Val::Nil,
            serde_json::Value::Bool(b) => Val::Bool(b),
            serde_json::Value::Number(n) => Val::Float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Val::Str(s),
            serde_json::Value::Array(a) => Val::list(a.into_iter().map(conv).collect()),
            serde_json::Value::Object(o) => {
                Val::map(o.into_iter().map(|(k, v)| (k, conv(v))).collect())
            }
        }
    }
    Ok(conv(v))
}

// ------------------------------------------------------------ decimal

/// shopspring/decimal as sprig's `addf`… use it: exact decimal arithmetic
/// on the shortest decimal form of each float, division rounded to 16
/// places; plain float arithmetic when the digits do not fit.
#[derive(Clone, Copy)]
struct Dec {
    m: i128,
    e: i32,
}

impl Dec {
    fn from_f64(f: f64) -> Option<Dec> {
        if !f.is_finite() {
            return None;
        }
        let s = format!("{f:e}");
        let (mant, exp) = s.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
        let m: i128 = format!("{int}{frac}").parse().ok()?;
        Some(Dec {
            m,
            e: exp - frac.len() as i32,
        })
    }

    fn to_f64(self) -> f64 {
        format!("{}e{}", self.m, self.e).parse().unwrap_or(f64::NAN)
    }

    fn scale_to(self, e: i32) -> Option<Dec> {
        if e > self.e {
            return None;
        }
        let p = 10i128.checked_pow(u32::try_from(self.e - e).ok()?)?;
        Some(Dec {
            m: self.m.checked_mul(p)?,
            e,
        })
    }

    fn add(self, o: Dec) -> Option<Dec> {
        let e = self.e.min(o.e);
        let (a, b) = (self.scale_to(e)?, o.scale_to(e)?);
        Some(Dec {
            m: a.m.checked_add(b.m)?,
            e,
        })
    }

    fn mul(self, o: Dec) -> Option<Dec> {
        Some(Dec {
            m: self.m.checked_mul(o.m)?,
            e: self.e.checked_add(o.e)?,
        })
    }

    /// Rounded to 16 decimal places, half away from zero.
    fn div(self, o: Dec) -> Option<Dec> {
        if o.m == 0 {
            return None;
        }
        // q = self.m / o.m * 10^(self.e - o.e + 16), as an integer.
        let shift = self.e - o.e + 16;
        let (num, den) = if shift >= 0 {
            (self.m.checked_mul(10i128.checked_pow(shift as u32)?)?, o.m)
        } else {
            (
                self.m,
                o.m.checked_mul(10i128.checked_pow((-shift) as u32)?)?,
            )
        };
        let q = num / den;
        let r = num % den;
        let q = if r.checked_mul(2)?.abs() >= den.abs() {
            q + if (num < 0) != (den < 0) { -1 } else { 1 }
        } else {
            q
        };
        Some(Dec { m: q, e: -16 })
    }
}

fn dec_op(first: &Val, rest: &[Val], op: char) -> Result<Val, String> {
    let mut acc = to_float64(first);
    let mut dec = Dec::from_f64(acc);
    for v in rest {
        let f = to_float64(v);
        if op == '/' && f == 0.0 {
            return Err("decimal division by 0".into());
        }
        let d = Dec::from_f64(f);
        dec = match (dec, d) {
            (Some(a), Some(b)) => match op {
                '+' => a.add(b),
                '-' => a.add(Dec { m: -b.m, e: b.e }),
                '*' => a.mul(b),
                _ => a.div(b),
            },
            _ => None,
        };
        acc = match op {
            '+' => acc + f,
            '-' => acc - f,
            '*' => acc * f,
            _ => acc / f,
        };
        if let Some(d) = dec {
            acc = d.to_f64();
        } else {
            dec = Dec::from_f64(acc);
        }
    }
    Ok(Val::Float(dec.map_or(acc, Dec::to_f64)))
}

// ------------------------------------------------------------ paths

/// Go's `path.Clean`.
fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

fn path_dir(p: &str) -> String {
    let dir = match p.rfind('/') {
        Some(i) => &p[..=i],
        None => "",
    };
    path_clean(dir)
}

fn path_ext(p: &str) -> String {
    for (i, c) in p.char_indices().rev() {
        if c == '/' {
            break;
        }
        if c == '.' {
            return p[i..].to_string();
        }
    }
    String::new()
}

/// Go's `os.ExpandEnv`.
fn expand_env(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] == b'$' && i + 1 < b.len() {
            out.push_str(&s[last..i]);
            let rest = &s[i + 1..];
            let (name, w) = if let Some(r) = rest.strip_prefix('{') {
                match r.find('}') {
                    Some(0) | None => ("", if r.find('}') == Some(0) { 2 } else { 1 }),
                    Some(j) => (&r[..j], j + 2),
                }
            } else if rest
                .as_bytes()
                .first()
                .is_some_and(|c| b"*#$@!?-0123456789".contains(c))
            {
                (&rest[..1], 1)
            } else {
                let n = rest
                    .bytes()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == b'_')
                    .count();
                (&rest[..n], n)
            };
            if name.is_empty() && w == 0 {
                out.push('$');
            } else {
                out.push_str(&std::env::var(name).unwrap_or_default());
            }
            i += 1 + w;
            last = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&s[last.min(s.len())..]);
    out
}

// ------------------------------------------------------------ hashes, enc

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-1 (sprig's `sha1sum`), FIPS 180-4.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Padded base-2^`bits` encoding (base64: 6, base32: 5).
fn base_encode(data: &[u8], alphabet: &[u8], bits: u32) -> String {
    let group = if bits == 6 { 4 } else { 8 };
    let mut out = String::new();
    let mut acc: u64 = 0;
    let mut n = 0;
    for &b in data {
        acc = (acc << 8) | u64::from(b);
        n += 8;
        while n >= bits {
            n -= bits;
            out.push(char::from(
                alphabet[((acc >> n) & ((1 << bits) - 1)) as usize],
            ));
        }
    }
    if n > 0 {
        out.push(char::from(
            alphabet[((acc << (bits - n)) & ((1 << bits) - 1)) as usize],
        ));
    }
    while !out.len().is_multiple_of(group) {
        out.push('=');
    }
    out
}

/// Strict padded decoding (Go's `StdEncoding`, which skips `\r` and `\n`).
fn base_decode(s: &str, alphabet: &[u8], bits: u32) -> Result<Vec<u8>, String> {
    let group = if bits == 6 { 4 } else { 8 };
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'\r' && c != b'\n').collect();
    if !clean.len().is_multiple_of(group) {
        let at = clean.len() - clean.len() % group;
        return Err(format!(
            "illegal {} data at input byte {at}",
            if bits == 6 { "base64" } else { "base32" }
        ));
    }
    let mut out = Vec::new();
    let mut acc: u64 = 0;
    let mut n = 0;
    let body_end = clean.iter().rposition(|&c| c != b'=').map_or(0, |p| p + 1);
    for (i, &c) in clean.iter().enumerate() {
        if i >= body_end {
            if c != b'=' {
                return Err(format!("illegal data at input byte {i}"));
            }
            continue;
        }
        let Some(v) = alphabet.iter().position(|&a| a == c) else {
            return Err(format!(
                "illegal {} data at input byte {i}",
                if bits == 6 { "base64" } else { "base32" }
            ));
        };
        acc = (acc << bits) | v as u64;
        n += bits;
        if n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
        }
    }
    Ok(out)
}

// ------------------------------------------------------------ strings

/// Go's case mappings are per character and one to one (Unicode's simple
/// mappings): `ß` stays `ß` in upper case, a final `Σ` lowers to `σ`.
fn go_upper_char(c: char) -> char {
    let mut u = c.to_uppercase();
    match (u.next(), u.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

fn go_lower_char(c: char) -> char {
    c.to_lowercase().next().unwrap_or(c)
}

/// Go's `strings.ToUpper`.
fn go_upper(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars().map(go_upper_char).collect()
}

/// Go's `strings.ToLower`.
fn go_lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars().map(go_lower_char).collect()
}

/// Go's `strings.Title`.
fn title(s: &str) -> String {
    let is_sep = |r: char| {
        if r.is_ascii() {
            return !(r.is_ascii_alphanumeric() || r == '_');
        }
        if r.is_alphabetic() || r.is_numeric() {
            return false;
        }
        r.is_whitespace()
    };
    let mut prev = ' ';
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_sep(prev) {
            out.push(go_upper_char(c));
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// Go's `strings.Trim*` cutset helpers.
fn trim_set<'a>(s: &'a str, cutset: &str, left: bool, right: bool) -> &'a str {
    let f = |c: char| cutset.contains(c);
    match (left, right) {
        (true, true) => s.trim_matches(f),
        (true, false) => s.trim_start_matches(f),
        _ => s.trim_end_matches(f),
    }
}

/// Go's `regexp.QuoteMeta`.
fn quote_meta(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Go's `Regexp.Split(s, n)`.
fn regex_split(r: &::regex::Regex, s: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if !r.as_str().is_empty() && s.is_empty() {
        return vec![String::new()];
    }
    let limit = if n < 0 { usize::MAX } else { n as usize };
    let mut out = Vec::new();
    let (mut beg, mut end) = (0, 0);
    for m in r.find_iter(s).take(limit) {
        if n > 0 && out.len() == limit - 1 {
            break;
        }
        end = m.start();
        if m.end() == 0 {
            continue;
        }
        out.push(s[beg..end].to_string());
        beg = m.end();
    }
    if end != s.len() {
        out.push(s[beg..].to_string());
    }
    out
}

/// A generator seeded from the OS (these functions are rare; no state is
/// kept).
fn rng() -> rand::rngs::StdRng {
    use rand::SeedableRng as _;
    rand::rngs::StdRng::from_os_rng()
}

fn random_string(count: i64, charset: &[u8]) -> Result<Val, String> {
    use rand::Rng as _;
    if count < 0 {
        return Err(format!("count {count} < 0"));
    }
    if count as usize > MAX_BUILD {
        return Err("count too large".into());
    }
    let mut rng = rng();
    st((0..count)
        .map(|_| char::from(charset[rng.random_range(0..charset.len())]))
        .collect::<String>())
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// sprig's `dateInZone` (and `date`, `htmlDate`): a `time.Time`, or
/// integer Unix seconds; anything else means now.
fn date_in_zone(env: &mut Env, layout: &str, date: &Val, zone: &str) -> String {
    let t = match date {
        Val::Time(t) => t.clone(),
        Val::Int(i) | Val::Int64(i) => ZonedTime::utc(*i, 0),
        _ => ZonedTime::now(env.local()),
    };
    let loc = match zone {
        "Local" => env.local().clone(),
        // sprig: a zone that does not load is UTC.
        z => GoLocation::load(z).unwrap_or(GoLocation::Utc),
    };
    ZonedTime::in_location(t.secs, t.nsec, &loc).format(layout)
}

fn until_step(start: i64, stop: i64, step: i64) -> Result<Val, String> {
    if step != 0 && (i128::from(stop) - i128::from(start)) / i128::from(step) > MAX_BUILD as i128 {
        return Err("until: too many elements".into());
    }
    let mut v = Vec::new();
    let mut i = start;
    if stop < start {
        if step >= 0 {
            return Ok(Val::list(v));
        }
        while i > stop {
            v.push(Val::Int(i));
            i += step;
            if v.len() > MAX_BUILD {
                return Err("until: too many elements".into());
            }
        }
        return Ok(Val::list(v));
    }
    if step <= 0 {
        return Ok(Val::list(v));
    }
    while i < stop {
        v.push(Val::Int(i));
        i += step;
        if v.len() > MAX_BUILD {
            return Err("until: too many elements".into());
        }
    }
    Ok(Val::list(v))
}

fn map_of(v: &Val) -> Option<std::cell::RefMut<'_, BTreeMap<String, Val>>> {
    match v {
        Val::Map(m) => Some(m.borrow_mut()),
        _ => None,
    }
}

fn hash_hex<D: sha2::Digest>(data: &[u8]) -> String {
    hex(&D::digest(data))
}

// ------------------------------------------------------------ the table

macro_rules! def {
    ($name:literal, [$($p:ident),*], $f:expr) => {
        FuncDef { name: $name, params: &[$(P::$p),*], variadic: None, f: $f }
    };
    ($name:literal, [$($p:ident),*], var $v:ident, $f:expr) => {
        FuncDef { name: $name, params: &[$(P::$p),*], variadic: Some(P::$v), f: $f }
    };
}

static FUNCS: &[FuncDef] = &[
    // --- Go built-ins
    def!("and", [Any], var Any, |_, a| Ok(a[0].clone())),
    def!("or", [Any], var Any, |_, a| Ok(a[0].clone())),
    def!("not", [Any], |_, a| bl(!truth(&a[0]))),
    def!("eq", [Any], var Any, |_, a| go_eq(&a[0], &a[1..]).map(Val::Bool)),
    def!("ne", [Any, Any], |_, a| go_eq(&a[0], &a[1..])
        .map(|b| Val::Bool(!b))),
    def!("lt", [Any, Any], |_, a| go_lt(&a[0], &a[1]).map(Val::Bool)),
    def!("le", [Any, Any], |_, a| {
        let lt = go_lt(&a[0], &a[1])?;
        Ok(Val::Bool(lt || go_eq(&a[0], &a[1..])?))
    }),
    def!("gt", [Any, Any], |_, a| {
        let le = go_lt(&a[0], &a[1])? || go_eq(&a[0], &a[1..])?;
        bl(!le)
    }),
    def!("ge", [Any, Any], |_, a| go_lt(&a[0], &a[1])
        .map(|b| Val::Bool(!b))),
    def!("len", [Any], |_, a| match &a[0] {
        Val::Str(s) => Ok(Val::Int(s.len() as i64)),
        Val::List(l) => Ok(Val::Int(l.len() as i64)),
        Val::Map(m) => Ok(Val::Int(m.borrow().len() as i64)),
        v => Err(format!("len of type {}", v.type_name())),
    }),
    def!("index", [Any], var Any, |_, a| {
        let mut v = a[0].clone();
        for i in &a[1..] {
            v = match &v {
                Val::List(l) => {
                    let x = match i {
                        Val::Int(x) | Val::Int64(x) => *x,
                        i => return Err(format!("cannot index slice/array with type {}", i.type_name())),
                    };
                    if x < 0 || x as usize >= l.len() {
                        return Err(format!("index out of range: {x}"));
                    }
                    l[x as usize].clone()
                }
                Val::Str(s) => {
                    let x = match i {
                        Val::Int(x) | Val::Int64(x) => *x,
                        i => return Err(format!("cannot index slice/array with type {}", i.type_name())),
                    };
                    if x < 0 || x as usize >= s.len() {
                        return Err(format!("index out of range: {x}"));
                    }
                    Val::Int(i64::from(s.as_bytes()[x as usize]))
                }
                Val::Map(m) => match i {
                    Val::Str(k) => m.borrow().get(k).cloned().unwrap_or(Val::Nil),
                    Val::Nil => m.borrow().get("").cloned().unwrap_or(Val::Nil),
                    i => return Err(format!("{} is not index type for map[string]interface {{}}", i.type_name())),
                },
                Val::Nil => return Err("index of untyped nil".into()),
                v => return Err(format!("can't index item of type {}", v.type_name())),
            };
        }
        Ok(v)
    }),
    def!("print", [], var Any, |_, a| st(sprint(&a))),
    def!("println", [], var Any, |_, a| {
        let parts: Vec<String> = a.iter().map(fmt_v).collect();
        st(parts.join(" ") + "\n")
    }),
    def!("printf", [Str], var Any, |_, a| st(sprintf(s(&a[0]), &a[1..]))),
    def!("html", [], var Any, |_, a| st(html_escape(&eval_args(&a)))),
    def!("js", [], var Any, |_, a| st(js_escape(&eval_args(&a)))),
    def!("urlquery", [], var Any, |_, a| st(query_escape(&eval_args(&a)))),
    // --- Promtail's own
    def!("ToLower", [Str], |_, a| st(go_lower(s(&a[0])))),
    def!("ToUpper", [Str], |_, a| st(go_upper(s(&a[0])))),
    def!("Replace", [Str, Str, Str, Int], |_, a| {
        let (x, old, new, n) = (s(&a[0]), s(&a[1]), s(&a[2]), int(&a[3]));
        st(if n < 0 {
            x.replace(old, new)
        } else {
            x.replacen(old, new, n as usize)
        })
    }),
    def!("Trim", [Str, Str], |_, a| st(trim_set(
        s(&a[0]),
        s(&a[1]),
        true,
        true
    ))),
    def!("TrimLeft", [Str, Str], |_, a| st(trim_set(
        s(&a[0]),
        s(&a[1]),
        true,
        false
    ))),
    def!("TrimRight", [Str, Str], |_, a| st(trim_set(
        s(&a[0]),
        s(&a[1]),
        false,
        true
    ))),
    def!("TrimPrefix", [Str, Str], |_, a| st(s(&a[0])
        .strip_prefix(s(&a[1]))
        .unwrap_or(s(&a[0])))),
    def!("TrimSuffix", [Str, Str], |_, a| st(s(&a[0])
        .strip_suffix(s(&a[1]))
        .unwrap_or(s(&a[0])))),
    def!("TrimSpace", [Str], |_, a| st(s(&a[0]).trim())),
    def!("Hash", [Str, Str], |_, a| {
        let mut d = sha3::Sha3_256::new();
        d.update(s(&a[0]).as_bytes());
        d.update(s(&a[1]).as_bytes());
        st(hex(&d.finalize()))
    }),
    def!("Sha2Hash", [Str, Str], |_, a| {
        let mut d = sha2::Sha256::new();
        d.update(s(&a[0]).as_bytes());
        d.update(s(&a[1]).as_bytes());
        st(hex(&d.finalize()))
    }),
    def!("regexReplaceAll", [Str, Str, Str], |env, a| {
        let r = env.regex(s(&a[0]))?;
        st(r.replace_all(s(&a[1]), s(&a[2])).into_owned())
    }),
    def!("mustRegexReplaceAll", [Str, Str, Str], |env, a| {
        let r = env.regex(s(&a[0]))?;
        st(r.replace_all(s(&a[1]), s(&a[2])).into_owned())
    }),
    def!("regexReplaceAllLiteral", [Str, Str, Str], |env, a| {
        let r = env.regex(s(&a[0]))?;
        st(r.replace_all(s(&a[1]), ::regex::NoExpand(s(&a[2])))
            .into_owned())
    }),
    def!("mustRegexReplaceAllLiteral", [Str, Str, Str], |env, a| {
        let r = env.regex(s(&a[0]))?;
        st(r.replace_all(s(&a[1]), ::regex::NoExpand(s(&a[2])))
            .into_owned())
    }),
    // --- sprig: regex
    def!("regexMatch", [Str, Str], |env, a| bl(env
        .regex(s(&a[0]))
        .is_ok_and(|r| r.is_match(s(&a[1]))))),
    def!("mustRegexMatch", [Str, Str], |env, a| bl(env
        .regex(s(&a[0]))?
        .is_match(s(&a[1])))),
    def!("regexFind", [Str, Str], |env, a| st(env
        .regex(s(&a[0]))?
        .find(s(&a[1]))
        .map_or("", |m| m.as_str()))),
    def!("mustRegexFind", [Str, Str], |env, a| st(env
        .regex(s(&a[0]))?
        .find(s(&a[1]))
        .map_or("", |m| m.as_str()))),
    def!("regexFindAll", [Str, Str, Int], |env, a| {
        let n = int(&a[2]);
        let r = env.regex(s(&a[0]))?;
        let lim = if n < 0 { usize::MAX } else { n as usize };
        Ok(strs(
            r.find_iter(s(&a[1]))
                .take(lim)
                .map(|m| m.as_str().to_string())
                .collect(),
        ))
    }),
    def!("mustRegexFindAll", [Str, Str, Int], |env, a| {
        let n = int(&a[2]);
        let r = env.regex(s(&a[0]))?;
        let lim = if n < 0 { usize::MAX } else { n as usize };
        Ok(strs(
            r.find_iter(s(&a[1]))
                .take(lim)
                .map(|m| m.as_str().to_string())
                .collect(),
        ))
    }),
    def!("regexSplit", [Str, Str, Int], |env, a| {
        let r = env.regex(s(&a[0]))?;
        Ok(strs(regex_split(r, s(&a[1]), int(&a[2]))))
    }),
    def!("mustRegexSplit", [Str, Str, Int], |env, a| {
        let r = env.regex(s(&a[0]))?;
        Ok(strs(regex_split(r, s(&a[1]), int(&a[2]))))
    }),
    def!("regexQuoteMeta", [Str], |_, a| st(quote_meta(s(&a[0])))),
    // --- sprig: strings
    def!("hello", [], |_, _| st("Hello!")),
    def!("trim", [Str], |_, a| st(s(&a[0]).trim())),
    def!("upper", [Str], |_, a| st(go_upper(s(&a[0])))),
    def!("lower", [Str], |_, a| st(go_lower(s(&a[0])))),
    def!("title", [Str], |_, a| st(title(s(&a[0])))),
    def!("untitle", [Str], |_, a| {
        let mut next = true;
        st(s(&a[0])
            .chars()
            .flat_map(|c| {
                if c.is_whitespace() {
                    next = true;
                    vec![c]
                } else if next {
                    next = false;
                    vec![go_lower_char(c)]
                } else {
                    vec![c]
                }
            })
            .collect::<String>())
    }),
    def!("substr", [Int, Int, Str], |_, a| {
        let (start, end, x) = (int(&a[0]), int(&a[1]), s(&a[2]));
        let len = x.len() as i64;
        st(if start < 0 {
            byte_slice(x, 0, end)?
        } else if end < 0 || end > len {
            byte_slice(x, start, len)?
        } else {
            byte_slice(x, start, end)?
        })
    }),
    def!("trunc", [Int, Str], |_, a| {
        let (c, x) = (int(&a[0]), s(&a[1]));
        let len = x.len() as i64;
        st(if c < 0 && len + c > 0 {
            byte_slice(x, len + c, len)?
        } else if c >= 0 && len > c {
            byte_slice(x, 0, c)?
        } else {
            x.to_string()
        })
    }),
    def!("abbrev", [Int, Str], |_, a| {
        let (w, x) = (int(&a[0]), s(&a[1]));
        st(if w < 4 || x.len() as i64 <= w {
            x.to_string()
        } else {
            byte_slice(x, 0, w - 3)? + "..."
        })
    }),
    def!("repeat", [Int, Str], |_, a| {
        let (n, x) = (int(&a[0]), s(&a[1]));
        if n < 0 {
            return Err("strings: negative Repeat count".into());
        }
        if (n as u128) * (x.len() as u128) > MAX_BUILD as u128 {
            return Err("repeat: result too large".into());
        }
        st(x.repeat(n as usize))
    }),
    def!("trimall", [Str, Str], |_, a| st(trim_set(
        s(&a[1]),
        s(&a[0]),
        true,
        true
    ))),
    def!("trimAll", [Str, Str], |_, a| st(trim_set(
        s(&a[1]),
        s(&a[0]),
        true,
        true
    ))),
    def!("trimSuffix", [Str, Str], |_, a| st(s(&a[1])
        .strip_suffix(s(&a[0]))
        .unwrap_or(s(&a[1])))),
    def!("trimPrefix", [Str, Str], |_, a| st(s(&a[1])
        .strip_prefix(s(&a[0]))
        .unwrap_or(s(&a[1])))),
    def!("nospace", [Str], |_, a| st(s(&a[0])
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>())),
    def!("initials", [Str], |_, a| {
        let mut next = true;
        let mut out = String::new();
        for c in s(&a[0]).chars() {
            if c.is_whitespace() {
                next = true;
            } else if next {
                out.push(c);
                next = false;
            }
        }
        st(out)
    }),
    def!("swapcase", [Str], |_, a| st(s(&a[0])
        .chars()
        .flat_map(|c| -> Vec<char> {
            if c.is_uppercase() {
                vec![go_lower_char(c)]
            } else if c.is_lowercase() {
                vec![go_upper_char(c)]
            } else {
                vec![c]
            }
        })
        .collect::<String>())),
    def!("shuffle", [Str], |_, a| {
        use rand::seq::SliceRandom as _;
        let mut cs: Vec<char> = s(&a[0]).chars().collect();
        cs.shuffle(&mut rng());
        st(cs.into_iter().collect::<String>())
    }),
    def!("randAlphaNum", [Int], |_, a| random_string(
        int(&a[0]),
        ALNUM
    )),
    def!("randAlpha", [Int], |_, a| random_string(
        int(&a[0]),
        &ALNUM[..52]
    )),
    def!("randNumeric", [Int], |_, a| random_string(
        int(&a[0]),
        &ALNUM[52..]
    )),
    def!("randAscii", [Int], |_, a| {
        let printable: Vec<u8> = (32u8..=126).collect();
        random_string(int(&a[0]), &printable)
    }),
    def!("uuidv4", [], |_, _| {
        use rand::Rng as _;
        let mut b: [u8; 16] = rng().random();
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let h = hex(&b);
        st(format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        ))
    }),
    def!("contains", [Str, Str], |_, a| bl(
        s(&a[1]).contains(s(&a[0]))
    )),
    def!("hasPrefix", [Str, Str], |_, a| bl(
        s(&a[1]).starts_with(s(&a[0]))
    )),
    def!("hasSuffix", [Str, Str], |_, a| bl(
        s(&a[1]).ends_with(s(&a[0]))
    )),
    def!("quote", [], var Any, |_, a| {
        let q: Vec<String> = a.iter().filter(|v| !v.is_nil()).map(|v| go_quote(&strval(v))).collect();
        st(q.join(" "))
    }),
    def!("squote", [], var Any, |_, a| {
        let q: Vec<String> = a.iter().filter(|v| !v.is_nil()).map(|v| format!("'{}'", fmt_v(v))).collect();
        st(q.join(" "))
    }),
    def!("cat", [], var Any, |_, a| {
        let parts: Vec<String> = a.iter().filter(|v| !v.is_nil()).map(fmt_v).collect();
        st(parts.join(" "))
    }),
    def!("indent", [Int, Str], |_, a| {
        let pad = " ".repeat(int(&a[0]).clamp(0, 1 << 16) as usize);
        st(format!(
            "{pad}{}",
            s(&a[1]).replace('\n', &format!("\n{pad}"))
        ))
    }),
    def!("nindent", [Int, Str], |_, a| {
        let pad = " ".repeat(int(&a[0]).clamp(0, 1 << 16) as usize);
        st(format!(
            "\n{pad}{}",
            s(&a[1]).replace('\n', &format!("\n{pad}"))
        ))
    }),
    def!("replace", [Str, Str, Str], |_, a| st(
        s(&a[2]).replace(s(&a[0]), s(&a[1]))
    )),
    def!("plural", [Str, Str, Int], |_, a| st(if int(&a[2]) == 1 {
        s(&a[0])
    } else {
        s(&a[1])
    })),
    def!("sha1sum", [Str], |_, a| st(hex(&sha1(s(&a[0]).as_bytes())))),
    def!("sha256sum", [Str], |_, a| st(hash_hex::<sha2::Sha256>(
        s(&a[0]).as_bytes()
    ))),
    def!("sha512sum", [Str], |_, a| st(hash_hex::<sha2::Sha512>(
        s(&a[0]).as_bytes()
    ))),
    def!("adler32sum", [Str], |_, a| st(
        adler32(s(&a[0]).as_bytes()).to_string()
    )),
    def!("toString", [Any], |_, a| st(strval(&a[0]))),
    def!("toStrings", [Any], |_, a| Ok(strs(strslice(&a[0])))),
    def!("atoi", [Str], |_, a| Ok(Val::Int(
        s(&a[0]).parse().unwrap_or(0)
    ))),
    def!("int64", [Any], |_, a| Ok(Val::Int64(to_int64(&a[0])))),
    def!("int", [Any], |_, a| Ok(Val::Int(to_int64(&a[0])))),
    def!("float64", [Any], |_, a| Ok(Val::Float(to_float64(&a[0])))),
    def!("toDecimal", [Any], |_, a| Ok(Val::Int64(
        i64::from_str_radix(&fmt_v(&a[0]), 8).unwrap_or(0)
    ))),
    def!("split", [Str, Str], |_, a| {
        let m = s(&a[1])
            .split(s(&a[0]))
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Val::str(p)))
            .collect();
        Ok(Val::map(m))
    }),
    def!("splitn", [Str, Int, Str], |_, a| {
        let n = int(&a[1]);
        if n == 0 {
            return Ok(Val::map(BTreeMap::new()));
        }
        let lim = if n < 0 { usize::MAX } else { n as usize };
        let m = s(&a[2])
            .splitn(lim, s(&a[0]))
            .enumerate()
            .map(|(i, p)| (format!("_{i}"), Val::str(p)))
            .collect();
        Ok(Val::map(m))
    }),
    def!("splitList", [Str, Str], |_, a| {
        let (sep, x) = (s(&a[0]), s(&a[1]));
        if sep.is_empty() {
            return Ok(strs(x.chars().map(String::from).collect()));
        }
        Ok(strs(x.split(sep).map(String::from).collect()))
    }),
    def!(
        "join",
        [Str, Any],
        |_, a| st(strslice(&a[1]).join(s(&a[0])))
    ),
    def!("sortAlpha", [Any], |_, a| {
        let mut v = match &a[0] {
            Val::List(_) => strslice(&a[0]),
            v => vec![strval(v)],
        };
        v.sort();
        Ok(strs(v))
    }),
    def!("until", [Int], |_, a| {
        let n = int(&a[0]);
        until_step(0, n, if n < 0 { -1 } else { 1 })
    }),
    def!("untilStep", [Int, Int, Int], |_, a| until_step(
        int(&a[0]),
        int(&a[1]),
        int(&a[2])
    )),
    // --- sprig: arithmetic
    def!("add1", [Any], |_, a| Ok(Val::Int64(
        to_int64(&a[0]).wrapping_add(1)
    ))),
    def!("add", [], var Any, |_, a| Ok(Val::Int64(a.iter().fold(0i64, |s, v| s.wrapping_add(to_int64(v)))))),
    def!("sub", [Any, Any], |_, a| Ok(Val::Int64(
        to_int64(&a[0]).wrapping_sub(to_int64(&a[1]))
    ))),
    def!("div", [Any, Any], |_, a| {
        let d = to_int64(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        Ok(Val::Int64(to_int64(&a[0]).wrapping_div(d)))
    }),
    def!("mod", [Any, Any], |_, a| {
        let d = to_int64(&a[1]);
        if d == 0 {
            return Err("runtime error: integer divide by zero".into());
        }
        Ok(Val::Int64(to_int64(&a[0]).wrapping_rem(d)))
    }),
    def!("mul", [Any], var Any, |_, a| Ok(Val::Int64(a[1..].iter().fold(to_int64(&a[0]), |s, v| s.wrapping_mul(to_int64(v)))))),
    def!("randInt", [Int, Int], |_, a| {
        use rand::Rng as _;
        let (lo, hi) = (int(&a[0]), int(&a[1]));
        if hi <= lo {
            return Err("invalid argument to Intn".into());
        }
        Ok(Val::Int(rng().random_range(lo..hi)))
    }),
    def!("add1f", [Any], |_, a| dec_op(
        &a[0],
        &[Val::Float(1.0)],
        '+'
    )),
    def!("addf", [], var Any, |_, a| dec_op(&Val::Float(0.0), &a, '+')),
    def!("subf", [Any], var Any, |_, a| dec_op(&a[0], &a[1..], '-')),
    def!("divf", [Any], var Any, |_, a| dec_op(&a[0], &a[1..], '/')),
    def!("mulf", [Any], var Any, |_, a| dec_op(&a[0], &a[1..], '*')),
    def!("biggest", [Any], var Any, |_, a| Ok(Val::Int64(a.iter().map(to_int64).max().unwrap_or(0)))),
    def!("max", [Any], var Any, |_, a| Ok(Val::Int64(a.iter().map(to_int64).max().unwrap_or(0)))),
    def!("min", [Any], var Any, |_, a| Ok(Val::Int64(a.iter().map(to_int64).min().unwrap_or(0)))),
    def!("maxf", [Any], var Any, |_, a| Ok(Val::Float(a[1..].iter().map(to_float64).fold(to_float64(&a[0]), f64::max)))),
    def!("minf", [Any], var Any, |_, a| Ok(Val::Float(a[1..].iter().map(to_float64).fold(to_float64(&a[0]), f64::min)))),
    def!("ceil", [Any], |_, a| Ok(Val::Float(
        to_float64(&a[0]).ceil()
    ))),
    def!("floor", [Any], |_, a| Ok(Val::Float(
        to_float64(&a[0]).floor()
    ))),
    def!("round", [Any, Int], var Float, |_, a| {
        let round_on = match a.get(2) {
            Some(Val::Float(f)) => *f,
            _ => 0.5,
        };
        let val = to_float64(&a[0]);
        let pow = 10f64.powf(int(&a[1]) as f64);
        let digit = pow * val;
        let div = digit.fract();
        let r = if div >= round_on { digit.ceil() } else { digit.floor() };
        Ok(Val::Float(r / pow))
    }),
    // --- sprig: defaults, flow
    def!("default", [Any], var Any, |_, a| {
        Ok(match a.get(1) {
            Some(g) if !empty(g) => g.clone(),
            _ => a[0].clone(),
        })
    }),
    def!("empty", [Any], |_, a| bl(empty(&a[0]))),
    def!("coalesce", [], var Any, |_, a| Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Val::Nil))),
    def!("all", [], var Any, |_, a| bl(a.iter().all(|v| !empty(v)))),
    def!("any", [], var Any, |_, a| bl(a.iter().any(|v| !empty(v)))),
    def!("compact", [Any], |_, a| Ok(Val::list(
        list_of(&a[0], "compact")?
            .iter()
            .filter(|v| !empty(v))
            .cloned()
            .collect()
    ))),
    def!("mustCompact", [Any], |_, a| Ok(Val::list(
        list_of(&a[0], "compact")?
            .iter()
            .filter(|v| !empty(v))
            .cloned()
            .collect()
    ))),
    def!("ternary", [Any, Any, Bool], |_, a| Ok(
        if matches!(a[2], Val::Bool(true)) {
            a[0].clone()
        } else {
            a[1].clone()
        }
    )),
    def!("fail", [Str], |_, a| Err(s(&a[0]).to_string())),
    def!("toJson", [Any], |_, a| st(to_json(
        &a[0],
        JsonFlavor::GoJson,
        false
    )
    .unwrap_or_default())),
    def!("toPrettyJson", [Any], |_, a| st(to_json(
        &a[0],
        JsonFlavor::GoJson,
        true
    )
    .unwrap_or_default())),
    def!("toRawJson", [Any], |_, a| st(to_json(
        &a[0],
        JsonFlavor::GoJsonRaw,
        false
    )
    .unwrap_or_default())),
    def!("mustToJson", [Any], |_, a| st(to_json(
        &a[0],
        JsonFlavor::GoJson,
        false
    )?)),
    def!("mustToPrettyJson", [Any], |_, a| st(to_json(
        &a[0],
        JsonFlavor::GoJson,
        true
    )?)),
    def!("mustToRawJson", [Any], |_, a| st(to_json(
        &a[0],
        JsonFlavor::GoJsonRaw,
        false
    )?)),
    def!("fromJson", [Str], |_, a| Ok(
        from_json(s(&a[0])).unwrap_or(Val::Nil)
    )),
    def!("mustFromJson", [Str], |_, a| from_json(s(&a[0]))),
    def!("deepCopy", [Any], |_, a| Ok(a[0].clone())),
    def!("mustDeepCopy", [Any], |_, a| {
        if a[0].is_nil() {
            return Err("copy: cannot copy nil".into());
        }
        Ok(a[0].clone())
    }),
    // --- sprig: reflection
    def!("typeOf", [Any], |_, a| st(a[0].type_name())),
    def!(
        "typeIs",
        [Str, Any],
        |_, a| bl(s(&a[0]) == a[1].type_name())
    ),
    def!("typeIsLike", [Str, Any], |_, a| {
        let t = a[1].type_name();
        bl(s(&a[0]) == t || s(&a[0]) == format!("*{t}"))
    }),
    def!("kindOf", [Any], |_, a| st(a[0].kind_name())),
    def!(
        "kindIs",
        [Str, Any],
        |_, a| bl(s(&a[0]) == a[1].kind_name())
    ),
    def!("deepEqual", [Any, Any], |_, a| bl(deep_equal(&a[0], &a[1]))),
    // --- sprig: OS and paths
    def!("env", [Str], |_, a| st(
        std::env::var(s(&a[0])).unwrap_or_default()
    )),
    def!("expandenv", [Str], |_, a| st(expand_env(s(&a[0])))),
    def!("base", [Str], |_, a| st(path_base(s(&a[0])))),
    def!("dir", [Str], |_, a| st(path_dir(s(&a[0])))),
    def!("clean", [Str], |_, a| st(path_clean(s(&a[0])))),
    def!("ext", [Str], |_, a| st(path_ext(s(&a[0])))),
    def!("isAbs", [Str], |_, a| bl(s(&a[0]).starts_with('/'))),
    def!("osBase", [Str], |_, a| st(path_base(s(&a[0])))),
    def!("osDir", [Str], |_, a| st(path_dir(s(&a[0])))),
    def!("osClean", [Str], |_, a| st(path_clean(s(&a[0])))),
    def!("osExt", [Str], |_, a| st(path_ext(s(&a[0])))),
    def!("osIsAbs", [Str], |_, a| bl(s(&a[0]).starts_with('/'))),
    // --- sprig: encoding
    def!("b64enc", [Str], |_, a| st(base_encode(
        s(&a[0]).as_bytes(),
        B64,
        6
    ))),
    def!("b64dec", [Str], |_, a| st(
        match base_decode(s(&a[0]), B64, 6) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => e,
        }
    )),
    def!("b32enc", [Str], |_, a| st(base_encode(
        s(&a[0]).as_bytes(),
        B32,
        5
    ))),
    def!("b32dec", [Str], |_, a| st(
        match base_decode(s(&a[0]), B32, 5) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) => e,
        }
    )),
    // --- sprig: lists
    def!("list", [], var Any, |_, a| Ok(Val::list(a))),
    def!("tuple", [], var Any, |_, a| Ok(Val::list(a))),
    def!("first", [Any], |_, a| Ok(list_of(&a[0], "find first")?
        .first()
        .cloned()
        .unwrap_or(Val::Nil))),
    def!("mustFirst", [Any], |_, a| Ok(list_of(&a[0], "find first")?
        .first()
        .cloned()
        .unwrap_or(Val::Nil))),
    def!("last", [Any], |_, a| Ok(list_of(&a[0], "find last")?
        .last()
        .cloned()
        .unwrap_or(Val::Nil))),
    def!("mustLast", [Any], |_, a| Ok(list_of(&a[0], "find last")?
        .last()
        .cloned()
        .unwrap_or(Val::Nil))),
    def!("rest", [Any], |_, a| {
        let l = list_of(&a[0], "find rest")?;
        Ok(if l.is_empty() {
            Val::Nil
        } else {
            Val::list(l[1..].to_vec())
        })
    }),
    def!("mustRest", [Any], |_, a| {
        let l = list_of(&a[0], "find rest")?;
        Ok(if l.is_empty() {
            Val::Nil
        } else {
            Val::list(l[1..].to_vec())
        })
    }),
    def!("initial", [Any], |_, a| {
        let l = list_of(&a[0], "find initial")?;
        Ok(if l.is_empty() {
            Val::Nil
        } else {
            Val::list(l[..l.len() - 1].to_vec())
        })
    }),
    def!("mustInitial", [Any], |_, a| {
        let l = list_of(&a[0], "find initial")?;
        Ok(if l.is_empty() {
            Val::Nil
        } else {
            Val::list(l[..l.len() - 1].to_vec())
        })
    }),
    def!("append", [Any, Any], |_, a| {
        let mut l = list_of(&a[0], "push")?.to_vec();
        l.push(a[1].clone());
        Ok(Val::list(l))
    }),
    def!("push", [Any, Any], |_, a| {
        let mut l = list_of(&a[0], "push")?.to_vec();
        l.push(a[1].clone());
        Ok(Val::list(l))
    }),
    def!("mustAppend", [Any, Any], |_, a| {
        let mut l = list_of(&a[0], "push")?.to_vec();
        l.push(a[1].clone());
        Ok(Val::list(l))
    }),
    def!("mustPush", [Any, Any], |_, a| {
        let mut l = list_of(&a[0], "push")?.to_vec();
        l.push(a[1].clone());
        Ok(Val::list(l))
    }),
    def!("prepend", [Any, Any], |_, a| {
        let mut l = vec![a[1].clone()];
        l.extend(list_of(&a[0], "prepend")?.iter().cloned());
        Ok(Val::list(l))
    }),
    def!("mustPrepend", [Any, Any], |_, a| {
        let mut l = vec![a[1].clone()];
        l.extend(list_of(&a[0], "prepend")?.iter().cloned());
        Ok(Val::list(l))
    }),
    def!("reverse", [Any], |_, a| Ok(Val::list(
        list_of(&a[0], "reverse")?.iter().rev().cloned().collect()
    ))),
    def!("mustReverse", [Any], |_, a| Ok(Val::list(
        list_of(&a[0], "reverse")?.iter().rev().cloned().collect()
    ))),
    def!("uniq", [Any], |_, a| {
        let mut out: Vec<Val> = Vec::new();
        for v in list_of(&a[0], "uniq")?.iter() {
            if !out.iter().any(|o| deep_equal(o, v)) {
                out.push(v.clone());
            }
        }
        Ok(Val::list(out))
    }),
    def!("mustUniq", [Any], |_, a| {
        let mut out: Vec<Val> = Vec::new();
        for v in list_of(&a[0], "uniq")?.iter() {
            if !out.iter().any(|o| deep_equal(o, v)) {
                out.push(v.clone());
            }
        }
        Ok(Val::list(out))
    }),
    def!("without", [Any], var Any, |_, a| {
        let l = list_of(&a[0], "find without")?;
        Ok(Val::list(l.iter().filter(|v| !a[1..].iter().any(|o| deep_equal(o, v))).cloned().collect()))
    }),
    def!("mustWithout", [Any], var Any, |_, a| {
        let l = list_of(&a[0], "find without")?;
        Ok(Val::list(l.iter().filter(|v| !a[1..].iter().any(|o| deep_equal(o, v))).cloned().collect()))
    }),
    def!("has", [Any, Any], |_, a| {
        if a[1].is_nil() {
            return bl(false);
        }
        bl(list_of(&a[1], "find has")?
            .iter()
            .any(|v| deep_equal(v, &a[0])))
    }),
    def!("mustHas", [Any, Any], |_, a| {
        if a[1].is_nil() {
            return bl(false);
        }
        bl(list_of(&a[1], "find has")?
            .iter()
            .any(|v| deep_equal(v, &a[0])))
    }),
    def!("slice", [Any], var Any, |_, a| {
        let l = list_of(&a[0], "slice")?;
        if l.is_empty() {
            return Ok(Val::Nil);
        }
        let start = a.get(1).map_or(0, to_int64);
        let end = a.get(2).map_or(l.len() as i64, to_int64);
        if start < 0 || end < start || end as usize > l.len() {
            return Err(format!("reflect: slice index out of bounds [{start}:{end}]"));
        }
        Ok(Val::list(l[start as usize..end as usize].to_vec()))
    }),
    def!("concat", [], var Any, |_, a| {
        let mut out = Vec::new();
        for l in &a {
            out.extend(list_of(l, "concat")?.iter().cloned());
        }
        Ok(Val::list(out))
    }),
    def!("chunk", [Int, Any], |_, a| {
        let size = int(&a[0]);
        let l = list_of(&a[1], "chunk")?;
        if size <= 0 {
            return Err("chunk: size must be positive".into());
        }
        Ok(Val::list(
            l.chunks(size as usize)
                .map(|c| Val::list(c.to_vec()))
                .collect(),
        ))
    }),
    def!("mustChunk", [Int, Any], |_, a| {
        let size = int(&a[0]);
        let l = list_of(&a[1], "chunk")?;
        if size <= 0 {
            return Err("chunk: size must be positive".into());
        }
        Ok(Val::list(
            l.chunks(size as usize)
                .map(|c| Val::list(c.to_vec()))
                .collect(),
        ))
    }),
    // --- sprig: dicts
    def!("dict", [], var Any, |_, a| {
        let mut m = BTreeMap::new();
        for pair in a.chunks(2) {
            let v = pair.get(1).cloned().unwrap_or_else(|| Val::str(""));
            m.insert(strval(&pair[0]), v);
        }
        Ok(Val::map(m))
    }),
    def!("get", [Map, Str], |_, a| Ok(match &a[0] {
        Val::Map(m) => m
            .borrow()
            .get(s(&a[1]))
            .cloned()
            .unwrap_or_else(|| Val::str("")),
        _ => Val::str(""),
    })),
    def!("set", [Map, Str, Any], |_, a| {
        let Some(mut m) = map_of(&a[0]) else {
            return Err("assignment to entry in nil map".into());
        };
        m.insert(s(&a[1]).to_string(), a[2].clone());
        drop(m);
        Ok(a[0].clone())
    }),
    def!("unset", [Map, Str], |_, a| {
        if let Some(mut m) = map_of(&a[0]) {
            m.remove(s(&a[1]));
        }
        Ok(a[0].clone())
    }),
    def!("hasKey", [Map, Str], |_, a| bl(match &a[0] {
        Val::Map(m) => m.borrow().contains_key(s(&a[1])),
        _ => false,
    })),
    def!("keys", [], var Map, |_, a| {
        let mut k: Vec<String> = Vec::new();
        for m in &a {
            if let Val::Map(m) = m {
                k.extend(m.borrow().keys().cloned());
            }
        }
        Ok(strs(k))
    }),
    def!("values", [Map], |_, a| Ok(Val::list(match &a[0] {
        Val::Map(m) => m.borrow().values().cloned().collect(),
        _ => Vec::new(),
    }))),
    def!("pluck", [Str], var Map, |_, a| {
        let k = s(&a[0]);
        Ok(Val::list(a[1..].iter().filter_map(|m| match m {
            Val::Map(m) => m.borrow().get(k).cloned(),
            _ => None,
        }).collect()))
    }),
    def!("pick", [Map], var Str, |_, a| {
        let mut out = BTreeMap::new();
        if let Val::Map(m) = &a[0] {
            for k in &a[1..] {
                if let Some(v) = m.borrow().get(s(k)) {
                    out.insert(s(k).to_string(), v.clone());
                }
            }
        }
        Ok(Val::map(out))
    }),
    def!("omit", [Map], var Str, |_, a| {
        let mut out = BTreeMap::new();
        if let Val::Map(m) = &a[0] {
            for (k, v) in m.borrow().iter() {
                if !a[1..].iter().any(|o| s(o) == k) {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Ok(Val::map(out))
    }),
    def!("dig", [Any], var Any, |_, a| {
        // dig "k1" "k2" default dict
        if a.len() < 3 {
            return Err("dig needs at least three arguments".into());
        }
        let n = a.len();
        let (keys, def, mut cur) = (&a[..n - 2], a[n - 2].clone(), a[n - 1].clone());
        for k in keys {
            let next = match &cur {
                Val::Map(m) => m.borrow().get(&strval(k)).cloned(),
                _ => None,
            };
            match next {
                Some(v) => cur = v,
                None => return Ok(def),
            }
        }
        Ok(cur)
    }),
    // --- sprig: dates
    def!("now", [], |env, _| Ok(Val::Time(ZonedTime::now(
        env.local()
    )))),
    def!("date", [Str, Any], |env, a| st(date_in_zone(
        env,
        s(&a[0]),
        &a[1],
        "Local"
    ))),
    def!("dateInZone", [Str, Any, Str], |env, a| st(date_in_zone(
        env,
        s(&a[0]),
        &a[1],
        s(&a[2])
    ))),
    def!("date_in_zone", [Str, Any, Str], |env, a| st(date_in_zone(
        env,
        s(&a[0]),
        &a[1],
        s(&a[2])
    ))),
    def!("htmlDate", [Any], |env, a| st(date_in_zone(
        env,
        "2006-01-02",
        &a[0],
        "Local"
    ))),
    def!("htmlDateInZone", [Any, Str], |env, a| st(date_in_zone(
        env,
        "2006-01-02",
        &a[0],
        s(&a[1])
    ))),
    def!("toDate", [Str, Str], |env, a| {
        let local = env.local().clone();
        Ok(Val::Time(
            gotime::parse_in_location(s(&a[0]), s(&a[1]), &local)
                .unwrap_or_else(|_| ZonedTime::zero()),
        ))
    }),
    def!("mustToDate", [Str, Str], |env, a| {
        let local = env.local().clone();
        Ok(Val::Time(gotime::parse_in_location(
            s(&a[0]),
            s(&a[1]),
            &local,
        )?))
    }),
    def!("unixEpoch", [Time], |_, a| st(time(&a[0]).secs.to_string())),
    def!("dateModify", [Str, Time], |_, a| Ok(Val::Time(
        date_modify(s(&a[0]), time(&a[1])).unwrap_or_else(|| time(&a[1]))
    ))),
    def!("date_modify", [Str, Time], |_, a| Ok(Val::Time(
        date_modify(s(&a[0]), time(&a[1])).unwrap_or_else(|| time(&a[1]))
    ))),
    def!("mustDateModify", [Str, Time], |_, a| {
        date_modify(s(&a[0]), time(&a[1]))
            .map(Val::Time)
            .ok_or_else(|| format!("time: invalid duration {:?}", s(&a[0])))
    }),
    def!("must_date_modify", [Str, Time], |_, a| {
        date_modify(s(&a[0]), time(&a[1]))
            .map(Val::Time)
            .ok_or_else(|| format!("time: invalid duration {:?}", s(&a[0])))
    }),
    def!("duration", [Any], |_, a| {
        let n: i64 = match &a[0] {
            Val::Str(x) => x.parse().unwrap_or(0),
            Val::Int64(i) => *i,
            _ => 0,
        };
        st(gotime::format_duration(n.saturating_mul(1_000_000_000)))
    }),
    def!("durationRound", [Any], |env, a| {
        let d: i128 = match &a[0] {
            Val::Str(x) => i128::from(gotime::parse_duration(x).unwrap_or(0)),
            Val::Int64(i) => i128::from(*i),
            Val::Time(t) => ZonedTime::now(env.local()).unix_nano() - t.unix_nano(),
            _ => 0,
        };
        let u = d.unsigned_abs();
        const S: u128 = 1_000_000_000;
        let (y, mo, dd, h, mi) = (
            S * 3600 * 24 * 365,
            S * 3600 * 24 * 30,
            S * 3600 * 24,
            S * 3600,
            S * 60,
        );
        st(if u > y {
            format!("{}y", u / y)
        } else if u > mo {
            format!("{}m", u / mo)
        } else if u > dd {
            format!("{}d", u / dd)
        } else if u > h {
            format!("{}h", u / h)
        } else if u > mi {
            format!("{}m", u / mi)
        } else if u > S {
            format!("{}s", u / S)
        } else {
            "0s".into()
        })
    }),
    def!("ago", [Any], |env, a| {
        let now = ZonedTime::now(env.local());
        let t = match &a[0] {
            Val::Time(t) => t.clone(),
            Val::Int(i) | Val::Int64(i) => ZonedTime::utc(*i, 0),
            _ => now.clone(),
        };
        let d = now.unix_nano() - t.unix_nano();
        // Rounded to seconds, half away from zero.
        let secs = (d + if d >= 0 { 500_000_000 } else { -500_000_000 }) / 1_000_000_000;
        let secs = i64::try_from(secs).unwrap_or(i64::MAX / 1_000_000_000);
        st(gotime::format_duration(secs.saturating_mul(1_000_000_000)))
    }),
];

/// sprig's `dateModify`: the time plus a Go duration (`-1.5h`).
fn date_modify(d: &str, t: ZonedTime) -> Option<ZonedTime> {
    let ns = i128::from(gotime::parse_duration(d)?);
    let total = t.unix_nano() + ns;
    let secs = i64::try_from(total.div_euclid(1_000_000_000)).ok()?;
    let nsec = total.rem_euclid(1_000_000_000) as u32;
    Some(ZonedTime {
        secs,
        nsec,
        offset: t.offset,
        zone: t.zone,
    })
}

static TIME_METHODS: &[FuncDef] = &[
    def!("Unix", [Time], |_, a| Ok(Val::Int64(time(&a[0]).secs))),
    def!("UnixMilli", [Time], |_, a| Ok(Val::Int64(
        (time(&a[0]).unix_nano() / 1_000_000) as i64
    ))),
    def!("UnixMicro", [Time], |_, a| Ok(Val::Int64(
        (time(&a[0]).unix_nano() / 1_000) as i64
    ))),
    def!("UnixNano", [Time], |_, a| Ok(Val::Int64(
        time(&a[0]).unix_nano() as i64
    ))),
    def!("Year", [Time], |_, a| Ok(Val::Int(time(&a[0]).year()))),
    def!("YearDay", [Time], |_, a| Ok(Val::Int(
        time(&a[0]).year_day()
    ))),
    def!("Day", [Time], |_, a| Ok(Val::Int(time(&a[0]).day()))),
    def!("Hour", [Time], |_, a| Ok(Val::Int(time(&a[0]).hour()))),
    def!("Minute", [Time], |_, a| Ok(Val::Int(time(&a[0]).minute()))),
    def!("Second", [Time], |_, a| Ok(Val::Int(time(&a[0]).second()))),
    def!("Nanosecond", [Time], |_, a| Ok(Val::Int(i64::from(
        time(&a[0]).nsec
    )))),
    def!("Format", [Time, Str], |_, a| st(
        time(&a[0]).format(s(&a[1]))
    )),
    def!("String", [Time], |_, a| st(time(&a[0]).to_go_string())),
    def!("UTC", [Time], |_, a| {
        let t = time(&a[0]);
        Ok(Val::Time(ZonedTime::utc(t.secs, t.nsec)))
    }),
    def!("Local", [Time], |env, a| {
        let t = time(&a[0]);
        Ok(Val::Time(ZonedTime::in_location(
            t.secs,
            t.nsec,
            env.local(),
        )))
    }),
    def!("IsZero", [Time], |_, a| bl(time(&a[0]).secs
        == ZonedTime::zero().secs
        && time(&a[0]).nsec == 0)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_unique_and_not_also_unsupported() {
        let mut names: Vec<&str> = FUNCS.iter().map(|d| d.name).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len(), "duplicate function names");
        for u in UNSUPPORTED {
            assert!(!names.contains(u), "{u}");
        }
    }

    #[test]
    fn hashes_and_encodings() {
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(adler32(b"Wikipedia"), 0x11E6_0398);
        assert_eq!(base_encode(b"hello", B64, 6), "aGVsbG8=");
        assert_eq!(base_encode(b"hello", B32, 5), "NBSWY3DP");
        assert_eq!(base_decode("aGVsbG8=", B64, 6).unwrap(), b"hello");
        assert_eq!(base_decode("NBSWY3DP", B32, 5).unwrap(), b"hello");
        assert!(base_decode("aGVsbG8", B64, 6).is_err());
    }

    #[test]
    fn cast_and_decimal() {
        assert_eq!(to_int64(&Val::str("0x1f")), 31);
        assert_eq!(to_int64(&Val::str("3.00")), 3);
        assert_eq!(to_int64(&Val::str("3.5")), 0);
        assert_eq!(to_int64(&Val::str("010")), 8);
        assert_eq!(to_int64(&Val::Float(-2.9)), -2);
        assert_eq!(to_float64(&Val::str("2.5")), 2.5);
        let f = |v: Val| match v {
            Val::Float(f) => f,
            _ => f64::NAN,
        };
        assert_eq!(
            f(dec_op(&Val::Float(0.0), &[Val::Float(0.1), Val::Float(0.2)], '+').unwrap()),
            0.3
        );
        assert_eq!(
            f(dec_op(&Val::Float(1.0), &[Val::Float(3.0)], '/').unwrap()),
            0.3333333333333333
        );
        assert_eq!(
            f(dec_op(&Val::Float(1.1), &[Val::Float(3.0)], '*').unwrap()),
            3.3
        );
    }

    #[test]
    fn paths() {
        assert_eq!(path_base("/var/log/pods/a.log"), "a.log");
        assert_eq!(path_base("/a/b/"), "b");
        assert_eq!(path_base(""), ".");
        assert_eq!(path_base("///"), "/");
        assert_eq!(path_dir("/var/log/x.log"), "/var/log");
        assert_eq!(path_dir("x.log"), ".");
        assert_eq!(path_clean("a//b/../c/."), "a/c");
        assert_eq!(path_clean("/../a"), "/a");
        assert_eq!(path_clean("../../a"), "../../a");
        assert_eq!(path_ext("/a/b.tar.gz"), ".gz");
        assert_eq!(path_ext("/a.b/c"), "");
    }

    #[test]
    fn printf_subset() {
        let a = [Val::str("x"), Val::Int(42), Val::Float(1.23456)];
        assert_eq!(sprintf("%s-%d-%.2f", &a), "x-42-1.23");
        assert_eq!(
            sprintf(
                "%5s|%-5d|%05d",
                &[Val::str("ab"), Val::Int(7), Val::Int(-7)]
            ),
            "   ab|7    |-0007"
        );
        assert_eq!(sprintf("%d", &[Val::str("x")]), "%!d(string=x)");
        assert_eq!(sprintf("%s %s", &[Val::str("x")]), "x %!s(MISSING)");
        assert_eq!(
            sprintf("%s", &[Val::str("x"), Val::Int(1)]),
            "x%!(EXTRA int=1)"
        );
        assert_eq!(
            sprintf(
                "%q %v %x %%",
                &[Val::str("a\"b"), Val::Bool(true), Val::Int(255)]
            ),
            "\"a\\\"b\" true ff %"
        );
        assert_eq!(sprintf("%v", &[Val::Nil]), "<nil>");
    }

    #[test]
    fn json() {
        let m = Val::map(
            [
                (
                    "b".to_string(),
                    Val::list(vec![Val::Int(1), Val::Float(2.5), Val::Nil]),
                ),
                ("a".to_string(), Val::str("<x>")),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(
            to_json(&m, JsonFlavor::GoJson, false).unwrap(),
            r#"{"a":"\u003cx\u003e","b":[1,2.5,null]}"#
        );
        assert_eq!(
            to_json(&m, JsonFlavor::GoJsonRaw, false).unwrap(),
            r#"{"a":"<x>","b":[1,2.5,null]}"#
        );
        assert_eq!(
            to_json(&m, JsonFlavor::GoJson, true).unwrap(),
            "{\n  \"a\": \"\\u003cx\\u003e\",\n  \"b\": [\n    1,\n    2.5,\n    null\n  ]\n}"
        );
        assert_eq!(json_float(1e21).unwrap(), "1e+21");
        assert_eq!(json_float(1e-7).unwrap(), "1e-7");
        assert_eq!(json_float(123456789.0).unwrap(), "123456789");
        assert!(to_json(&Val::Float(f64::NAN), JsonFlavor::GoJson, false).is_err());
    }
}
