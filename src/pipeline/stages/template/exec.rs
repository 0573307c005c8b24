//! Executing a parsed template against one entry: Go's `text/template`
//! evaluation rules on a small value model.
//!
//! Owns: [`Val`] (the Go values templates handle: strings, `int`, `int64`,
//! `float64`, bools, `nil`, lists, maps, `time.Time`), [`Data`] (the
//! template's data: every string-like extracted value by key, plus `Value`
//! and `Entry`, looked up lazily — no map is built per line), how values
//! print (`fmt.Sprint`'s `%v`), truth, and Go's argument typing (a missing
//! key given to a function expecting a string is an error; to one taking
//! `interface{}` it is `nil`).
//!
//! Must never: panic on any template or input; recursion is bounded by the
//! template's nesting, which is fixed at parse.

use super::funcs::{FuncDef, P};
use super::parse::{Arg, Cmd, Control, Node, Number, Pipe};
use crate::pipeline::extracted::to_go_string;
use crate::pipeline::gotime::{GoLocation, ZonedTime};
use crate::pipeline::Extracted;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

/// A Go value.
#[derive(Clone, Debug)]
pub(super) enum Val {
    /// A missing map key, a nil interface: prints `<no value>` in an
    /// action, `<nil>` inside `print`.
    Nil,
    Bool(bool),
    /// Go `int` (number literals, `len`, `atoi`, `int`).
    Int(i64),
    /// Go `int64` (sprig arithmetic).
    Int64(i64),
    Float(f64),
    Str(String),
    List(Rc<Vec<Val>>),
    Map(Rc<RefCell<BTreeMap<String, Val>>>),
    Time(ZonedTime),
    /// The template's data (`.` at the top).
    Root,
}

impl Val {
    pub fn str(s: impl Into<String>) -> Val {
        Val::Str(s.into())
    }

    pub fn list(v: Vec<Val>) -> Val {
        Val::List(Rc::new(v))
    }

    pub fn map(m: BTreeMap<String, Val>) -> Val {
        Val::Map(Rc::new(RefCell::new(m)))
    }

    /// Go's type name, for messages and `typeOf`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Val::Nil => "<nil>",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Int64(_) => "int64",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::List(_) => "[]interface {}",
            Val::Map(_) | Val::Root => "map[string]interface {}",
            Val::Time(_) => "time.Time",
        }
    }

    /// Go's `reflect.Kind` name, for `kindOf`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Val::Nil => "invalid",
            Val::Bool(_) => "bool",
            Val::Int(_) => "int",
            Val::Int64(_) => "int64",
            Val::Float(_) => "float64",
            Val::Str(_) => "string",
            Val::List(_) => "slice",
            Val::Map(_) | Val::Root => "map",
            Val::Time(_) => "struct",
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Val::Nil)
    }
}

/// Go's template truth: not the zero value of its type.
pub(super) fn truth(v: &Val) -> bool {
    match v {
        Val::Nil => false,
        Val::Bool(b) => *b,
        Val::Int(i) | Val::Int64(i) => *i != 0,
        Val::Float(f) => *f != 0.0,
        Val::Str(s) => !s.is_empty(),
        Val::List(l) => !l.is_empty(),
        Val::Map(m) => !m.borrow().is_empty(),
        Val::Time(_) | Val::Root => true,
    }
}

/// The data a template sees: Promtail's map of every string-like extracted
/// value, `Value` (the source's value) and `Entry` (the line).
pub(super) struct Data<'a> {
    pub extracted: &'a Extracted,
    pub line: &'a str,
    pub source: &'a str,
}

impl Data<'_> {
    /// `.key` at the top.
    pub fn get(&self, key: &str) -> Val {
        match key {
            "Entry" => Val::str(self.line),
            "Value" => match self.extracted.get(self.source).and_then(to_go_string) {
                Some(s) => Val::Str(s),
                // Without the source, an extracted key named `Value`.
                None => self.string_of("Value"),
            },
            k => self.string_of(k),
        }
    }

    fn string_of(&self, key: &str) -> Val {
        match self.extracted.get(key).and_then(to_go_string) {
            Some(s) => Val::Str(s),
            None => Val::Nil,
        }
    }

    /// The whole data as a map (for `.` used as a value).
    pub fn materialize(&self) -> Val {
        let mut m = BTreeMap::new();
        for (k, v) in self.extracted.iter() {
            if let Some(s) = to_go_string(v) {
                m.insert(k.to_string(), Val::Str(s));
            }
        }
        if let Some(s) = self.extracted.get(self.source).and_then(to_go_string) {
            m.insert("Value".into(), Val::Str(s));
        }
        m.insert("Entry".into(), Val::str(self.line));
        Val::map(m)
    }
}

