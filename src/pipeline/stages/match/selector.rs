//! The `match` stage's selector language: a LogQL stream selector with
//! optional line filters, as Promtail's own small parser
//! (`clients/pkg/logentry/logql`) reads it.
//!
//! Grammar: `{name op "value", …}` with at least one matcher (`=`, `!=`,
//! `=~`, `!~`), then any number of line filters `|= "text"`, `!= "text"`,
//! `|~ "re"`, `!~ "re"`. Tokens are Go's (`text/scanner`): identifiers are
//! Go identifiers, strings are Go double-quoted strings with Go's escapes
//! (`"\\d"` for a regex `\d`; backquoted strings are not accepted by
//! Promtail's parser, so not here either), `//` and `/* */` comments and
//! whitespace are skipped.
//!
//! Semantics: a label matcher compares the entry's label value (`""` when
//! the label is absent); regex matchers are fully anchored with `.`
//! matching newlines (`^(?s:re)$`), as Prometheus does. `|=` / `!=` test
//! whether the line contains the text; `|~` / `!~` search the line with the
//! regex (unanchored). Every matcher and filter must pass.
//!
//! Must never: panic on any selector text (errors say where parsing failed).

use memchr::memmem::Finder;

/// A label matcher's operation.
#[derive(Debug)]
enum LabelOp {
    Eq(String),
    Ne(String),
    Re(::regex::Regex),
    Nre(::regex::Regex),
}

/// A line filter.
#[derive(Debug)]
enum LineFilter {
    Contains(Finder<'static>),
    NotContains(Finder<'static>),
    Re(::regex::Regex),
    NotRe(::regex::Regex),
}

/// A parsed selector: label matchers and line filters.
#[derive(Debug)]
pub struct Selector {
    matchers: Vec<(String, LabelOp)>,
    filters: Vec<LineFilter>,
}

/// Why a selector was rejected: a syntax error, or a filter regex that does
/// not compile (Promtail words the two differently).
#[derive(Debug, PartialEq, Eq)]
pub enum SelectorError {
    Syntax(String),
    Filter(String),
}

impl Selector {
    /// True if the labels (value of a label by name) match every matcher.
    pub fn matches_labels<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.matchers.iter().all(|(name, op)| {
            let v = label(name).unwrap_or("");
            match op {
                LabelOp::Eq(s) => v == s,
                LabelOp::Ne(s) => v != s,
                LabelOp::Re(re) => re.is_match(v),
                LabelOp::Nre(re) => !re.is_match(v),
            }
        })
    }

    /// True if the line passes every line filter.
    pub fn matches_line(&self, line: &str) -> bool {
        self.filters.iter().all(|f| match f {
            LineFilter::Contains(x) => x.find(line.as_bytes()).is_some(),
            LineFilter::NotContains(x) => x.find(line.as_bytes()).is_none(),
            LineFilter::Re(re) => re.is_match(line),
            LineFilter::NotRe(re) => !re.is_match(line),
        })
    }

    /// Parses a selector.
    pub fn parse(input: &str) -> Result<Selector, SelectorError> {
        let toks = lex(input).map_err(SelectorError::Syntax)?;
        let mut p = Parser { toks, i: 0 };
        let mut matchers = Vec::new();
        p.expect(Tok::Open, "{")?;
        loop {
            let name = match p.next() {
                (Tok::Ident(s), _) => s,
                t => return Err(p.unexpected(t, "IDENTIFIER")),
            };
            let op = match p.next() {
                (Tok::Eq, _) => 0,
                (Tok::Neq, _) => 1,
                (Tok::Re, _) => 2,
                (Tok::Nre, _) => 3,
                t => return Err(p.unexpected(t, "!= or !~ or = or =~")),
            };
            let value = match p.next() {
                (Tok::Str(s), _) => s,
                t => return Err(p.unexpected(t, "STRING")),
            };
            let anchored = |v: &str| {
                ::regex::Regex::new(&format!("^(?s:{v})$")).map_err(|e| {
                    SelectorError::Syntax(format!("error parsing regexp for label {name}: {e}"))
                })
            };
            let op = match op {
                0 => LabelOp::Eq(value),
                1 => LabelOp::Ne(value),
                2 => LabelOp::Re(anchored(&value)?),
                _ => LabelOp::Nre(anchored(&value)?),
            };
            matchers.push((name, op));
            match p.next() {
                (Tok::Comma, _) => continue,
                (Tok::Close, _) => break,
                t => return Err(p.unexpected(t, "} or ,")),
            }
        }
        let mut filters = Vec::new();
        loop {
            let kind = match p.next() {
                (Tok::Eof, _) => break,
                (Tok::PipeExact, _) => 0,
                (Tok::Neq, _) => 1,
                (Tok::PipeMatch, _) => 2,
                (Tok::Nre, _) => 3,
                t => return Err(p.unexpected(t, "!= or !~ or |~ or |=")),
            };
            let s = match p.next() {
                (Tok::Str(s), _) => s,
                t => return Err(p.unexpected(t, "STRING")),
            };
            let re =
                |s: &str| ::regex::Regex::new(s).map_err(|e| SelectorError::Filter(e.to_string()));
            filters.push(match kind {
                0 => LineFilter::Contains(Finder::new(s.as_bytes()).into_owned()),
                1 => LineFilter::NotContains(Finder::new(s.as_bytes()).into_owned()),
                2 => LineFilter::Re(re(&s)?),
                _ => LineFilter::NotRe(re(&s)?),
            });
        }
        Ok(Selector { matchers, filters })
    }
}

/// A token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Open,
    Close,
    Comma,
    Dot,
    Eq,
    Neq,
    Re,
    Nre,
    PipeExact,
    PipeMatch,
    Str(String),
    /// Go's scanner also turns numbers, char literals, raw strings and
    /// stray characters into tokens the grammar has no place for; Promtail's
    /// lexer calls them all IDENTIFIER.
    Ident(String),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Open => "{".into(),
            Tok::Close => "}".into(),
            Tok::Comma => ",".into(),
            Tok::Dot => ".".into(),
            Tok::Eq => "=".into(),
            Tok::Neq => "!=".into(),
            Tok::Re => "=~".into(),
            Tok::Nre => "!~".into(),
            Tok::PipeExact => "|=".into(),
            Tok::PipeMatch => "|~".into(),
            Tok::Str(_) => "STRING".into(),
            Tok::Ident(s) => format!("IDENTIFIER {s:?}"),
            Tok::Eof => "end of input".into(),
        }
    }
}

