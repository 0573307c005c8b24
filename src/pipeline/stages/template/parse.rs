//! Lexer and parser for Go's `text/template` syntax: the template is parsed
//! once, at build, into the tree [`exec`](super::exec) walks per line.
//!
//! Follows Go 1.2x's `text/template/parse`: actions `{{ }}` with trim
//! markers (`{{- ` and ` -}}` remove the white space next to them),
//! comments `{{/* */}}`, pipelines `a | b`, commands with arguments, fields
//! `.a.b`, variables `$x := …` / `$x = …`, parenthesized pipelines, string
//! (interpreted and raw), number, character, bool and nil literals, and the
//! control actions `if`/`else if`/`else`/`end`, `with`/`else with`,
//! `range` (with `break`/`continue`). A function name must be one the
//! engine knows, as Go checks names at parse time. Errors read as Go's:
//! `pipeline_template:1: function "x" not defined`.
//!
//! Not supported (a parse error saying so): `define`, `template`, `block`
//! (named sub-templates) and complex-number literals.
//!
//! Must never: panic on any input (every error is a `Result`).

use super::funcs::{self, FuncDef};

/// The template's name in messages, as Promtail names it.
pub(super) const NAME: &str = "pipeline_template";

/// A parsed node of the template body.
#[derive(Debug)]
pub(super) enum Node {
    Text(Box<str>),
    /// `{{pipeline}}`: printed unless it declares variables.
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Break,
    Continue,
}

/// `{{if|with|range pipe}} list {{else}} else_list {{end}}`.
#[derive(Debug)]
pub(super) struct Control {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

/// `$x := cmd | cmd …`.
#[derive(Debug)]
pub(super) struct Pipe {
    pub decl: Vec<Box<str>>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

/// A command: its first argument is the function (or the value).
#[derive(Debug)]
pub(super) struct Cmd {
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Debug)]
pub(super) enum Arg {
    /// `.a.b`
    Field(Vec<Box<str>>),
    /// `$x.a.b` (`$` is the data).
    Variable(Box<str>, Vec<Box<str>>),
    /// `(pipe).a.b`, `fn.a`
    Chain(Box<Arg>, Vec<Box<str>>),
    Func(&'static FuncDef),
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    Str(Box<str>),
    Pipe(Box<Pipe>),
}

impl Arg {
    /// Go's name for the node kind, for "expected string; found …".
    pub fn describe(&self) -> String {
        match self {
            Arg::Field(f) => f.iter().map(|s| format!(".{s}")).collect(),
            Arg::Variable(v, f) => {
                let mut s = v.to_string();
                for x in f {
                    s.push('.');
                    s.push_str(x);
                }
                s
            }
            Arg::Chain(_, f) => format!("(…).{}", f.join(".")),
            Arg::Func(d) => d.name.to_string(),
            Arg::Dot => ".".into(),
            Arg::Nil => "nil".into(),
            Arg::Bool(b) => b.to_string(),
            Arg::Number(n) => n.text.to_string(),
            Arg::Str(s) => format!("{s:?}"),
            Arg::Pipe(_) => "(…)".into(),
        }
    }
}

/// A number literal with the readings Go gives it.
#[derive(Debug, Clone)]
pub(super) struct Number {
    pub text: Box<str>,
    pub int: Option<i64>,
    pub float: Option<f64>,
    /// Written as a float (`.`, exponent), not as an integer or character.
    pub floaty: bool,
}

// ---------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Declare,
    Assign,
    Pipe,
    Str(String),
    RawStr(String),
    Char(String),
    Number(String),
    Bool(bool),
    Dot,
    Field(String),
    Ident(String),
    Variable(String),
    LeftParen,
    RightParen,
    /// A printable ASCII character with no other meaning (`,`).
    Other(char),
    Kw(Kw),
    Eof,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kw {
    Block,
    Break,
    Continue,
    Define,
    Else,
    End,
    If,
    Nil,
    Range,
    Template,
    With,
}

fn keyword(w: &str) -> Option<Kw> {
    Some(match w {
        "block" => Kw::Block,
        "break" => Kw::Break,
        "continue" => Kw::Continue,
        "define" => Kw::Define,
        "else" => Kw::Else,
        "end" => Kw::End,
        "if" => Kw::If,
        "nil" => Kw::Nil,
        "range" => Kw::Range,
        "template" => Kw::Template,
        "with" => Kw::With,
        _ => return None,
    })
}

impl std::fmt::Display for Tok {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tok::Eof => f.write_str("EOF"),
            Tok::Kw(k) => write!(f, "<{}>", format!("{k:?}").to_lowercase()),
            Tok::LeftDelim => f.write_str("\"{{\""),
            Tok::RightDelim => f.write_str("\"}}\""),
            Tok::Space => f.write_str("\" \""),
            Tok::Declare => f.write_str("\":=\""),
            Tok::Assign => f.write_str("\"=\""),
            Tok::Pipe => f.write_str("\"|\""),
            Tok::LeftParen => f.write_str("\"(\""),
            Tok::RightParen => f.write_str("\")\""),
            Tok::Dot => f.write_str("<.>"),
            Tok::Bool(b) => write!(f, "{b:?}"),
            Tok::Other(c) => write!(f, "{:?}", c.to_string()),
            Tok::Text(s)
            | Tok::Str(s)
            | Tok::RawStr(s)
            | Tok::Char(s)
            | Tok::Number(s)
            | Tok::Field(s)
            | Tok::Ident(s)
            | Tok::Variable(s) => {
                if s.chars().count() > 10 {
                    let short: String = s.chars().take(10).collect();
                    write!(f, "{short:?}...")
                } else {
                    write!(f, "{s:?}")
                }
            }
        }
    }
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    line: usize,
    out: Vec<(Tok, usize)>,
    paren_depth: i32,
}