/// What functions may use besides their arguments: compiled regexes and
/// the local time zone, kept across lines.
pub(super) struct Env {
    regexes: HashMap<String, Result<::regex::Regex, String>>,
    local: Option<GoLocation>,
}

impl Env {
    const MAX_REGEXES: usize = 256;

    pub fn new() -> Self {
        Env {
            regexes: HashMap::new(),
            local: None,
        }
    }

    /// `pattern` compiled (once; cached).
    pub fn regex(&mut self, pattern: &str) -> Result<&::regex::Regex, String> {
        if !self.regexes.contains_key(pattern) {
            if self.regexes.len() >= Self::MAX_REGEXES {
                self.regexes.clear();
            }
            let r = ::regex::Regex::new(pattern).map_err(|e| {
                // Go: "regexp: Compile(`x`): error parsing regexp: …"
                format!(
                    "regexp: Compile({pattern:?}): {}",
                    e.to_string().lines().last().unwrap_or("")
                )
            });
            self.regexes.insert(pattern.to_string(), r);
        }
        match self.regexes.get(pattern) {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(e.clone()),
            None => Err("regexp cache".into()),
        }
    }

    /// Go's `time.Local`.
    pub fn local(&mut self) -> &GoLocation {
        self.local.get_or_insert_with(GoLocation::system)
    }
}

enum Flow {
    Normal,
    Break,
    Continue,
}

type R<T> = Result<T, String>;

/// One execution.
struct State<'t, 'd, 'e> {
    data: &'d Data<'d>,
    env: &'e mut Env,
    vars: Vec<(&'t str, Val)>,
    out: String,
}

/// Runs `nodes` against `data`; the output, or the first error (Promtail
/// then leaves the entry unchanged).
pub(super) fn execute(nodes: &[Node], data: &Data, env: &mut Env) -> R<String> {
    let mut s = State {
        data,
        env,
        vars: vec![("$", Val::Root)],
        out: String::new(),
    };
    s.walk(&Val::Root, nodes)?;
    Ok(s.out)
}

