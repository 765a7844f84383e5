//! Dockerfile words: splitting an instruction's arguments on unquoted
//! blanks and expanding `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR:+word}`
//! (and the forms without `:`) with quotes and the escape character
//! removed, as docker's shell lexer does for ENV, ARG, LABEL, COPY, ADD,
//! WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL and FROM. Hand-written: the
//! Dockerfile parser crate leaves these arguments raw, and no crate
//! implements docker's rules (not a POSIX shell's: no globbing, no command
//! substitution, unset variables expand to nothing).

use std::collections::BTreeMap;

/// A word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WordError {
    #[error("unterminated quote in {0:?}")]
    Quote(String),
    #[error("unterminated ${{...}} in {0:?}")]
    Brace(String),
    #[error("{name}: {message}")]
    Required { name: String, message: String },
}

/// Variables visible to a word: the stage's ENV and ARGs so far.
pub type Vars = BTreeMap<String, String>;

/// Splits `s` on blanks outside quotes; quotes and escapes stay for
/// [`expand`].
pub fn split_raw(s: &str, escape: char) -> Result<Vec<String>, WordError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    let mut in_word = false;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            (q, c) if c == escape && q != Some('\'') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, '\'' | '"') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (_, c) => cur.push(c),
        }
        in_word = true;
    }
    if quote.is_some() {
        return Err(WordError::Quote(s.to_string()));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Expands one word: variables replaced, quotes and escapes removed.
pub fn expand(word: &str, vars: &Vars, escape: char) -> Result<String, WordError> {
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    let out = expand_until(&chars, &mut i, vars, escape, None, word)?;
    Ok(out)
}

/// Splits then expands every word (COPY's sources, EXPOSE's ports).
pub fn expand_all(s: &str, vars: &Vars, escape: char) -> Result<Vec<String>, WordError> {
    split_raw(s, escape)?
        .iter()
        .map(|w| expand(w, vars, escape))
        .collect()
}

fn expand_until(
    chars: &[char],
    i: &mut usize,
    vars: &Vars,
    escape: char,
    stop: Option<char>,
    whole: &str,
) -> Result<String, WordError> {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    while *i < chars.len() {
        let c = chars[*i];
        if quote.is_none() && Some(c) == stop {
            return Ok(out);
        }
        *i += 1;
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), c) => out.push(c),
            (Some('"'), '"') => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (Some('"'), c) if c == escape => match chars.get(*i) {
                // In double quotes the escape only takes ", $ and itself.
                Some(&n) if n == '"' || n == '$' || n == escape => {
                    out.push(n);
                    *i += 1;
                }
                _ => out.push(c),
            },
            (None, c) if c == escape => {
                if let Some(&n) = chars.get(*i) {
                    out.push(n);
                    *i += 1;
                }
            }
            (_, '$') => out.push_str(&variable(chars, i, vars, escape, whole)?),
            (_, c) => out.push(c),
        }
    }
    if quote.is_some() {
        return Err(WordError::Quote(whole.to_string()));
    }
    if stop.is_some() {
        return Err(WordError::Brace(whole.to_string()));
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn variable(
    chars: &[char],
    i: &mut usize,
    vars: &Vars,
    escape: char,
    whole: &str,
) -> Result<String, WordError> {
    if chars.get(*i) != Some(&'{') {
        let start = *i;
        while *i < chars.len() && is_name_char(chars[*i]) {
            *i += 1;
        }
        if start == *i {
            return Ok("$".to_string());
        }
        let name: String = chars[start..*i].iter().collect();
        return Ok(vars.get(&name).cloned().unwrap_or_default());
    }
    *i += 1;
    let start = *i;
    while *i < chars.len() && is_name_char(chars[*i]) {
        *i += 1;
    }
    let name: String = chars[start..*i].iter().collect();
    let value = vars.get(&name);
    match chars.get(*i) {
        Some('}') => {
            *i += 1;
            Ok(value.cloned().unwrap_or_default())
        }
        Some(&c) if c == ':' || c == '-' || c == '+' || c == '?' => {
            let colon = c == ':';
            if colon {
                *i += 1;
            }
            let op = *chars
                .get(*i)
                .ok_or_else(|| WordError::Brace(whole.to_string()))?;
            *i += 1;
            let word = expand_until(chars, i, vars, escape, Some('}'), whole)?;
            *i += 1;
            // With ':', an empty value counts as unset.
            let set = value.is_some_and(|v| !colon || !v.is_empty());
            match op {
                '-' => Ok(if set { value.cloned().unwrap() } else { word }),
                '+' => Ok(if set { word } else { String::new() }),
                '?' if set => Ok(value.cloned().unwrap()),
                '?' => Err(WordError::Required {
                    name,
                    message: if word.is_empty() {
                        "parameter not set".to_string()
                    } else {
                        word
                    },
                }),
                _ => Err(WordError::Brace(whole.to_string())),
            }
        }
        _ => Err(WordError::Brace(whole.to_string())),
    }
}

/// `KEY=VALUE` pairs of ENV, ARG and LABEL (or the old `KEY VALUE` form,
/// the rest of the line being the value), expanded.
pub fn pairs(
    s: &str,
    vars: &Vars,
    escape: char,
    old_form: bool,
) -> Result<Vec<(String, Option<String>)>, WordError> {
    let raw = split_raw(s, escape)?;
    let first_has_eq = raw.first().is_some_and(|w| w.contains('='));
    if old_form && !first_has_eq && raw.len() > 1 {
        let key = expand(&raw[0], vars, escape)?;
        let rest = s.trim_start()[raw[0].len()..].trim();
        return Ok(vec![(key, Some(expand(rest, vars, escape)?))]);
    }
    raw.iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Ok((expand(k, vars, escape)?, Some(expand(v, vars, escape)?))),
            None => Ok((expand(w, vars, escape)?, None)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "1"), ("E", ""), ("NAME", "world")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn expands_as_docker_does() {
        let v = vars();
        let e = |s| expand(s, &v, '\\').unwrap();
        assert_eq!(e("$A"), "1");
        assert_eq!(e("${A}x"), "1x");
        assert_eq!(e("$UNSET."), ".");
        assert_eq!(e("${UNSET:-d}"), "d");
        assert_eq!(e("${E:-d}"), "d");
        assert_eq!(e("${E-d}"), "");
        assert_eq!(e("${A:+set}"), "set");
        assert_eq!(e("${UNSET:+set}"), "");
        assert_eq!(e("'$A'"), "$A");
        assert_eq!(e("\"hi $NAME\""), "hi world");
        assert_eq!(e("\\$A"), "$A");
        assert_eq!(e("a\\ b"), "a b");
        assert_eq!(e("\"a\\\"b\""), "a\"b");
        assert!(expand("${A", &v, '\\').is_err());
        assert!(expand("'open", &v, '\\').is_err());
        assert!(matches!(
            expand("${UNSET:?must be set}", &v, '\\'),
            Err(WordError::Required { .. })
        ));
        // `# escape=`` makes backquote the escape (Windows Dockerfiles).
        assert_eq!(expand("a`$A", &v, '`').unwrap(), "a$A");
    }

    #[test]
    fn pairs_take_both_forms() {
        let v = vars();
        assert_eq!(
            pairs("X=1 Y=\"two words\" Z=3\\ 4", &v, '\\', true).unwrap(),
            vec![
                ("X".into(), Some("1".into())),
                ("Y".into(), Some("two words".into())),
                ("Z".into(), Some("3 4".into()))
            ]
        );
        assert_eq!(
            pairs("X hello $NAME", &v, '\\', true).unwrap(),
            vec![("X".into(), Some("hello world".into()))]
        );
        assert_eq!(
            pairs("ONLY", &v, '\\', false).unwrap(),
            vec![("ONLY".into(), None)]
        );
    }
}
