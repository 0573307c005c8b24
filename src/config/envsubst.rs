//! `-config.expand-env=true`: environment substitution over the whole config
//! text before YAML parsing, with the semantics of `github.com/drone/envsubst`
//! (`EvalEnv`), which Promtail uses. Comments are substituted too.
//!
//! Exact semantics (these are drone/envsubst's, quirks included):
//! - `${NAME}` → the variable's value; an unset variable is the empty string.
//!   `NAME` is one or more letters, digits, `_` or `-`.
//! - `$NAME` (no braces) is **not** substituted: it stays as written. So
//!   relabel replacements like `$1` and regex anchors like `a$` are safe.
//! - Defaults: `${NAME:-word}`, `${NAME:=word}`, `${NAME=word}`, and also
//!   `${NAME:?word}` and `${NAME:+word}`, ALL mean "the value, or `word` if the
//!   value is empty" (drone's simplification; `:=` assigns nothing). `word`
//!   runs to the matching `}` and may contain nested `${...}`.
//!   `${NAME-word}` is not a default: `-` is a name character, so it reads
//!   the variable `NAME-word` (normally unset → empty).
//! - `${#NAME}` length in bytes; `${NAME^}` / `${NAME^^}` upper-case the first
//!   / every character, `${NAME,}` / `${NAME,,}` lower-case them;
//!   `${NAME:off}` / `${NAME:off:len}` byte substring (negative `off` counts
//!   from the end; a non-numeric `off` or `len` gives the whole value);
//!   `${NAME#pat}` / `${NAME##pat}` strip the shortest / longest prefix
//!   matching the glob `pat`, `${NAME%pat}` / `${NAME%%pat}` the suffix;
//!   `${NAME/from/to}` replaces the first, `${NAME//from/to}` every,
//!   `${NAME/#from/to}` a leading and `${NAME/%from/to}` a trailing literal
//!   `from` (`/to` may be omitted: replace with nothing).
//! - Escapes, outside `${...}` and inside the `/from/to` parts: `$$` → `$`
//!   (so `$${X}` → literal `${X}`), `\\` → `\`, `\/` → `/`. Every other
//!   backslash stays. This is why Loki's docs say to double every backslash
//!   in a file loaded with `-config.expand-env=true`.
//! - A malformed expression (`${}`, `${ X}`, `${X`, `${X!}`) is an error
//!   ("bad substitution") with the byte offset of its `${`, and the config is
//!   not loaded, as with Promtail.
//!
//! Must never: touch text outside `${...}` other than the escapes above, or
//! read anything but the environment.

use std::fmt;

/// A malformed `${...}` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvsubstError {
    /// Byte offset in the input of the `${` that starts the bad expression.
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for EnvsubstError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EnvsubstError {}

/// Substitutes from the process environment (unset or non-UTF-8 → lossy /
/// empty, as Go's `os.Getenv` gives bytes).
pub fn expand_env(text: &str) -> Result<String, EnvsubstError> {
    expand(text, |name| {
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    })
}

