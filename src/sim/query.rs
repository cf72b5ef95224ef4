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

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Cmp {
        field: String,
        eq: bool,
        value: String,
    },
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A parsed `q` filter. Supports `field == 'v'`, `field != 'v'`, `and`, `or` and parentheses.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Expr);

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Eq,
    Ne,
    Open,
    Close,
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
            '=' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Eq);
                i += 2
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Ne);
                i += 2
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
        let mut left = self.atom()?;
        while self.peek_word("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.atom()?))
        }
        Ok(left)
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
                let eq = match self.toks.get(self.pos + 1) {
                    Some(Tok::Eq) => true,
                    Some(Tok::Ne) => false,
                    _ => return Err(bad("expected == or !=")),
                };
                let Some(Tok::Str(value)) = self.toks.get(self.pos + 2).cloned() else {
                    return Err(bad("expected a quoted value"));
                };
                self.pos += 3;
                Ok(Expr::Cmp { field, eq, value })
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
        fn eval(e: &Expr, a: &Map<String, Value>) -> bool {
            match e {
                Expr::Cmp { field, eq, value } => {
                    let have = match a.get(field) {
                        Some(Value::String(s)) => s.clone(),
                        Some(Value::Null) | None => String::new(),
                        Some(v) => v.to_string(),
                    };
                    have.eq_ignore_ascii_case(value) == *eq
                }
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
