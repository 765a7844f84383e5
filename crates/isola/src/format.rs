//! format: `--format` as docker's CLI takes it: Go's text/template (the
//! `gtmpl` crate implements it: fields, `index`, `range`, `if`, `printf`,
//! `len`, comparisons) over the JSON a command shows, with docker's own
//! functions (`json`, `join`, `split`, `upper`, `lower`, `title`,
//! `truncate`, `pad`), and the `table` prefix that prints the template's
//! fields as headers. It renders; commands choose the objects.

use anyhow::Context;
use gtmpl_value::{FuncError, Value as G};
use serde_json::Value;

/// How a command's `--format` asks for its output.
pub enum Format {
    /// docker's default table.
    Table,
    /// One JSON object per line.
    Json,
    /// A Go template, each object on its own line; with `table`, a header
    /// line of the fields' names first.
    Template { template: String, header: bool },
}

impl Format {
    pub fn parse(s: &str) -> Format {
        match s.trim() {
            "" | "table" => Format::Table,
            "json" | "{{json .}}" => Format::Json,
            t => match t.strip_prefix("table") {
                Some(rest) if rest.starts_with(char::is_whitespace) => Format::Template {
                    template: rest.trim_start().to_string(),
                    header: true,
                },
                _ => Format::Template {
                    template: t.to_string(),
                    header: false,
                },
            },
        }
    }
}

/// Renders `template` over `v`, with docker's escapes (`\t`, `\n`) read as
/// the characters, as docker's CLI does.
pub fn render(template: &str, v: &Value) -> anyhow::Result<String> {
    let template = template.replace("\\t", "\t").replace("\\n", "\n");
    let mut t = gtmpl::Template::default();
    add_funcs(&mut t);
    t.parse(&template)
        .map_err(|e| anyhow::anyhow!("invalid --format template {template:?}: {e}"))?;
    t.render(&gtmpl::Context::from(to_gtmpl(v)))
        .map_err(|e| anyhow::anyhow!("--format template {template:?}: {e}"))
}

/// Prints a listing's `rows` (one object per row, docker's fields) as
/// `format` asks: one JSON object per line, a template per row (with
/// `table`, a header line first; `titles` names the columns docker titles
/// its own way for this command), or docker's default table,
/// `default_table`.
pub fn print_rows(
    format: &str,
    rows: &[Value],
    titles: &[(&str, &str)],
    default_table: impl FnOnce(),
) -> anyhow::Result<()> {
    match Format::parse(format) {
        Format::Json => {
            for r in rows {
                println!("{r}");
            }
        }
        Format::Template { template, header } => {
            print!("{}", template_rows(&template, header, titles, rows.iter())?)
        }
        Format::Table => default_table(),
    }
    Ok(())
}