/// Substitutes with `lookup` (None = unset = empty string).
pub fn expand<F: Fn(&str) -> Option<String>>(
    text: &str,
    lookup: F,
) -> Result<String, EnvsubstError> {
    let mut p = Parser {
        s: text,
        pos: 0,
        lookup: &lookup,
        start: 0,
        depth: 0,
    };
    let mut out = String::with_capacity(text.len());
    while let Some(c) = p.peek() {
        if c == '$' && p.peek_at(1) == Some('{') {
            out.push_str(&p.expr()?);
        } else if let Some(e) = p.escape(true) {
            out.push(e);
        } else {
            out.push(c);
            p.pos += c.len_utf8();
        }
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Offset of the outermost `${` being parsed, for errors.
    start: usize,
    /// Nesting depth of `${`.
    depth: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.s[self.pos..].chars().nth(n)
    }

    fn bad(&self) -> EnvsubstError {
        let end = self.s[self.start..]
            .char_indices()
            .nth(40)
            .map_or(self.s.len(), |(i, _)| self.start + i);
        let snippet = self.s[self.start..end].lines().next().unwrap_or("");
        EnvsubstError {
            offset: self.start,
            message: format!("bad substitution in {snippet:?}"),
        }
    }

    /// At an escape (`$$`, `\\`, `\/`) with escapes enabled: consumes it and
    /// returns the literal character.
    fn escape(&mut self, enabled: bool) -> Option<char> {
        if !enabled {
            return None;
        }
        let lit = match (self.peek()?, self.peek_at(1)?) {
            ('$', '$') => '$',
            ('\\', c @ ('\\' | '/')) => c,
            _ => return None,
        };
        self.pos += 2;
        Some(lit)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect_close(&mut self) -> Result<(), EnvsubstError> {
        if self.eat('}') {
            Ok(())
        } else {
            Err(self.bad())
        }
    }

    fn name(&mut self) -> Result<&str, EnvsubstError> {
        let rest = &self.s[self.pos..];
        let len = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
        if len == 0 {
            return Err(self.bad());
        }
        self.pos += len;
        Ok(&rest[..len])
    }

    fn value(&self, name: &str) -> String {
        (self.lookup)(name).unwrap_or_default()
    }

    /// One argument: a nested `${...}`, or a run of characters accepted by
    /// `accept` (stopping before a `${`), with escapes if `escapes`.
    /// Empty runs are errors, as in drone/envsubst.
    fn param(&mut self, accept: fn(char) -> bool, escapes: bool) -> Result<String, EnvsubstError> {
        if self.peek() == Some('$') && self.peek_at(1) == Some('{') {
            return self.expr();
        }
        let mut run = String::new();
        while let Some(c) = self.peek() {
            if c == '$' && self.peek_at(1) == Some('{') {
                break;
            }
            if let Some(e) = self.escape(escapes) {
                run.push(e);
                continue;
            }
            if !accept(c) {
                break;
            }
            run.push(c);
            self.pos += c.len_utf8();
        }
        if run.is_empty() {
            return Err(self.bad());
        }
        Ok(run)
    }

    /// Parses and evaluates `${...}`; `pos` is at the `$`.
    fn expr(&mut self) -> Result<String, EnvsubstError> {
        if self.depth == 0 {
            self.start = self.pos;
        }
        self.depth += 1;
        self.pos += 2;
        let r = self.expr_body();
        self.depth -= 1;
        r
    }

    fn expr_body(&mut self) -> Result<String, EnvsubstError> {
        if self.eat('#') {
            let name = self.name()?.to_owned();
            self.expect_close()?;
            return Ok(self.value(&name).len().to_string());
        }
        let name = self.name()?.to_owned();
        let v = self.value(&name);
        match self.peek() {
            Some('}') => {
                self.pos += 1;
                Ok(v)
            }
            Some(':') if matches!(self.peek_at(1), Some('=' | '-' | '?' | '+')) => {
                self.pos += 2;
                self.default(v)
            }
            Some('=') => {
                self.pos += 1;
                self.default(v)
            }
            Some(':') => {
                self.pos += 1;
                self.substr(v)
            }
            Some(',' | '^') => {
                let mut op = String::new();
                while op.len() < 2 {
                    match self.peek() {
                        Some(c @ (',' | '^')) => {
                            op.push(c);
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                self.expect_close()?;
                Ok(casing(&op, v))
            }
            Some('/') => self.replace(v),
            Some(c @ ('#' | '%')) => {
                self.pos += 1;
                let longest = self.eat(c);
                let pat = self.param(|c| c != '}', false)?;
                self.expect_close()?;
                Ok(trim(&v, &pat, c == '#', longest))
            }
            _ => Err(self.bad()),
        }
    }

    fn default(&mut self, v: String) -> Result<String, EnvsubstError> {
        let mut word = String::new();
        loop {
            match self.peek() {
                Some('}') => {
                    self.pos += 1;
                    break;
                }
                None => return Err(self.bad()),
                Some(_) => word.push_str(&self.param(|c| c != '}', false)?),
            }
        }
        Ok(if v.is_empty() { word } else { v })
    }

    fn substr(&mut self, v: String) -> Result<String, EnvsubstError> {
        let off = self.param(|c| c != ':' && c != '}', false)?;
        if self.eat('}') {
            return Ok(substring(&v, &off, None));
        }
        if !self.eat(':') {
            return Err(self.bad());
        }
        while self.eat(':') {}
        let len = self.param(|c| c != '}', false)?;
        self.expect_close()?;
        Ok(substring(&v, &off, Some(&len)))
    }

    fn replace(&mut self, v: String) -> Result<String, EnvsubstError> {
        self.pos += 1; // the first '/'
        let mode = match self.peek() {
            Some(c @ ('/' | '#' | '%')) => {
                self.pos += 1;
                c
            }
            _ => ' ',
        };
        let from = self.param(|c| c != '/', true)?;
        if !self.eat('/') {
            return Err(self.bad());
        }
        while self.eat('/') {}
        let to = if self.eat('}') {
            None
        } else {
            let t = self.param(|c| c != '}', true)?;
            self.expect_close()?;
            Some(t)
        };
        Ok(match (mode, to) {
            (' ', to) => v.replacen(&from, to.as_deref().unwrap_or(""), 1),
            ('/', to) => v.replace(&from, to.as_deref().unwrap_or("")),
            ('#', Some(to)) => match v.strip_prefix(&from) {
                Some(rest) => format!("{to}{rest}"),
                None => v,
            },
            ('%', Some(to)) => match v.strip_suffix(&from) {
                Some(rest) => format!("{rest}{to}"),
                None => v,
            },
            // `/#` and `/%` without a replacement leave the value alone.
            _ => v,
        })
    }
}

fn casing(op: &str, v: String) -> String {
    let first = |f: fn(char) -> String| {
        let mut it = v.chars();
        match it.next() {
            Some(c) => f(c) + it.as_str(),
            None => String::new(),
        }
    };
    match op {
        "^" => first(|c| c.to_uppercase().collect()),
        "^^" => v.to_uppercase(),
        "," => first(|c| c.to_lowercase().collect()),
        ",," => v.to_lowercase(),
        _ => v,
    }
}

/// `${V:off}` / `${V:off:len}` on bytes, as Go slices strings; a cut inside a
/// UTF-8 sequence is replaced lossily rather than panicking.
fn substring(v: &str, off: &str, len: Option<&str>) -> String {
    let b = v.as_bytes();
    let Ok(mut pos) = off.parse::<i64>() else {
        return v.to_owned();
    };
    let n = b.len() as i64;
    if pos < 0 {
        pos = (n + pos).max(0);
    }
    let cut = |from: i64, to: i64| -> String {
        if from > to || from > n {
            return String::new();
        }
        String::from_utf8_lossy(&b[from as usize..to.min(n) as usize]).into_owned()
    };
    match len {
        None => cut(pos, n),
        Some(l) => match l.parse::<i64>() {
            Err(_) => v.to_owned(),
            Ok(l) if pos.saturating_add(l) >= n => cut(pos, n),
            Ok(l) => cut(pos, pos.saturating_add(l)),
        },
    }
}

/// Glob prefix/suffix stripping (`#`, `##`, `%`, `%%`). Suffix forms reverse
/// the value and the pattern, as drone/envsubst does; as in its glob, `*`
/// also matches `/` (`${P##*/}` is the base name).
fn trim(v: &str, pat: &str, prefix: bool, longest: bool) -> String {
    if !prefix {
        let rv: String = v.chars().rev().collect();
        let rp: String = pat.chars().rev().collect();
        return trim(&rv, &rp, true, longest).chars().rev().collect();
    }
    let Ok(p) = glob::Pattern::new(pat) else {
        return v.to_owned();
    };
    let opts = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: false,
        require_literal_leading_dot: false,
    };
    // Candidate prefixes, longest first; the empty prefix is never tried.
    let mut ends: Vec<usize> = v.char_indices().map(|(i, _)| i).skip(1).collect();
    ends.push(v.len());
    ends.reverse();
    let mut found = None;
    for end in ends {
        if end == 0 {
            continue;
        }
        if p.matches_with(&v[..end], opts) {
            found = Some(end);
            if longest {
                break;
            }
        }
    }
    match found {
        Some(end) => v[end..].to_owned(),
        None => v.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)], input: &str) -> Result<String, EnvsubstError> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        expand(input, |k| m.get(k).cloned())
    }

    fn ok(vars: &[(&str, &str)], input: &str) -> String {
        run(vars, input).unwrap()
    }

    #[test]
    fn plain_and_braced() {
        let v = [("HOST", "node-1"), ("EMPTY", "")];
        assert_eq!(ok(&v, "host: ${HOST}\n"), "host: node-1\n");
        assert_eq!(ok(&v, "${HOST}${HOST}"), "node-1node-1");
        assert_eq!(ok(&v, "a${UNSET}b"), "ab");
        assert_eq!(ok(&v, "x${EMPTY}y"), "xy");
        // No braces: left alone.
        assert_eq!(ok(&v, "$HOST and $1 and a$"), "$HOST and $1 and a$");
        assert_eq!(ok(&v, "cost: 5$"), "cost: 5$");
        assert_eq!(ok(&v, "no vars at all: {} } {"), "no vars at all: {} } {");
        assert_eq!(ok(&v, "ünïcödé ${HOST} ✓"), "ünïcödé node-1 ✓");
    }

    #[test]
    fn defaults() {
        let v = [("SET", "yes"), ("EMPTY", ""), ("D", "dflt")];
        assert_eq!(ok(&v, "${SET:-no}"), "yes");
        assert_eq!(ok(&v, "${UNSET:-no}"), "no");
        assert_eq!(ok(&v, "${EMPTY:-no}"), "no");
        assert_eq!(ok(&v, "${UNSET=no}"), "no");
        assert_eq!(ok(&v, "${UNSET:=no}"), "no");
        // drone quirks: :? and :+ are defaults too.
        assert_eq!(ok(&v, "${UNSET:?no}"), "no");
        assert_eq!(ok(&v, "${SET:+no}"), "yes");
        // `-` is a name character: this reads the variable `UNSET-no`.
        assert_eq!(ok(&v, "${UNSET-no}"), "");
        // Defaults with nested expressions, URLs, spaces.
        assert_eq!(ok(&v, "${UNSET:-${D}}"), "dflt");
        assert_eq!(ok(&v, "${UNSET:-pre${D}-suf}"), "predflt-suf");
        assert_eq!(
            ok(&v, "url: ${LOKI:-http://loki:3100/loki/api/v1/push}"),
            "url: http://loki:3100/loki/api/v1/push"
        );
        assert_eq!(ok(&v, "${UNSET:-a b c}"), "a b c");
        assert_eq!(ok(&v, "${UNSET:-$1}"), "$1");
    }

    #[test]
    fn escapes() {
        let v = [("X", "val")];
        assert_eq!(ok(&v, "$${X}"), "${X}");
        assert_eq!(ok(&v, "$$"), "$");
        assert_eq!(ok(&v, "$$$${X}"), "$${X}");
        assert_eq!(ok(&v, "$$${X}"), "$val");
        assert_eq!(ok(&v, "some ${X}$${x$${X}$X${X}"), "some val${x${X}$Xval");
        assert_eq!(ok(&v, r"a\\b"), r"a\b");
        assert_eq!(ok(&v, r"a\/b"), "a/b");
        assert_eq!(ok(&v, r"\d+\.\w"), r"\d+\.\w");
        assert_eq!(ok(&v, r"\\${X}"), r"\val");
        assert_eq!(ok(&v, r"\${X}"), r"\val");
    }

    #[test]
    fn functions() {
        let v = [
            ("V", "abcdEFGH28ij"),
            ("P", "/home/bozo/ideas/thoughts.for.today"),
            ("F", "bash.string.txt"),
            ("Z", "abcABC123ABCabc"),
            ("S", "foo/bar/baz"),
        ];
        assert_eq!(ok(&v, "${#V}"), "12");
        assert_eq!(ok(&v, "${V^}"), "AbcdEFGH28ij");
        assert_eq!(ok(&v, "${V^^}"), "ABCDEFGH28IJ");
        assert_eq!(ok(&v, "${V,,}"), "abcdefgh28ij");
        assert_eq!(ok(&[("U", "ABC")], "${U,}"), "aBC");
        assert_eq!(ok(&v, "${P:11}"), "ideas/thoughts.for.today");
        assert_eq!(ok(&v, "${P:11:5}"), "ideas");
        assert_eq!(ok(&v, "${P:99}"), "");
        assert_eq!(ok(&v, "${V:x}"), "abcdEFGH28ij");
        assert_eq!(ok(&v, "${F#*.}"), "string.txt");
        assert_eq!(ok(&v, "${F##*.}"), "txt");
        assert_eq!(ok(&v, "${F%.*}"), "bash.string");
        assert_eq!(ok(&v, "${F%%.*}"), "bash");
        assert_eq!(ok(&v, "${S##*/}"), "baz");
        assert_eq!(ok(&v, "${Z/abc/xyz}"), "xyzABC123ABCabc");
        assert_eq!(ok(&v, "${Z//abc/xyz}"), "xyzABC123ABCxyz");
        assert_eq!(ok(&v, "${Z/#abc/XYZ}"), "XYZABC123ABCabc");
        assert_eq!(ok(&v, "${Z/%abc/XYZ}"), "abcABC123ABCXYZ");
        assert_eq!(ok(&v, r"${S//\//-}"), "foo-bar-baz");
        assert_eq!(ok(&[("D", "foo.bar")], "${D/./}"), "foobar");
        assert_eq!(ok(&v, "${UNSET=${V^^}}"), "ABCDEFGH28IJ");
    }

    #[test]
    fn bad_substitutions() {
        for input in [
            "${}",
            "${ X}",
            "${X",
            "${X!}",
            "x: ${X:-abc",
            "${X:}",
            "${#}",
            "${X/}",
            "${X#}",
        ] {
            assert!(run(&[], input).is_err(), "{input:?} should fail");
        }
        let e = run(&[], "line1\nurl: ${LOKI URL}\n").unwrap_err();
        assert_eq!(e.offset, 11);
        assert!(e.message.contains("bad substitution"), "{e}");
        // The offset is the outermost `${`, even when a nested one is bad.
        let e = run(&[], "ab ${X:-${}}").unwrap_err();
        assert_eq!(e.offset, 3);
    }

    #[test]
    fn env_lookup() {
        // PATH is set in every test environment.
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(expand_env("${PATH}").unwrap(), path);
        assert_eq!(
            expand_env("${TAILTRACE_SURELY_UNSET_VAR_42:-d}").unwrap(),
            "d"
        );
    }

    proptest::proptest! {
        /// Any input either expands or errors at an offset inside it; never
        /// a panic. Text without `$` or `\\` comes back unchanged.
        #[test]
        fn never_panics(input in "[a-zA-Z$\\\\{}:#%/^,=+?*.é -]{0,40}") {
            let vars = [("a", "xyz/é.q"), ("A", "")];
            match run(&vars, &input) {
                Ok(out) => {
                    if !input.contains(['$', '\\']) {
                        proptest::prop_assert_eq!(out, input);
                    }
                }
                Err(e) => proptest::prop_assert!(e.offset < input.len()),
            }
        }
    }
}