/// (line, column), 1-based, of a token.
type Pos = (usize, usize);

struct Parser {
    toks: Vec<(Tok, Pos)>,
    i: usize,
}

impl Parser {
    fn next(&mut self) -> (Tok, Pos) {
        match self.toks.get(self.i) {
            Some(t) => {
                self.i += 1;
                t.clone()
            }
            None => self.toks.last().cloned().unwrap_or((Tok::Eof, (1, 1))),
        }
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), SelectorError> {
        let t = self.next();
        if t.0 == want {
            Ok(())
        } else {
            Err(self.unexpected(t, what))
        }
    }

    fn unexpected(&self, (t, (line, col)): (Tok, Pos), expecting: &str) -> SelectorError {
        SelectorError::Syntax(format!(
            "parse error at line {line}, col {col}: syntax error: unexpected {}, expecting {expecting}",
            t.describe()
        ))
    }
}

/// Splits `input` into tokens (ending with `Eof`), as Go's `text/scanner`
/// in its default mode plus Promtail's two-character operators.
fn lex(input: &str) -> Result<Vec<(Tok, Pos)>, String> {
    let chars: Vec<char> = input.chars().collect();
    let mut toks = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let err = |line: usize, col: usize, msg: &str| {
        format!("parse error at line {line}, col {col}: {msg}")
    };
    // Advances over one char, tracking the position.
    macro_rules! bump {
        () => {{
            if chars[i] == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
            i += 1;
        }};
    }
    while i < chars.len() {
        let c = chars[i];
        let pos = (line, col);
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            bump!();
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                bump!();
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            bump!();
            bump!();
            loop {
                if i >= chars.len() {
                    return Err(err(pos.0, pos.1, "comment not terminated"));
                }
                if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    bump!();
                    bump!();
                    break;
                }
                bump!();
            }
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                bump!();
            }
            toks.push((Tok::Ident(chars[start..i].iter().collect()), pos));
            continue;
        }
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_')
            {
                bump!();
            }
            toks.push((Tok::Ident(chars[start..i].iter().collect()), pos));
            continue;
        }
        if c == '"' {
            let start = i;
            bump!();
            loop {
                match chars.get(i) {
                    None | Some('\n') => return Err(err(pos.0, pos.1, "literal not terminated")),
                    Some('"') => {
                        bump!();
                        break;
                    }
                    Some('\\') => {
                        bump!();
                        if i < chars.len() && chars[i] != '\n' {
                            bump!();
                        }
                    }
                    Some(_) => bump!(),
                }
            }
            let raw: String = chars[start..i].iter().collect();
            let s = unquote(&raw).map_err(|m| err(pos.0, pos.1, &m))?;
            toks.push((Tok::Str(s), pos));
            continue;
        }
        if c == '`' || c == '\'' {
            let start = i;
            bump!();
            while i < chars.len() && chars[i] != c {
                bump!();
            }
            if i >= chars.len() {
                return Err(err(pos.0, pos.1, "literal not terminated"));
            }
            bump!();
            toks.push((Tok::Ident(chars[start..i].iter().collect()), pos));
            continue;
        }
        let next = chars.get(i + 1).copied();
        let two = match (c, next) {
            ('!', Some('=')) => Some(Tok::Neq),
            ('=', Some('~')) => Some(Tok::Re),
            ('!', Some('~')) => Some(Tok::Nre),
            ('|', Some('=')) => Some(Tok::PipeExact),
            ('|', Some('~')) => Some(Tok::PipeMatch),
            _ => None,
        };
        if let Some(t) = two {
            bump!();
            bump!();
            toks.push((t, pos));
            continue;
        }
        let one = match c {
            '{' => Tok::Open,
            '}' => Tok::Close,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '=' => Tok::Eq,
            other => Tok::Ident(other.to_string()),
        };
        bump!();
        toks.push((one, pos));
    }
    toks.push((Tok::Eof, (line, col)));
    Ok(toks)
}