impl<'t> State<'t, '_, '_> {
    fn walk(&mut self, dot: &Val, nodes: &'t [Node]) -> R<Flow> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.eval_pipeline(dot, p)?;
                    if p.decl.is_empty() {
                        self.print(&v);
                    }
                }
                Node::If(c) | Node::With(c) => {
                    let with = matches!(n, Node::With(_));
                    let mark = self.vars.len();
                    let v = self.eval_pipeline(dot, &c.pipe)?;
                    let f = if truth(&v) {
                        if with {
                            let v = self.resolve(v);
                            self.walk(&v, &c.list)?
                        } else {
                            self.walk(dot, &c.list)?
                        }
                    } else if let Some(e) = &c.else_list {
                        self.walk(dot, e)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(f, Flow::Normal) {
                        return Ok(f);
                    }
                }
                Node::Range(c) => {
                    let mark = self.vars.len();
                    self.range(dot, c)?;
                    self.vars.truncate(mark);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, dot: &Val, c: &'t Control) -> R<()> {
        let v = self.eval_pipeline(dot, &c.pipe)?;
        let v = self.resolve(v);
        let items: Vec<(Val, Val)> = match &v {
            Val::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Val::Int(i as i64), e.clone()))
                .collect(),
            Val::Map(m) => m
                .borrow()
                .iter()
                .map(|(k, e)| (Val::str(k.as_str()), e.clone()))
                .collect(),
            Val::Int(n) | Val::Int64(n) => {
                if c.pipe.decl.len() > 1 {
                    return Err(format!(
                        "can't use {n} to iterate over more than one variable"
                    ));
                }
                (0..*n).map(|i| (Val::Int(i), Val::Int(i))).collect()
            }
            Val::Nil => Vec::new(),
            other => return Err(format!("range can't iterate over {}", fmt_v(other))),
        };
        if items.is_empty() {
            if let Some(e) = &c.else_list {
                self.walk(dot, e)?;
            }
            return Ok(());
        }
        let mark = self.vars.len();
        let nd = c.pipe.decl.len();
        for (index, elem) in items {
            if nd > 0 {
                self.vars[mark - 1].1 = elem.clone();
            }
            if nd > 1 {
                self.vars[mark - 2].1 = index;
            }
            let f = self.walk(&elem, &c.list)?;
            self.vars.truncate(mark);
            if let Flow::Break = f {
                break;
            }
        }
        Ok(())
    }

    fn print(&mut self, v: &Val) {
        match v {
            Val::Nil => self.out.push_str("<no value>"),
            Val::Str(s) => self.out.push_str(s),
            Val::Root => {
                let m = self.data.materialize();
                self.out.push_str(&fmt_v(&m));
            }
            v => self.out.push_str(&fmt_v(v)),
        }
    }

    /// `Root` as a map value (when `.` is used as a value).
    fn resolve(&self, v: Val) -> Val {
        match v {
            Val::Root => self.data.materialize(),
            v => v,
        }
    }

    fn var(&self, name: &str) -> R<Val> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("undefined variable: {name}"))
    }

    fn eval_pipeline(&mut self, dot: &Val, p: &'t Pipe) -> R<Val> {
        let mut value: Option<Val> = None;
        for cmd in &p.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let v = value.unwrap_or(Val::Nil);
        for name in &p.decl {
            if p.is_assign {
                match self.vars.iter_mut().rev().find(|(n, _)| **n == **name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => return Err(format!("undefined variable: {name}")),
                }
            } else {
                self.vars.push((name, v.clone()));
            }
        }
        Ok(v)
    }

    fn not_a_function(args: &[Arg], fin: &Option<Val>) -> R<()> {
        if args.len() > 1 || fin.is_some() {
            return Err(format!(
                "can't give argument to non-function {}",
                args[0].describe()
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Val, cmd: &'t Cmd, fin: Option<Val>) -> R<Val> {
        let args = &cmd.args;
        match &args[0] {
            Arg::Field(ids) => self.eval_field_chain(dot, dot.clone(), ids, args, fin),
            Arg::Chain(node, ids) => {
                let recv = self.eval_arg(dot, P::Any, node)?;
                self.eval_field_chain(dot, recv, ids, args, fin)
            }
            Arg::Func(def) => self.eval_call(dot, def, &args[1..], fin),
            Arg::Pipe(p) => {
                Self::not_a_function(args, &fin)?;
                self.eval_pipeline(dot, p)
            }
            Arg::Variable(name, ids) => {
                let v = self.var(name)?;
                if ids.is_empty() {
                    Self::not_a_function(args, &fin)?;
                    return Ok(v);
                }
                self.eval_field_chain(dot, v, ids, args, fin)
            }
            lit => {
                Self::not_a_function(args, &fin)?;
                match lit {
                    Arg::Bool(b) => Ok(Val::Bool(*b)),
                    Arg::Dot => Ok(dot.clone()),
                    Arg::Nil => Err("nil is not a command".into()),
                    Arg::Number(n) => ideal_constant(n),
                    Arg::Str(s) => Ok(Val::str(&**s)),
                    _ => Err(format!("can't evaluate command {}", lit.describe())),
                }
            }
        }
    }

    fn eval_field_chain(
        &mut self,
        dot: &Val,
        mut recv: Val,
        ids: &'t [Box<str>],
        args: &'t [Arg],
        fin: Option<Val>,
    ) -> R<Val> {
        let n = ids.len();
        for id in &ids[..n - 1] {
            recv = self.eval_field(dot, id, &[], None, recv)?;
        }
        self.eval_field(dot, &ids[n - 1], args, fin, recv)
    }

    /// `.name` on `recv`; `args` are the command's (the first is the field
    /// itself), for methods.
    fn eval_field(
        &mut self,
        dot: &Val,
        name: &str,
        args: &'t [Arg],
        fin: Option<Val>,
        recv: Val,
    ) -> R<Val> {
        let has_args = args.len() > 1 || fin.is_some();
        match recv {
            Val::Nil => Ok(Val::Nil),
            Val::Time(t) => {
                let Some(def) = super::funcs::time_method(name) else {
                    return Err(format!("can't evaluate field {name} in type time.Time"));
                };
                let rest = if args.len() > 1 { &args[1..] } else { &[] };
                self.eval_call_with(dot, def, Some(Val::Time(t)), rest, fin)
            }
            Val::Root => {
                if has_args {
                    return Err(format!("{name} is not a method but has arguments"));
                }
                Ok(self.data.get(name))
            }
            Val::Map(m) => {
                if has_args {
                    return Err(format!("{name} is not a method but has arguments"));
                }
                Ok(m.borrow().get(name).cloned().unwrap_or(Val::Nil))
            }
            other => Err(format!(
                "can't evaluate field {name} in type {}",
                other.type_name()
            )),
        }
    }

    fn eval_call(
        &mut self,
        dot: &Val,
        def: &'static FuncDef,
        args: &'t [Arg],
        fin: Option<Val>,
    ) -> R<Val> {
        self.eval_call_with(dot, def, None, args, fin)
    }

    /// Calls `def` with `recv` (a method's receiver) then `args` then the
    /// pipeline's `fin`, each typed as Go types them.
    fn eval_call_with(
        &mut self,
        dot: &Val,
        def: &'static FuncDef,
        recv: Option<Val>,
        args: &'t [Arg],
        fin: Option<Val>,
    ) -> R<Val> {
        let base = usize::from(recv.is_some());
        let num_in = base + args.len() + usize::from(fin.is_some());
        let fixed = def.params.len();
        if def.variadic.is_some() {
            if num_in < fixed {
                return Err(format!(
                    "wrong number of args for {}: want at least {} got {}",
                    def.name,
                    fixed - base,
                    args.len()
                ));
            }
        } else if num_in != fixed {
            return Err(format!(
                "wrong number of args for {}: want {} got {}",
                def.name,
                fixed - base,
                num_in - base
            ));
        }
        let ty = |i: usize| {
            if i < fixed {
                def.params[i]
            } else {
                def.variadic.unwrap_or(P::Any)
            }
        };
        if def.name == "and" || def.name == "or" {
            // Short-circuit: later arguments are not evaluated.
            let want = def.name == "or";
            let mut v = Val::Nil;
            for a in args {
                v = self.eval_arg(dot, P::Any, a)?;
                if truth(&v) == want {
                    return Ok(v);
                }
            }
            if let Some(f) = fin {
                v = f;
            }
            return Ok(v);
        }
        let mut argv = Vec::with_capacity(num_in);
        if let Some(r) = recv {
            argv.push(r);
        }
        for (i, a) in args.iter().enumerate() {
            let v = self.eval_arg(dot, ty(base + i), a)?;
            argv.push(v);
        }
        if let Some(f) = fin {
            let f = self.validate(f, ty(num_in - 1))?;
            argv.push(f);
        }
        (def.f)(self.env, argv).map_err(|e| format!("error calling {}: {e}", def.name))
    }

    /// Go's `validateType`: a computed value given to a parameter.
    fn validate(&self, v: Val, ty: P) -> R<Val> {
        let ok = match (&v, ty) {
            (Val::Root, P::Any | P::Map) => return Ok(self.data.materialize()),
            (_, P::Any) => true,
            (Val::Nil, P::Map) => true,
            (Val::Nil, _) => return Err(format!("invalid value; expected {}", ty.go_name())),
            (Val::Str(_), P::Str)
            | (Val::Int(_), P::Int)
            | (Val::Float(_), P::Float)
            | (Val::Bool(_), P::Bool)
            | (Val::Time(_), P::Time)
            | (Val::Map(_), P::Map) => true,
            _ => false,
        };
        if ok {
            Ok(v)
        } else {
            Err(format!(
                "wrong type for value; expected {}; got {}",
                ty.go_name(),
                v.type_name()
            ))
        }
    }

    /// Go's `evalArg`: an argument node given to a parameter of type `ty`.
    fn eval_arg(&mut self, dot: &Val, ty: P, a: &'t Arg) -> R<Val> {
        match a {
            Arg::Dot => self.validate(dot.clone(), ty),
            Arg::Nil => {
                if matches!(ty, P::Any | P::Map) {
                    Ok(Val::Nil)
                } else {
                    Err(format!("cannot assign nil to {}", ty.go_name()))
                }
            }
            Arg::Field(ids) => {
                let v = self.eval_field_chain(dot, dot.clone(), ids, &[], None)?;
                self.validate(v, ty)
            }
            Arg::Variable(name, ids) => {
                let mut v = self.var(name)?;
                if !ids.is_empty() {
                    v = self.eval_field_chain(dot, v, ids, &[], None)?;
                }
                self.validate(v, ty)
            }
            Arg::Pipe(p) => {
                let v = self.eval_pipeline(dot, p)?;
                self.validate(v, ty)
            }
            Arg::Func(def) => {
                let v = self.eval_call(dot, def, &[], None)?;
                self.validate(v, ty)
            }
            Arg::Chain(node, ids) => {
                let recv = self.eval_arg(dot, P::Any, node)?;
                let v = self.eval_field_chain(dot, recv, ids, &[], None)?;
                self.validate(v, ty)
            }
            Arg::Bool(b) => match ty {
                P::Bool | P::Any => Ok(Val::Bool(*b)),
                _ => Err(expected(ty, &b.to_string())),
            },
            Arg::Str(s) => match ty {
                P::Str | P::Any => Ok(Val::str(&**s)),
                _ => Err(expected(ty, &format!("{s:?}"))),
            },
            Arg::Number(n) => match ty {
                P::Any => ideal_constant(n),
                P::Int => n
                    .int
                    .map(Val::Int)
                    .ok_or_else(|| format!("expected integer; found {}", n.text)),
                P::Float => n
                    .float
                    .map(Val::Float)
                    .ok_or_else(|| format!("expected float; found {}", n.text)),
                _ => Err(expected(ty, &n.text)),
            },
        }
    }
}

fn expected(ty: P, found: &str) -> String {
    match ty {
        P::Str => format!("expected string; found {found}"),
        P::Int => format!("expected integer; found {found}"),
        P::Float => format!("expected float; found {found}"),
        P::Bool => format!("expected bool; found {found}"),
        _ => format!("can't handle {found} for arg of type {}", ty.go_name()),
    }
}

/// A number literal where no type is asked for: Go's "ideal constant".
fn ideal_constant(n: &Number) -> R<Val> {
    if n.floaty {
        if let Some(f) = n.float {
            return Ok(Val::Float(f));
        }
    }
    match n.int {
        Some(i) => Ok(Val::Int(i)),
        None => Err(format!("{} overflows int", n.text)),
    }
}

/// `fmt.Sprint(v)` (`%v`) of one value; `nil` prints `<nil>`.
pub(super) fn fmt_v(v: &Val) -> String {
    let mut s = String::new();
    write_v(&mut s, v);
    s
}

fn write_v(out: &mut String, v: &Val) {
    match v {
        Val::Nil => out.push_str("<nil>"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) | Val::Int64(i) => out.push_str(&i.to_string()),
        Val::Float(f) => out.push_str(&fmt_float_g(*f)),
        Val::Str(s) => out.push_str(s),
        Val::List(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_v(out, e);
            }
            out.push(']');
        }
        Val::Map(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_v(out, e);
            }
            out.push(']');
        }
        Val::Time(t) => out.push_str(&t.to_go_string()),
        Val::Root => out.push_str("map[]"),
    }
}

/// Go's `%v` for a float64: `strconv.FormatFloat(f, 'g', -1, 64)` — the
/// shortest digits, with an exponent when it is below -4 or at least 6
/// (`1e+06`, `123456`).
pub(super) fn fmt_float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Shortest round-trip digits and exponent from Rust's `{:e}`.
    let e = format!("{f:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    crate::pipeline::extracted::format_float(f)
}
