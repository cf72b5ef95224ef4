//! `GET /activities` filtering: the 31-day rule, `q` expressions and `fields` projection.

use super::model::{SimError, SimResult};
use crate::ofsc::wire::Activity;
use chrono::NaiveDate;
use serde_json::{Map, Value};

pub const DEFAULT_FIELDS: &str = "activityId,resourceId,date,status";

/// Validates `dateFrom`/`dateTo`: both or neither, ordered, `dateTo - dateFrom` at most 31
/// days (Oracle's rule: 2026-01-01 to 2026-02-01 is allowed).
pub fn date_range(
    from: Option<&str>,
    to: Option<&str>,
    non_scheduled: bool,
) -> SimResult<Option<(NaiveDate, NaiveDate)>> {
    let parse = |s: &str| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| SimError::bad_request(format!("Invalid date '{s}'")))
    };
    match (from, to) {
        (Some(f), Some(t)) => {
            let (f, t) = (parse(f)?, parse(t)?);
            if t < f {
                return Err(SimError::bad_request("dateTo is earlier than dateFrom"));
            }
            if (t - f).num_days() > 31 {
                return Err(SimError::bad_request(
                    "Date interval contains more than 31 days",
                ));
            }
            Ok(Some((f, t)))
        }
        (None, None) if non_scheduled => Ok(None),
        (None, None) => Err(SimError::bad_request("dateFrom and dateTo are required")),
        _ => Err(SimError::bad_request(
            "dateFrom and dateTo must be given together",
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Cmp {
        field: String,
        op: Op,
        value: String,
    },
    In {
        field: String,
        values: Vec<String>,
    },
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A parsed `q` filter, as Oracle documents it: `== != < > <= >=` against single-quoted
/// values, `field in ['a', 'b']`, `and`, `or`, `not` and parentheses; case-insensitive; a
/// missing field equals `''`. Values compare as numbers when both sides are numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Expr);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Op(Op),
    Open,
    Close,
    ListOpen,
    ListClose,
    Comma,
}

fn lex(q: &str) -> SimResult<Vec<Tok>> {
    let bad = |why: &str| SimError::bad_request(format!("Invalid q expression: {why}"));
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' => i += 1,
            '(' => {
                out.push(Tok::Open);
                i += 1
            }
            ')' => {
                out.push(Tok::Close);
                i += 1
            }
            '[' | ']' | ',' => {
                out.push(match c {
                    '[' => Tok::ListOpen,
                    ']' => Tok::ListClose,
                    _ => Tok::Comma,
                });
                i += 1
            }
            '=' | '!' | '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('=', true) => Op::Eq,
                    ('!', true) => Op::Ne,
                    ('<', true) => Op::Le,
                    ('>', true) => Op::Ge,
                    ('<', false) => Op::Lt,
                    ('>', false) => Op::Gt,
                    _ => return Err(bad(&format!("unexpected '{c}'"))),
                };
                out.push(Tok::Op(op));
                i += if eq { 2 } else { 1 }
            }
            '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(bad("unterminated string")),
                        Some('~') => {
                            s.push(*chars.get(i + 1).ok_or_else(|| bad("dangling escape"))?);
                            i += 2
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            s.push(*ch);
                            i += 1
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(bad(&format!("unexpected '{other}'"))),
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self, w: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(w))
    }
    fn or(&mut self) -> SimResult<Expr> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?))
        }
        Ok(left)
    }
    fn and(&mut self) -> SimResult<Expr> {
        let mut left = self.negation()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.negation()?))
        }
        Ok(left)
    }
    fn negation(&mut self) -> SimResult<Expr> {
        if self.peek_word("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.negation()?)));
        }
        self.atom()
    }
    fn list(&mut self) -> SimResult<Vec<String>> {
        let bad = |why: &str| SimError::bad_request(format!("Invalid q expression: {why}"));
        if self.toks.get(self.pos) != Some(&Tok::ListOpen) {
            return Err(bad("expected '[' after in"));
        }
        self.pos += 1;
        let mut values = Vec::new();
        loop {
            let Some(Tok::Str(v)) = self.toks.get(self.pos).cloned() else {
                return Err(bad("expected a quoted value in the list"));
            };
            values.push(v);
            self.pos += 1;
            match self.toks.get(self.pos) {
                Some(Tok::Comma) => self.pos += 1,
                Some(Tok::ListClose) => {
                    self.pos += 1;
                    return Ok(values);
                }
                _ => return Err(bad("expected ',' or ']'")),
            }
        }
    }
    fn atom(&mut self) -> SimResult<Expr> {
        let bad = |why: &str| SimError::bad_request(format!("Invalid q expression: {why}"));
        match self.toks.get(self.pos).cloned() {
            Some(Tok::Open) => {
                self.pos += 1;
                let e = self.or()?;
                if self.toks.get(self.pos) != Some(&Tok::Close) {
                    return Err(bad("missing ')'"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Ident(field)) => {
                self.pos += 1;
                if self.peek_word("in") {
                    self.pos += 1;
                    let values = self.list()?;
                    return Ok(Expr::In { field, values });
                }
                let Some(Tok::Op(op)) = self.toks.get(self.pos).cloned() else {
                    return Err(bad("expected an operator"));
                };
                let Some(Tok::Str(value)) = self.toks.get(self.pos + 1).cloned() else {
                    return Err(bad("expected a quoted value"));
                };
                self.pos += 2;
                Ok(Expr::Cmp { field, op, value })
            }
            _ => Err(bad("expected a condition")),
        }
    }
}

impl Filter {
    pub fn parse(q: &str) -> SimResult<Filter> {
        let mut p = Parser {
            toks: lex(q)?,
            pos: 0,
        };
        let e = p.or()?;
        if p.pos != p.toks.len() {
            return Err(SimError::bad_request(
                "Invalid q expression: trailing input",
            ));
        }
        Ok(Filter(e))
    }

    pub fn matches(&self, a: &Map<String, Value>) -> bool {
        fn text(a: &Map<String, Value>, field: &str) -> String {
            match a.get(field) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            }
        }
        fn order(have: &str, want: &str) -> std::cmp::Ordering {
            match (have.parse::<f64>(), want.parse::<f64>()) {
                (Ok(h), Ok(w)) => h.total_cmp(&w),
                _ => have.to_lowercase().cmp(&want.to_lowercase()),
            }
        }
        fn eval(e: &Expr, a: &Map<String, Value>) -> bool {
            use std::cmp::Ordering::{Equal, Greater, Less};
            match e {
                Expr::Cmp { field, op, value } => {
                    let o = order(&text(a, field), value);
                    match op {
                        Op::Eq => o == Equal,
                        Op::Ne => o != Equal,
                        Op::Lt => o == Less,
                        Op::Gt => o == Greater,
                        Op::Le => o != Greater,
                        Op::Ge => o != Less,
                    }
                }
                Expr::In { field, values } => {
                    let have = text(a, field);
                    values.iter().any(|v| order(&have, v) == Equal)
                }
                Expr::Not(inner) => !eval(inner, a),
                Expr::And(l, r) => eval(l, a) && eval(r, a),
                Expr::Or(l, r) => eval(l, a) || eval(r, a),
            }
        }
        eval(&self.0, a)
    }
}

/// Parses `fields`, refusing `positionInRoute` as OFSC does.
pub fn fields(spec: Option<&str>) -> SimResult<Vec<String>> {
    let list: Vec<String> = spec
        .unwrap_or(DEFAULT_FIELDS)
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if list.iter().any(|f| f == "positionInRoute") {
        return Err(SimError::bad_request(
            "Field 'positionInRoute' is not allowed",
        ));
    }
    Ok(list)
}

/// Keeps only `fields` of an activity; empty fields are omitted.
pub fn project(a: &Activity, fields: &[String]) -> Map<String, Value> {
    let full = match serde_json::to_value(a) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    fields
        .iter()
        .filter_map(|f| {
            full.get(f)
                .filter(|v| !v.is_null())
                .map(|v| (f.clone(), v.clone()))
        })
        .collect()
}

#[cfg(test)]
#[path = "query_tests.rs"]
mod tests;
