//! Loki's stream-selector syntax for the fake receiver: parsing the `labels`
//! string of a push (Prometheus `ParseMetric`: optional metric name, braces,
//! `"`/`'`/`` ` `` quoting, Go escapes) and rendering the canonical
//! `{a="b", c="d"}` form with Go `strconv.Quote` quoting.
//!
//! Included by tests/support/receiver.rs as `receiver::selector`; written
//! independently of tailtrace's own renderer on purpose.
//!
//! Must never: accept a selector Loki's parser rejects, or panic on input.

/// Parses a stream selector the way Loki's `syntax.ParseLabels` does
/// (Prometheus `ParseMetric`): optional metric name, `{name="value", ...}`
/// with `"`, `'` or `` ` `` quoting and Go escapes. Returns pairs sorted by
/// name with empty values dropped; duplicates are kept (validation rejects
/// them). Errors on anything Prometheus' lexer/parser rejects, and (stricter
/// than Loki) on values that are not valid UTF-8.
pub fn parse_selector(input: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut p = SelParser { s: input, i: 0 };
    let mut pairs = Vec::new();
    p.ws();
    if p.peek()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
    {
        let name = p.ident(true);
        pairs.push(("__name__".to_owned(), name));
        p.ws();
    }
    match p.peek() {
        Some(b'{') => {
            p.i += 1;
            p.ws();
            loop {
                match p.peek() {
                    Some(b'}') => {
                        p.i += 1;
                        break;
                    }
                    Some(c) if c.is_ascii_alphabetic() || c == b'_' => {}
                    Some(_) => {
                        return Err(p.err("unexpected character inside braces, expected label name"))
                    }
                    None => return Err(p.err("unexpected end of input inside braces")),
                }
                let name = p.ident(false);
                p.ws();
                if p.peek() != Some(b'=') {
                    return Err(p.err("expected \"=\" after label name"));
                }
                p.i += 1;
                p.ws();
                let value = p.string()?;
                pairs.push((name, value));
                p.ws();
                match p.peek() {
                    Some(b',') => {
                        p.i += 1;
                        p.ws();
                    }
                    Some(b'}') => {}
                    Some(_) => {
                        return Err(
                            p.err("unexpected character in label set, expected \",\" or \"}\"")
                        )
                    }
                    None => return Err(p.err("unexpected end of input inside braces")),
                }
            }
        }
        Some(_) if pairs.is_empty() => return Err(p.err("unexpected character, expected \"{\"")),
        None if pairs.is_empty() => return Err(p.err("unexpected end of input")),
        _ => {}
    }
    p.ws();
    if p.i != input.len() {
        return Err(p.err("unexpected content after label set"));
    }
    pairs.retain(|(_, v)| !v.is_empty());
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(pairs)
}

struct SelParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl SelParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }
    fn err(&self, msg: &str) -> String {
        format!("1:{}: parse error: {msg}", self.i + 1)
    }
    /// Caller checked the first character.
    fn ident(&mut self, metric: bool) -> String {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || (metric && c == b':'))
        {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.next() {
            Some(q @ (b'"' | b'\'' | b'`')) => q,
            _ => {
                self.i = self.i.saturating_sub(1);
                return Err(self.err("unexpected character, expected quoted label value"));
            }
        };
        let mut out = Vec::new();
        loop {
            let Some(c) = self.next() else {
                return Err(self.err("unterminated quoted string"));
            };
            if c == quote {
                break;
            }
            if quote == b'`' {
                out.push(c);
                continue;
            }
            match c {
                b'\n' => return Err(self.err("unterminated quoted string")),
                b'\\' => self.escape(quote, &mut out)?,
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("label value is not valid UTF-8"))
    }
    fn escape(&mut self, quote: u8, out: &mut Vec<u8>) -> Result<(), String> {
        let Some(e) = self.next() else {
            return Err(self.err("escape sequence not terminated"));
        };
        match e {
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'\\' => out.push(b'\\'),
            q if q == quote => out.push(q),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match self.next() {
                        Some(d @ b'0'..=b'7') => v = v * 8 + u32::from(d - b'0'),
                        _ => return Err(self.err("illegal character in octal escape sequence")),
                    }
                }
                let b = u8::try_from(v).map_err(|_| self.err("octal escape value > 255"))?;
                out.push(b);
            }
            b'x' => {
                let v = self.hex(2)?;
                out.push(v as u8);
            }
            b'u' | b'U' => {
                let v = self.hex(if e == b'u' { 4 } else { 8 })?;
                let ch = char::from_u32(v)
                    .ok_or_else(|| self.err("escape sequence is an invalid Unicode code point"))?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err(self.err("unknown escape sequence")),
        }
        Ok(())
    }
    fn hex(&mut self, n: usize) -> Result<u32, String> {
        let mut v = 0u32;
        for _ in 0..n {
            let d = self
                .next()
                .and_then(|c| (c as char).to_digit(16))
                .ok_or_else(|| self.err("illegal character in escape sequence"))?;
            v = v * 16 + d;
        }
        Ok(v)
    }
}

/// Renders `{a="b", c="d"}` with Go `strconv.Quote`d values, in the given order
/// (callers pass sorted pairs): Prometheus' `labels.Labels.String()`.
pub fn render_labels<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push('=');
        s.push_str(&go_quote(v));
    }
    s.push('}');
    s
}

/// Go's `strconv.Quote` for valid UTF-8 (close enough: printable = not a
/// control character).
pub fn go_quote(v: &str) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\x07' => s.push_str("\\a"),
            '\x08' => s.push_str("\\b"),
            '\x0c' => s.push_str("\\f"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\x0b' => s.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(s, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}