/// `rows` through a template, a line each; with `table` (`header`), a
/// header line first (`titles` as in [`header`]) and the columns aligned.
pub fn template_rows<'a>(
    template: &str,
    header: bool,
    titles: &[(&str, &str)],
    rows: impl Iterator<Item = &'a Value>,
) -> anyhow::Result<String> {
    let mut lines = Vec::new();
    if header {
        lines.push(self::header(template, titles)?);
    }
    for r in rows {
        lines.push(render(template, r)?);
    }
    if header {
        return align(&lines);
    }
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

/// A `table` template's lines with their tab-separated cells aligned in
/// columns, as docker's CLI does (Go's tabwriter: minimum width 10,
/// padding 3, spaces; the last cell of a line is not padded). This crate
/// adds the padding after the minimum width, Go counts it in: 7 + 3.
pub fn align(lines: &[String]) -> anyhow::Result<String> {
    use std::io::Write;
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(7).padding(3);
    for l in lines {
        writeln!(tw, "{l}")?;
    }
    Ok(String::from_utf8(tw.into_inner()?)?)
}

/// `inspect`'s output: the objects as a JSON array, or with a template
/// (`--format`/`-f`), the template rendered over each, a line each.
pub fn print_objects(format: Option<&str>, objects: Vec<Value>) -> anyhow::Result<()> {
    match format.map(Format::parse) {
        None | Some(Format::Table) => {
            println!("{}", serde_json::to_string_pretty(&Value::Array(objects))?)
        }
        Some(Format::Json) => {
            for o in &objects {
                println!("{o}");
            }
        }
        Some(Format::Template { template, .. }) => {
            for o in &objects {
                println!("{}", render(&template, o)?);
            }
        }
    }
    Ok(())
}

/// The header line of a `table` template: each `{{.Field}}` becomes the
/// field's name in capitals (`{{.ID}}\t{{.Names}}` → `CONTAINER ID\tNAMES`),
/// as docker's CLI titles them; `titles` first, for the fields a command
/// titles its own way (`ID` is `IMAGE ID` in `images`).
pub fn header(template: &str, titles: &[(&str, &str)]) -> anyhow::Result<String> {
    let template = template.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    let mut rest = template.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .map(|e| start + e)
            .with_context(|| format!("unclosed {{{{ in --format {template:?}"))?;
        let action = rest[start + 2..end].trim();
        let field = action
            .split_whitespace()
            .last()
            .unwrap_or("")
            .trim_start_matches('.');
        match titles.iter().find(|(f, _)| *f == field) {
            Some((_, title)) => out.push_str(title),
            None => out.push_str(&title_of(field)),
        }
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// docker's column titles for its fields.
fn title_of(field: &str) -> String {
    match field {
        "ID" => "CONTAINER ID".into(),
        "RunningFor" => "CREATED".into(),
        "CreatedSince" => "CREATED".into(),
        other => {
            // CamelCase to SPACED CAPITALS: CreatedAt → CREATED AT.
            let mut s = String::new();
            let mut prev_upper = true;
            for c in other.chars() {
                if c.is_uppercase() && !prev_upper {
                    s.push(' ');
                }
                prev_upper = c.is_uppercase();
                s.extend(c.to_uppercase());
            }
            s
        }
    }
}

fn to_gtmpl(v: &Value) -> G {
    match v {
        Value::Null => G::Nil,
        Value::Bool(b) => G::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => G::from(i),
            (_, Some(u)) => G::from(u),
            _ => G::from(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => G::String(s.clone()),
        Value::Array(a) => G::Array(a.iter().map(to_gtmpl).collect()),
        Value::Object(o) => G::Map(o.iter().map(|(k, v)| (k.clone(), to_gtmpl(v))).collect()),
    }
}

fn to_json(v: &G) -> Value {
    match v {
        G::Nil | G::NoValue => Value::Null,
        G::Bool(b) => Value::Bool(*b),
        G::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or(Value::Null),
        G::String(s) => Value::String(s.clone()),
        G::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        G::Map(m) | G::Object(m) => {
            // Sorted, as Go's encoding/json writes maps.
            let sorted: std::collections::BTreeMap<_, _> = m.iter().collect();
            Value::Object(
                sorted
                    .into_iter()
                    .map(|(k, v)| (k.clone(), to_json(v)))
                    .collect(),
            )
        }
        G::Function(_) => Value::Null,
    }
}

fn string_arg(args: &[G], i: usize, func: &str) -> Result<String, FuncError> {
    match args.get(i) {
        Some(G::String(s)) => Ok(s.clone()),
        Some(other) => Ok(other.to_string()),
        None => Err(FuncError::AtLeastXArgs(func.into(), i + 1)),
    }
}

fn add_funcs(t: &mut gtmpl::Template) {
    t.add_func("json", |args: &[G]| {
        let v = args.first().map(to_json).unwrap_or(Value::Null);
        Ok(G::String(v.to_string()))
    });
    t.add_func("join", |args: &[G]| {
        let sep = string_arg(args, 1, "join")?;
        match args.first() {
            Some(G::Array(a)) => Ok(G::String(
                a.iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(&sep),
            )),
            _ => Err(FuncError::AtLeastXArgs("join".into(), 2)),
        }
    });
    t.add_func("split", |args: &[G]| {
        let (s, sep) = (string_arg(args, 0, "split")?, string_arg(args, 1, "split")?);
        Ok(G::Array(
            s.split(sep.as_str()).map(|p| G::String(p.into())).collect(),
        ))
    });
    t.add_func("upper", |args: &[G]| {
        Ok(G::String(string_arg(args, 0, "upper")?.to_uppercase()))
    });
    t.add_func("lower", |args: &[G]| {
        Ok(G::String(string_arg(args, 0, "lower")?.to_lowercase()))
    });
    t.add_func("title", |args: &[G]| {
        let s = string_arg(args, 0, "title")?;
        let mut c = s.chars();
        Ok(G::String(match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect(),
            None => String::new(),
        }))
    });
    t.add_func("truncate", |args: &[G]| {
        let s = string_arg(args, 0, "truncate")?;
        let n: usize = string_arg(args, 1, "truncate")?
            .parse()
            .unwrap_or(usize::MAX);
        Ok(G::String(s.chars().take(n).collect()))
    });
    t.add_func("pad", |args: &[G]| {
        let s = string_arg(args, 0, "pad")?;
        let before: usize = string_arg(args, 1, "pad")?.parse().unwrap_or(0);
        let after: usize = string_arg(args, 2, "pad")?.parse().unwrap_or(0);
        Ok(G::String(format!(
            "{}{s}{}",
            " ".repeat(before),
            " ".repeat(after)
        )))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_templates_as_scripts_write_them() {
        let v = serde_json::json!({
            "State": {"Pid": 42, "Running": true},
            "Name": "/web",
            "Config": {"Cmd": ["sleep", "100"], "Labels": {"a": "b"}},
        });
        let r = |t: &str| render(t, &v).unwrap();
        assert_eq!(r("{{.State.Pid}} {{.Name}}"), "42 /web");
        assert_eq!(r("pid={{.State.Pid}}"), "pid=42");
        assert_eq!(r("{{index .Config.Cmd 0}}"), "sleep");
        assert_eq!(r("{{range .Config.Cmd}}[{{.}}]{{end}}"), "[sleep][100]");
        assert_eq!(r("{{if .State.Running}}up{{else}}down{{end}}"), "up");
        assert_eq!(r("{{index .Config.Labels \"a\"}}"), "b");
        assert_eq!(r("{{json .Config.Cmd}}"), "[\"sleep\",\"100\"]");
        assert_eq!(r("{{json .State}}"), "{\"Pid\":42,\"Running\":true}");
        assert_eq!(r("{{join .Config.Cmd \" \"}}"), "sleep 100");
        assert_eq!(r("{{upper .Name}}"), "/WEB");
        assert_eq!(r("a\\tb"), "a\tb");
        assert!(render("{{.State.Pid", &v).is_err());
    }

    #[test]
    fn a_table_template_titles_its_columns() {
        assert_eq!(
            header("{{.ID}}\\t{{.Names}}", &[]).unwrap(),
            "CONTAINER ID\tNAMES"
        );
        assert_eq!(
            header("{{.CreatedAt}} {{.Repository}}", &[]).unwrap(),
            "CREATED AT REPOSITORY"
        );
        assert!(matches!(
            Format::parse("table {{.ID}}"),
            Format::Template { header: true, .. }
        ));
        assert!(matches!(Format::parse("json"), Format::Json));
        assert!(matches!(Format::parse("table"), Format::Table));
    }
}