const SPACE_CHARS: &[char] = &[' ', '\t', '\r', '\n'];

fn is_space(c: char) -> bool {
    SPACE_CHARS.contains(&c)
}

/// Go's `isAlphaNumeric`: `_`, letters, digits.
fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphabetic() || c.is_numeric()
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

type LexResult<T> = Result<T, (String, usize)>;

impl<'a> Lexer<'a> {
    fn err<T>(&self, msg: impl Into<String>) -> LexResult<T> {
        Err((msg.into(), self.line))
    }

    fn rest(&self) -> &'a str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn emit(&mut self, t: Tok) {
        let line = self.line - self.input[self.start..self.pos].matches('\n').count();
        self.out.push((t, line));
        self.start = self.pos;
    }

    fn ignore(&mut self) {
        self.start = self.pos;
    }

    fn advance(&mut self, n: usize) {
        self.line += self.input[self.pos..self.pos + n].matches('\n').count();
        self.pos += n;
    }

    fn word(&self) -> String {
        self.input[self.start..self.pos].to_string()
    }

    /// (at the right delimiter, with a trim marker).
    fn at_right_delim(&self) -> (bool, bool) {
        let r = self.rest();
        if has_right_trim(r) && r[2..].starts_with("}}") {
            return (true, true);
        }
        (r.starts_with("}}"), false)
    }

    fn at_terminator(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) if is_space(c) => true,
            Some('.' | ',' | '|' | ':' | ')' | '(' | '}') => true,
            _ => false,
        }
    }

    fn run(mut self) -> LexResult<Vec<(Tok, usize)>> {
        loop {
            // Text up to the next "{{".
            match self.rest().find("{{") {
                Some(x) => {
                    let delim = self.pos + x;
                    let mut text_end = delim;
                    if has_left_trim(&self.input[delim + 2..]) {
                        text_end = self.input[self.start..delim]
                            .trim_end_matches(SPACE_CHARS)
                            .len()
                            + self.start;
                    }
                    if text_end > self.start {
                        self.advance(text_end - self.pos);
                        let t = self.word();
                        self.emit(Tok::Text(t));
                    }
                    self.advance(delim - self.pos);
                    self.ignore();
                    self.left_delim()?;
                }
                None => {
                    self.advance(self.input.len() - self.pos);
                    if self.pos > self.start {
                        let t = self.word();
                        self.emit(Tok::Text(t));
                    }
                    self.emit(Tok::Eof);
                    return Ok(self.out);
                }
            }
        }
    }

    fn left_delim(&mut self) -> LexResult<()> {
        self.pos += 2;
        let trim = has_left_trim(self.rest());
        let after = if trim { 2 } else { 0 };
        if self.rest()[after..].starts_with("/*") {
            self.advance(after);
            self.ignore();
            return self.comment();
        }
        self.emit(Tok::LeftDelim);
        self.advance(after);
        self.ignore();
        self.paren_depth = 0;
        self.inside_action()
    }

    fn comment(&mut self) -> LexResult<()> {
        self.pos += 2;
        let Some(x) = self.rest().find("*/") else {
            return self.err("unclosed comment");
        };
        self.advance(x + 2);
        let (delim, trim) = self.at_right_delim();
        if !delim {
            return self.err("comment ends before closing delimiter");
        }
        if trim {
            self.advance(2);
        }
        self.advance(2);
        if trim {
            let n = self.rest().len() - self.rest().trim_start_matches(SPACE_CHARS).len();
            self.advance(n);
        }
        self.ignore();
        Ok(())
    }

    fn right_delim(&mut self) {
        let (_, trim) = self.at_right_delim();
        if trim {
            self.advance(2);
            self.ignore();
        }
        self.advance(2);
        self.emit(Tok::RightDelim);
        if trim {
            let n = self.rest().len() - self.rest().trim_start_matches(SPACE_CHARS).len();
            self.advance(n);
            self.ignore();
        }
    }

    fn inside_action(&mut self) -> LexResult<()> {
        loop {
            let (delim, _) = self.at_right_delim();
            if delim {
                if self.paren_depth == 0 {
                    self.right_delim();
                    return Ok(());
                }
                return self.err("unclosed left paren");
            }
            let Some(c) = self.next() else {
                return self.err("unclosed action");
            };
            match c {
                c if is_space(c) => {
                    // Back up: the space may start " -}}".
                    self.pos -= 1;
                    if c == '\n' {
                        self.line -= 1;
                    }
                    if self.space() {
                        self.right_delim();
                        return Ok(());
                    }
                }
                '=' => self.emit(Tok::Assign),
                ':' => {
                    if self.next() != Some('=') {
                        return self.err("expected :=");
                    }
                    self.emit(Tok::Declare);
                }
                '|' => self.emit(Tok::Pipe),
                '"' => self.quote('"', "unterminated quoted string")?,
                '\'' => self.quote('\'', "unterminated character constant")?,
                '`' => {
                    let Some(x) = self.rest().find('`') else {
                        return self.err("unterminated raw quoted string");
                    };
                    self.advance(x + 1);
                    let w = self.word();
                    self.emit(Tok::RawStr(w));
                }
                '$' => self.field_or_variable(true)?,
                '.' if !self.peek().is_some_and(|c| c.is_ascii_digit()) => {
                    self.field_or_variable(false)?
                }
                '.' | '+' | '-' | '0'..='9' => {
                    self.pos -= 1;
                    self.number()?;
                }
                c if is_alnum(c) => {
                    while self.peek().is_some_and(is_alnum) {
                        self.next();
                    }
                    if !self.at_terminator() {
                        return self.err(format!("bad character {}", go_u(self.peek())));
                    }
                    let w = self.word();
                    let t = match keyword(&w) {
                        Some(k) => Tok::Kw(k),
                        None if w == "true" || w == "false" => Tok::Bool(w == "true"),
                        None => Tok::Ident(w),
                    };
                    self.emit(t);
                }
                '(' => {
                    self.emit(Tok::LeftParen);
                    self.paren_depth += 1;
                }
                ')' => {
                    self.emit(Tok::RightParen);
                    self.paren_depth -= 1;
                    if self.paren_depth < 0 {
                        return self.err("unexpected right paren");
                    }
                }
                c if c.is_ascii() && !c.is_ascii_control() => self.emit(Tok::Other(c)),
                c => {
                    return self.err(format!(
                        "unrecognized character in action: {}",
                        go_u(Some(c))
                    ))
                }
            }
        }
    }

    /// A run of spaces; true if it ends at a trim-marked right delimiter
    /// that the single space belongs to.
    fn space(&mut self) -> bool {
        let mut n = 0;
        while self.peek().is_some_and(is_space) {
            self.next();
            n += 1;
        }
        let back = &self.input[self.pos - 1..];
        if has_right_trim(back) && back[2..].starts_with("}}") {
            self.pos -= 1;
            if self.input.as_bytes()[self.pos] == b'\n' {
                self.line -= 1;
            }
            if n == 1 {
                return true;
            }
        }
        self.emit(Tok::Space);
        false
    }

    fn quote(&mut self, q: char, unterminated: &str) -> LexResult<()> {
        loop {
            match self.next() {
                Some('\\') => match self.next() {
                    None | Some('\n') => return self.err(unterminated),
                    _ => {}
                },
                None | Some('\n') => return self.err(unterminated),
                Some(c) if c == q => break,
                _ => {}
            }
        }
        let w = self.word();
        self.emit(if q == '"' { Tok::Str(w) } else { Tok::Char(w) });
        Ok(())
    }

    fn field_or_variable(&mut self, variable: bool) -> LexResult<()> {
        if self.at_terminator() {
            let t = if variable {
                Tok::Variable("$".into())
            } else {
                Tok::Dot
            };
            self.emit(t);
            return Ok(());
        }
        while self.peek().is_some_and(is_alnum) {
            self.next();
        }
        if !self.at_terminator() {
            return self.err(format!("bad character {}", go_u(self.peek())));
        }
        let w = self.word();
        self.emit(if variable {
            Tok::Variable(w)
        } else {
            Tok::Field(w)
        });
        Ok(())
    }

    fn accept(&mut self, valid: &str) -> bool {
        match self.peek() {
            Some(c) if valid.contains(c) => {
                self.next();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }

    fn number(&mut self) -> LexResult<()> {
        self.accept("+-");
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        if self.accept(".") {
            self.accept_run(digits);
        }
        if digits.len() == 11 && self.accept("eE") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        if digits.len() == 23 && self.accept("pP") {
            self.accept("+-");
            self.accept_run("0123456789_");
        }
        let imaginary = self.accept("i");
        if self.peek().is_some_and(is_alnum) {
            self.next();
            return self.err(format!("bad number syntax: {:?}", self.word()));
        }
        if imaginary || matches!(self.peek(), Some('+' | '-')) {
            return self.err(format!(
                "complex number {:?} is not supported by tailtrace",
                self.word()
            ));
        }
        let w = self.word();
        self.emit(Tok::Number(w));
        Ok(())
    }
}

/// Go's `%#U`: `U+0041 'A'`.
fn go_u(c: Option<char>) -> String {
    match c {
        None => "U+FFFFFFFF".into(),
        Some(c) if !c.is_control() => format!("U+{:04X} '{c}'", c as u32),
        Some(c) => format!("U+{:04X}", c as u32),
    }
}

// ---------------------------------------------------------------- parser

struct Parser {
    toks: Vec<(Tok, usize)>,
    i: usize,
    vars: Vec<Box<str>>,
    range_depth: usize,
    /// Nesting of parentheses and control actions (bounded, so a
    /// pathological template cannot exhaust the stack).
    depth: usize,
}

/// Deepest nesting of `( )` and `{{if}}`/`{{with}}`/`{{range}}` accepted.
const MAX_DEPTH: usize = 200;

type PResult<T> = Result<T, String>;

/// Parses `text`; the error reads as Go's (`pipeline_template:1: …`).
pub(super) fn parse(text: &str) -> Result<Vec<Node>, String> {
    let toks = Lexer {
        input: text,
        pos: 0,
        start: 0,
        line: 1,
        out: Vec::new(),
        paren_depth: 0,
    }
    .run();
    let toks = match toks {
        Ok(t) => t,
        Err((msg, line)) => return Err(format!("{NAME}:{line}: {msg}")),
    };
    let mut p = Parser {
        toks,
        i: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        depth: 0,
    };
    p.top()
}

enum End {
    End,
    Else,
}

impl Parser {
    fn line(&self) -> usize {
        let i = self.i.saturating_sub(1).min(self.toks.len() - 1);
        self.toks[i].1
    }

    fn err<T>(&self, msg: impl std::fmt::Display) -> PResult<T> {
        Err(format!("{NAME}:{}: {msg}", self.line()))
    }

    fn next(&mut self) -> Tok {
        let t = self.toks[self.i.min(self.toks.len() - 1)].0.clone();
        self.i += 1;
        t
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&self) -> &Tok {
        &self.toks[self.i.min(self.toks.len() - 1)].0
    }

    fn next_non_space(&mut self) -> Tok {
        loop {
            let t = self.next();
            if t != Tok::Space {
                return t;
            }
        }
    }

    fn peek_non_space(&mut self) -> Tok {
        let t = self.next_non_space();
        self.backup();
        t
    }

    fn expect_right_delim(&mut self, context: &str) -> PResult<()> {
        match self.next_non_space() {
            Tok::RightDelim => Ok(()),
            t => self.err(format!("unexpected {t} in {context}")),
        }
    }

    fn top(&mut self) -> PResult<Vec<Node>> {
        let mut list = Vec::new();
        loop {
            if *self.peek() == Tok::Eof {
                return Ok(list);
            }
            match self.text_or_action()? {
                Ok(n) => list.push(n),
                Err(End::End) => return self.err("unexpected {{end}}"),
                Err(End::Else) => return self.err("unexpected {{else}}"),
            }
        }
    }

    /// Nodes up to `{{end}}` or `{{else}}`, which is returned.
    fn item_list(&mut self) -> PResult<(Vec<Node>, End)> {
        let mut list = Vec::new();
        while self.peek_non_space() != Tok::Eof {
            match self.text_or_action()? {
                Ok(n) => list.push(n),
                Err(end) => return Ok((list, end)),
            }
        }
        self.err("unexpected EOF")
    }

    fn text_or_action(&mut self) -> PResult<Result<Node, End>> {
        match self.next_non_space() {
            Tok::Text(t) => Ok(Ok(Node::Text(t.into()))),
            Tok::LeftDelim => self.action(),
            t => self.err(format!("unexpected {t} in input")),
        }
    }

    fn action(&mut self) -> PResult<Result<Node, End>> {
        match self.next_non_space() {
            Tok::Kw(Kw::Else) => {
                // "{{else if …": leave the `if` for the caller.
                if matches!(self.peek_non_space(), Tok::Kw(Kw::If | Kw::With)) {
                    return Ok(Err(End::Else));
                }
                self.expect_right_delim("else")?;
                Ok(Err(End::Else))
            }
            Tok::Kw(Kw::End) => {
                self.expect_right_delim("end")?;
                Ok(Err(End::End))
            }
            Tok::Kw(Kw::If) => Ok(Ok(Node::If(self.control(Kw::If)?))),
            Tok::Kw(Kw::With) => Ok(Ok(Node::With(self.control(Kw::With)?))),
            Tok::Kw(Kw::Range) => {
                self.range_depth += 1;
                let c = self.control(Kw::Range);
                self.range_depth -= 1;
                Ok(Ok(Node::Range(c?)))
            }
            Tok::Kw(k @ (Kw::Break | Kw::Continue)) => {
                let name = if k == Kw::Break { "break" } else { "continue" };
                if self.range_depth == 0 {
                    return self.err(format!("{{{{{name}}}}} outside {{{{range}}}}"));
                }
                match self.next_non_space() {
                    Tok::RightDelim => {}
                    t => return self.err(format!("unexpected {t} in {{{{{name}}}}}")),
                }
                Ok(Ok(if k == Kw::Break {
                    Node::Break
                } else {
                    Node::Continue
                }))
            }
            Tok::Kw(Kw::Define | Kw::Template | Kw::Block) => {
                self.err("named templates ({{define}}, {{template}}, {{block}}) are not supported by tailtrace")
            }
            _ => {
                self.backup();
                Ok(Ok(Node::Action(self.pipeline("command", true)?)))
            }
        }
    }

    fn control(&mut self, kw: Kw) -> PResult<Control> {
        if self.depth >= MAX_DEPTH {
            return self.err("template nested too deeply");
        }
        self.depth += 1;
        let r = self.control_inner(kw);
        self.depth -= 1;
        r
    }

    fn control_inner(&mut self, kw: Kw) -> PResult<Control> {
        let mark = self.vars.len();
        let context = match kw {
            Kw::If => "if",
            Kw::With => "with",
            _ => "range",
        };
        let r = (|| {
            let pipe = self.pipeline(context, true)?;
            let (list, end) = self.item_list()?;
            let mut else_list = None;
            if let End::Else = end {
                // `else if` / `else with` chain: one {{end}} closes all.
                let chained = match (kw, self.peek_non_space()) {
                    (Kw::If, Tok::Kw(Kw::If)) => Some(Kw::If),
                    (Kw::With, Tok::Kw(Kw::With)) => Some(Kw::With),
                    _ => None,
                };
                if let Some(k) = chained {
                    self.next_non_space();
                    let c = self.control(k)?;
                    else_list = Some(vec![if k == Kw::If {
                        Node::If(c)
                    } else {
                        Node::With(c)
                    }]);
                } else {
                    if matches!(self.peek_non_space(), Tok::Kw(Kw::If | Kw::With)) {
                        // `{{else if}}` inside range, `{{else with}}` in if.
                        let t = self.next_non_space();
                        return self.err(format!("unexpected {t} in else"));
                    }
                    let (l, end) = self.item_list()?;
                    if let End::Else = end {
                        return self.err("expected end; found {{else}}");
                    }
                    else_list = Some(l);
                }
            }
            Ok(Control {
                pipe,
                list,
                else_list,
            })
        })();
        self.vars.truncate(mark);
        r
    }

    fn pipeline(&mut self, context: &str, top: bool) -> PResult<Pipe> {
        let mut pipe = Pipe {
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        // Declarations.
        while let Tok::Variable(v) = self.peek_non_space() {
            let start = self.i;
            self.next_non_space();
            match self.peek_non_space() {
                t @ (Tok::Assign | Tok::Declare) => {
                    self.next_non_space();
                    pipe.is_assign = t == Tok::Assign;
                    if pipe.is_assign && !self.vars.iter().any(|x| **x == *v) {
                        return self.err(format!("undefined variable {v:?}"));
                    }
                    pipe.decl.push(v.as_str().into());
                    self.vars.push(v.as_str().into());
                    break;
                }
                Tok::Other(',') => {
                    self.next_non_space();
                    pipe.decl.push(v.as_str().into());
                    self.vars.push(v.as_str().into());
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space() {
                            Tok::Variable(_) | Tok::RightDelim | Tok::RightParen => continue,
                            _ => return self.err("range can only initialize variables"),
                        }
                    }
                    return self.err(format!("too many declarations in {context}"));
                }
                _ => {
                    self.i = start;
                    break;
                }
            }
        }
        loop {
            match self.next_non_space() {
                t @ (Tok::RightDelim | Tok::RightParen) => {
                    if pipe.cmds.is_empty() {
                        return self.err(format!("missing value for {context}"));
                    }
                    for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                        if matches!(
                            c.args[0],
                            Arg::Bool(_) | Arg::Dot | Arg::Nil | Arg::Number(_) | Arg::Str(_)
                        ) {
                            return self.err(format!(
                                "non executable command in pipeline stage {}",
                                i + 1
                            ));
                        }
                    }
                    if t == Tok::RightParen {
                        if top {
                            return self.err("unexpected right paren");
                        }
                        self.backup();
                    } else if !top {
                        return self.err(format!("unclosed right paren: unexpected {t}"));
                    }
                    return Ok(pipe);
                }
                Tok::Bool(_)
                | Tok::Char(_)
                | Tok::Dot
                | Tok::Field(_)
                | Tok::Ident(_)
                | Tok::Number(_)
                | Tok::Kw(Kw::Nil)
                | Tok::RawStr(_)
                | Tok::Str(_)
                | Tok::Variable(_)
                | Tok::LeftParen => {
                    self.backup();
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                t => return self.err(format!("unexpected {t} in {context}")),
            }
        }
    }

    fn command(&mut self) -> PResult<Cmd> {
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(a) = self.operand()? {
                args.push(a);
            }
            match self.next() {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.backup(),
                Tok::Pipe => {}
                t => return self.err(format!("unexpected {t} in operand")),
            }
            break;
        }
        if args.is_empty() {
            return self.err("empty command");
        }
        Ok(Cmd { args })
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(term) = self.term()? else {
            return Ok(None);
        };
        let mut fields: Vec<Box<str>> = Vec::new();
        while let Tok::Field(f) = self.peek() {
            fields.push(f[1..].into());
            self.next();
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut f) => {
                f.extend(fields);
                Arg::Field(f)
            }
            Arg::Variable(v, mut f) => {
                f.extend(fields);
                Arg::Variable(v, f)
            }
            Arg::Bool(_) | Arg::Str(_) | Arg::Number(_) | Arg::Nil | Arg::Dot => {
                return self.err(format!("unexpected . after term {:?}", term.describe()))
            }
            other => Arg::Chain(Box::new(other), fields),
        }))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        Ok(Some(match self.next_non_space() {
            Tok::Ident(name) => match funcs::lookup(&name) {
                funcs::Lookup::Found(d) => Arg::Func(d),
                funcs::Lookup::Unsupported => {
                    return self.err(format!(
                        "function {name:?} (sprig) is not supported by tailtrace"
                    ))
                }
                funcs::Lookup::Unknown => {
                    return self.err(format!("function {name:?} not defined"))
                }
            },
            Tok::Dot => Arg::Dot,
            Tok::Kw(Kw::Nil) => Arg::Nil,
            Tok::Variable(v) => {
                let (name, fields) = match v.find('.') {
                    Some(i) => (&v[..i], v[i + 1..].split('.').map(Into::into).collect()),
                    None => (v.as_str(), Vec::new()),
                };
                if !self.vars.iter().any(|x| **x == *name) {
                    return self.err(format!("undefined variable {name:?}"));
                }
                Arg::Variable(name.into(), fields)
            }
            Tok::Field(f) => Arg::Field(vec![f[1..].into()]),
            Tok::Bool(b) => Arg::Bool(b),
            Tok::Number(t) => match number(&t) {
                Ok(n) => Arg::Number(n),
                Err(e) => return self.err(e),
            },
            Tok::Char(t) => match unquote_char(&t) {
                Ok(c) => Arg::Number(Number {
                    text: t.into(),
                    int: Some(i64::from(u32::from(c))),
                    float: Some(f64::from(u32::from(c))),
                    floaty: false,
                }),
                Err(e) => return self.err(e),
            },
            Tok::LeftParen => {
                if self.depth >= MAX_DEPTH {
                    return self.err("template nested too deeply");
                }
                self.depth += 1;
                let p = self.pipeline("parenthesized pipeline", false);
                self.depth -= 1;
                let p = p?;
                match self.next() {
                    Tok::RightParen => {}
                    t => return self.err(format!("unclosed right paren: unexpected {t}")),
                }
                Arg::Pipe(Box::new(p))
            }
            Tok::Str(s) => match unquote(&s) {
                Ok(s) => Arg::Str(s.into()),
                Err(e) => return self.err(e),
            },
            Tok::RawStr(s) => Arg::Str(s[1..s.len() - 1].replace('\r', "").into()),
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }
}

// ---------------------------------------------------------------- literals

/// Go's `strconv.ParseInt(s, 0, 64)`: sign, `0x`/`0o`/`0b`/`0` prefixes,
/// underscores only with a prefix.
pub(super) fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = parse_uint_base0(body)?;
    if neg {
        if v > i64::MAX as u64 + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
pub(super) fn parse_uint_base0(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let (radix, digits) = if b.len() >= 2 && b[0] == b'0' {
        match b[1] {
            b'x' | b'X' => (16, &s[2..]),
            b'o' | b'O' => (8, &s[2..]),
            b'b' | b'B' => (2, &s[2..]),
            _ => (8, &s[1..]),
        }
    } else {
        (10, s)
    };
    if digits.is_empty() && radix != 8 || s.is_empty() {
        return None;
    }
    if s.contains('_') && !underscore_ok(s) {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() {
        return Some(0);
    }
    if clean.starts_with(['+', '-']) {
        return None;
    }
    u64::from_str_radix(&clean, radix).ok()
}

/// Go's `underscoreOK`: underscores only between digits, or between a base
/// prefix and a digit.
fn underscore_ok(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s).as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() || hex && c.is_ascii_hexdigit() {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

fn number(text: &str) -> Result<Number, String> {
    let int = parse_int_base0(text);
    let uint = parse_uint_base0(text);
    let floaty = text.contains(['.', 'e', 'E', 'p', 'P']) && !is_hex_int(text);
    let mut n = Number {
        text: text.into(),
        int,
        float: None,
        floaty,
    };
    if let Some(i) = int {
        n.float = Some(i as f64);
    } else if let Some(u) = uint {
        n.float = Some(u as f64);
    } else {
        let clean: String = text.chars().filter(|&c| c != '_').collect();
        match go_parse_float(&clean) {
            Some(f) => {
                if !text.contains(['.', 'e', 'E', 'p', 'P']) {
                    return Err(format!("integer overflow: {text:?}"));
                }
                n.float = Some(f);
                if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 {
                    n.int = Some(f as i64);
                }
            }
            None => return Err(format!("illegal number syntax: {text:?}")),
        }
    }
    Ok(n)
}

fn is_hex_int(s: &str) -> bool {
    let s = s.trim_start_matches(['+', '-']);
    s.len() > 2
        && s.starts_with('0')
        && matches!(s.as_bytes()[1], b'x' | b'X')
        && !s.contains(['p', 'P'])
}

/// A float literal (decimal; hex floats are rare enough to refuse).
fn go_parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains(['x', 'X', 'i', 'n', 'N']) {
        return None;
    }
    s.parse::<f64>().ok()
}

/// Go's `strconv.Unquote` for a double-quoted literal.
pub(super) fn unquote(s: &str) -> Result<String, String> {
    let inner = &s[1..s.len() - 1];
    let mut out: Vec<u8> = Vec::with_capacity(inner.len());
    let mut it = inner.char_indices().peekable();
    while let Some((_, c)) = it.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let Some((_, e)) = it.next() else {
            return Err("invalid syntax".into());
        };
        match e {
            'a' => out.push(7),
            'b' => out.push(8),
            'f' => out.push(12),
            'n' => out.push(b'\n'),
            'r' => out.push(b'\r'),
            't' => out.push(b'\t'),
            'v' => out.push(11),
            '\\' => out.push(b'\\'),
            '"' => out.push(b'"'),
            'x' => {
                let h: String = (0..2).filter_map(|_| it.next().map(|x| x.1)).collect();
                let v = u8::from_str_radix(&h, 16).map_err(|_| "invalid syntax")?;
                if h.len() != 2 {
                    return Err("invalid syntax".into());
                }
                out.push(v);
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match it.next() {
                        Some((_, d)) if d.is_digit(8) => v = v * 8 + d.to_digit(8).unwrap_or(0),
                        _ => return Err("invalid syntax".into()),
                    }
                }
                if v > 255 {
                    return Err("invalid syntax".into());
                }
                out.push(v as u8);
            }
            'u' | 'U' => {
                let n = if e == 'u' { 4 } else { 8 };
                let h: String = (0..n).filter_map(|_| it.next().map(|x| x.1)).collect();
                let v = u32::from_str_radix(&h, 16).map_err(|_| "invalid syntax")?;
                let c = char::from_u32(v).ok_or("invalid syntax")?;
                if h.len() != n {
                    return Err("invalid syntax".into());
                }
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => return Err("invalid syntax".into()),
        }
    }
    // `\x` escapes may build bytes that are not UTF-8 (Go strings allow
    // them; here they read as U+FFFD).
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// A character constant `'a'`, `'\n'`, `'\x41'`, `'\u00e9'`.
fn unquote_char(s: &str) -> Result<char, String> {
    let inner = &s[1..s.len() - 1];
    let c = if inner.starts_with('\\') {
        if inner == "\\'" {
            '\''
        } else if inner == "\\\"" {
            return Err(format!("malformed character constant: {s}"));
        } else {
            let u = unquote(&format!("\"{inner}\""))?;
            let mut cs = u.chars();
            match (cs.next(), cs.next()) {
                (Some(c), None) => c,
                _ => return Err(format!("malformed character constant: {s}")),
            }
        }
    } else {
        let mut cs = inner.chars();
        match (cs.next(), cs.next()) {
            (Some(c), None) => c,
            _ => return Err(format!("malformed character constant: {s}")),
        }
    };
    Ok(c)
}