/// Go's `strconv.Unquote` for a double-quoted literal (quotes included).
fn unquote(raw: &str) -> Result<String, String> {
    let inner = raw
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or("invalid syntax")?;
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut it = inner.chars().peekable();
    let bad = || "invalid syntax".to_string();
    let hex = |it: &mut std::iter::Peekable<std::str::Chars>, n: usize| -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = it.next().and_then(|c| c.to_digit(16)).ok_or_else(bad)?;
            v = v * 16 + d;
        }
        Ok(v)
    };
    while let Some(c) = it.next() {
        if c == '"' || c == '\n' {
            return Err(bad());
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or_else(bad)?;
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        match e {
            'x' => out.push(hex(&mut it, 2)? as u8),
            'u' | 'U' => {
                let v = hex(&mut it, if e == 'u' { 4 } else { 8 })?;
                let ch = char::from_u32(v).ok_or_else(bad)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = it.next().and_then(|c| c.to_digit(8)).ok_or_else(bad)?;
                    v = v * 8 + d;
                }
                if v > 255 {
                    return Err(bad());
                }
                out.push(v as u8);
            }
            _ => return Err("invalid char escape".into()),
        }
    }
    String::from_utf8(out).map_err(|_| "string is not valid UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap()
    }

    fn labels<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> + 'a {
        move |n| pairs.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
    }

    #[test]
    fn label_matchers() {
        let foo = [("foo", "bar")];
        let none: [(&str, &str); 0] = [];
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], bool);
        let cases: &[Case] = &[
            (r#"{foo="bar"}"#, &foo, true),
            (r#"{ foo = "bar" }"#, &foo, true),
            (r#"{foo="ba"}"#, &foo, false),
            (r#"{foo!="bar"}"#, &foo, false),
            (r#"{foo=""}"#, &foo, false),
            (r#"{foo=""}"#, &none, true),
            (r#"{foo!=""}"#, &none, false),
            (r#"{foo=~"b.r"}"#, &foo, true),
            // anchored: a partial match is no match
            (r#"{foo=~"ba"}"#, &foo, false),
            (r#"{foo=~"a"}"#, &foo, false),
            (r#"{foo!~"ba"}"#, &foo, true),
            (r#"{foo=~"bar|baz"}"#, &foo, true),
            (r#"{foo=~".*"}"#, &none, true),
            (r#"{foo=~".+"}"#, &none, false),
            (r#"{foo="bar",bar!="test"}"#, &foo, true),
            (
                r#"{foo="bar", bar=~"te.*"}"#,
                &[("foo", "bar"), ("bar", "test")],
                true,
            ),
            (
                r#"{foo="bar", bar!~"te.*"}"#,
                &[("foo", "bar"), ("bar", "test")],
                false,
            ),
        ];
        for (s, l, want) in cases {
            assert_eq!(sel(s).matches_labels(labels(l)), *want, "{s} {l:?}");
        }
        // `.` matches a newline in label regexes, as Prometheus.
        assert!(sel(r#"{a=~"x.y"}"#).matches_labels(labels(&[("a", "x\ny")])));
    }

    #[test]
    fn line_filters_chain() {
        let s = sel(r#"{foo="bar"} |= "baz" |~ "bl.p" != "flip" !~ "fl[ae]p""#);
        assert!(s.matches_line("baz blip"));
        assert!(!s.matches_line("baz blip flip"));
        assert!(!s.matches_line("baz blip flap"));
        assert!(!s.matches_line("blip"));
        // Line regexes are searched, not anchored.
        assert!(sel(r#"{a="b"} |~ "o+""#).matches_line("foo"));
        assert!(sel(r#"{a="b"} |= """#).matches_line("anything"));
        assert!(!sel(r#"{a="b"} != "o""#).matches_line("foo"));
    }

    #[test]
    fn strings_are_go_strings() {
        let s = sel(r#"{a="x\"y"} |~ "\\d+\t""#);
        assert!(s.matches_labels(labels(&[("a", "x\"y")])));
        assert!(s.matches_line("n 42\t"));
        assert!(sel(r#"{a="\u00e9\x41\101"}"#).matches_labels(labels(&[("a", "éAA")])));
        // `\d` is not a Go string escape.
        assert!(Selector::parse(r#"{a=~"\d"}"#).is_err());
    }

    #[test]
    fn comments_and_newlines_are_skipped() {
        let s = sel("{a=\"b\", // the app\n c=\"d\" /* and */ } |= \"x\"");
        assert!(s.matches_labels(labels(&[("a", "b"), ("c", "d")])));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "foo",
            "{}",
            "{",
            "",
            "{foo=\"bar}",
            "{foo=\"bar\"",
            "{foo=\"bar\",}",
            "{foo=\"bar\"} |~",
            "{foo=\"bar\"} \"foo\"",
            "{foo=\"bar\"} foo",
            "{foo=`bar`}",
            "{foo='b'}",
            "{foo==\"bar\"}",
            "{foo=\"bar\"} | \"x\"",
            "{foo=\"bar\"} {a=\"b\"}",
            "{app.name=\"x\"}",
            "{foo=\"bar\"} /* open",
        ] {
            match Selector::parse(bad) {
                Err(SelectorError::Syntax(e)) => {
                    assert!(e.starts_with("parse error at line"), "{bad}: {e}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let e = Selector::parse("{foo=\"bar\"").err().unwrap();
        assert_eq!(
            e,
            SelectorError::Syntax(
                "parse error at line 1, col 11: syntax error: unexpected end of input, expecting } or ,".into()
            )
        );
        assert!(matches!(
            Selector::parse(r#"{foo="bar"} !~ "[]""#),
            Err(SelectorError::Filter(_))
        ));
        assert!(matches!(
            Selector::parse(r#"{foo=~"("}"#),
            Err(SelectorError::Syntax(_))
        ));
    }
}
