//! A Dockerfile, parsed by the `parse-dockerfile` crate, as the steps a
//! build runs: owned, with line numbers, flags checked, shell-form
//! commands with their line continuations joined (docker's
//! reading), and the text each step shows and is cached under.

use parse_dockerfile::{Command, Flag, HealthcheckArguments, Instruction, JsonOrStringArray};

use crate::BuildError;

/// A command in shell form (run through the SHELL) or exec form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    Shell(String),
    Exec(Vec<String>),
}

/// One instruction, its arguments still raw where words are expanded
/// only when the step runs (they depend on ENV and ARG so far).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inst {
    From {
        image: String,
        platform: Option<String>,
        name: Option<String>,
    },
    Run(CommandForm),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Copy {
        add: bool,
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
        srcs: Vec<String>,
        dest: String,
    },
    Env(String),
    Arg(String),
    Label(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    Workdir(String),
    User(String),
    Shell(Vec<String>),
    Stopsignal(String),
    Healthcheck {
        cmd: Option<CommandForm>,
        options: Vec<(String, String)>,
    },
    Onbuild(String),
    Maintainer(String),
}

/// One step: where it is and what it shows (`RUN echo hi`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub line: usize,
    pub text: String,
    pub inst: Inst,
}

/// A stage: its FROM and what follows up to the next FROM.
#[derive(Debug, Clone)]
pub struct Stage {
    pub from: Step,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub struct Dockerfile {
    /// ARGs before the first FROM.
    pub global_args: Vec<Step>,
    pub stages: Vec<Stage>,
    /// `# escape=` (`\` unless told).
    pub escape: char,
}

impl Dockerfile {
    /// Steps in all, FROMs included: the `N` of docker's `Step n/N`.
    pub fn step_count(&self) -> usize {
        self.global_args.len() + self.stages.iter().map(|s| 1 + s.steps.len()).sum::<usize>()
    }
}

fn line_of(text: &str, pos: usize) -> usize {
    text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn keyword_start(i: &Instruction<'_>) -> usize {
    match i {
        Instruction::Add(x) => x.add.span.start,
        Instruction::Arg(x) => x.arg.span.start,
        Instruction::Cmd(x) => x.cmd.span.start,
        Instruction::Copy(x) => x.copy.span.start,
        Instruction::Entrypoint(x) => x.entrypoint.span.start,
        Instruction::Env(x) => x.env.span.start,
        Instruction::Expose(x) => x.expose.span.start,
        Instruction::From(x) => x.from.span.start,
        Instruction::Healthcheck(x) => x.healthcheck.span.start,
        Instruction::Label(x) => x.label.span.start,
        Instruction::Maintainer(x) => x.maintainer.span.start,
        Instruction::Onbuild(x) => x.onbuild.span.start,
        Instruction::Run(x) => x.run.span.start,
        Instruction::Shell(x) => x.shell.span.start,
        Instruction::Stopsignal(x) => x.stopsignal.span.start,
        Instruction::User(x) => x.user.span.start,
        Instruction::Volume(x) => x.volume.span.start,
        Instruction::Workdir(x) => x.workdir.span.start,
        _ => 0,
    }
}

/// Joins line continuations (the escape character before a newline) as
/// docker does, dropping comment lines inside them.
pub fn join_continuations(s: &str, escape: char) -> String {
    let mut out = String::new();
    let mut lines = s.split('\n').peekable();
    let mut continued = false;
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let blank = line.trim_start().starts_with('#') || line.trim().is_empty();
        if continued && blank && lines.peek().is_some() {
            continue;
        }
        match line.strip_suffix(escape) {
            Some(head) if lines.peek().is_some() => {
                out.push_str(head);
                continued = true;
            }
            _ => {
                out.push_str(line);
                if lines.peek().is_some() {
                    out.push('\n');
                }
                continued = false;
            }
        }
    }
    out.trim().to_string()
}

/// The instruction's source from its keyword to where the next one
/// begins, continuations joined and trailing comments dropped.
fn source_text(text: &str, start: usize, end: usize, escape: char) -> String {
    let raw = &text[start..end];
    let kept: Vec<&str> = raw
        .lines()
        .rev()
        .skip_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    join_continuations(&kept.join("\n"), escape)
}

fn command(c: &Command<'_>, escape: char) -> CommandForm {
    match c {
        Command::Exec(v) => {
            CommandForm::Exec(v.value.iter().map(|s| s.value.to_string()).collect())
        }
        Command::Shell(s) => CommandForm::Shell(join_continuations(s.value, escape)),
        // A form a newer parser adds: read as nothing to run.
        _ => CommandForm::Shell(String::new()),
    }
}

fn flag_value(
    line: usize,
    keyword: &str,
    flags: &[Flag<'_>],
    allowed: &[&str],
) -> Result<Vec<(String, String)>, BuildError> {
    let mut out = Vec::new();
    for f in flags {
        let name = f.name.value.to_string();
        if !allowed.contains(&name.as_str()) {
            return Err(BuildError::Syntax {
                line,
                message: format!("{keyword} --{name} is not supported (allowed: {})", {
                    let a: Vec<String> = allowed.iter().map(|a| format!("--{a}")).collect();
                    if a.is_empty() {
                        "none".to_string()
                    } else {
                        a.join(", ")
                    }
                }),
            });
        }
        let value = f
            .value
            .as_ref()
            .map(|v| v.value.to_string())
            .unwrap_or_default();
        out.push((name, value));
    }
    Ok(out)
}

fn get(flags: &[(String, String)], name: &str) -> Option<String> {
    flags
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn strings<const N: usize>(a: &JsonOrStringArray<'_, N>) -> Vec<String> {
    match a {
        JsonOrStringArray::Json(v) => v.value.iter().map(|s| s.value.to_string()).collect(),
        JsonOrStringArray::String(v) => v.iter().map(|s| s.value.to_string()).collect(),
    }
}

/// The step for one parsed instruction.
fn convert(
    text: &str,
    ins: &Instruction<'_>,
    line: usize,
    shown: String,
    escape: char,
) -> Result<Step, BuildError> {
    let syntax = |message: String| BuildError::Syntax { line, message };
    let inst = match ins {
        Instruction::From(f) => {
            let flags = flag_value(line, "FROM", &f.options, &["platform"])?;
            Inst::From {
                image: f.image.value.to_string(),
                platform: get(&flags, "platform"),
                name: f.as_.as_ref().map(|(_, n)| n.value.to_lowercase()),
            }
        }
        Instruction::Run(r) => {
            flag_value(line, "RUN", &r.options, &[])?;
            if !r.here_docs.is_empty() {
                return Err(syntax("RUN with a here-document is not supported".into()));
            }
            let c = command(&r.arguments, escape);
            if c == CommandForm::Shell(String::new()) {
                return Err(syntax("RUN needs a command".into()));
            }
            Inst::Run(c)
        }
        Instruction::Cmd(c) => Inst::Cmd(command(&c.arguments, escape)),
        Instruction::Entrypoint(c) => Inst::Entrypoint(command(&c.arguments, escape)),
        Instruction::Copy(c) => {
            let flags = flag_value(
                line,
                "COPY",
                &c.options,
                &["from", "chown", "chmod", "link"],
            )?;
            copy(false, &flags, c.src.iter(), &c.dest.value, line)?
        }
        Instruction::Add(c) => {
            let flags = flag_value(line, "ADD", &c.options, &["chown", "chmod", "link"])?;
            copy(true, &flags, c.src.iter(), &c.dest.value, line)?
        }
        Instruction::Env(e) => Inst::Env(e.arguments.value.to_string()),
        Instruction::Arg(a) => Inst::Arg(a.arguments.value.to_string()),
        Instruction::Label(l) => Inst::Label(l.arguments.value.to_string()),
        Instruction::Expose(e) => {
            Inst::Expose(e.arguments.iter().map(|s| s.value.to_string()).collect())
        }
        Instruction::Volume(v) => Inst::Volume(strings(&v.arguments)),
        Instruction::Workdir(w) => Inst::Workdir(w.arguments.value.to_string()),
        Instruction::User(u) => Inst::User(u.arguments.value.to_string()),
        Instruction::Shell(s) => {
            Inst::Shell(s.arguments.iter().map(|s| s.value.to_string()).collect())
        }
        Instruction::Stopsignal(s) => Inst::Stopsignal(s.arguments.value.to_string()),
        Instruction::Maintainer(m) => Inst::Maintainer(m.name.value.to_string()),
        Instruction::Healthcheck(h) => {
            let options = flag_value(
                line,
                "HEALTHCHECK",
                &h.options,
                &[
                    "interval",
                    "timeout",
                    "start-period",
                    "start-interval",
                    "retries",
                ],
            )?;
            let cmd = match &h.arguments {
                HealthcheckArguments::Cmd { arguments, .. } => Some(command(arguments, escape)),
                _ => None,
            };
            Inst::Healthcheck { cmd, options }
        }
        Instruction::Onbuild(o) => {
            let inner = keyword_start(&o.instruction);
            let trigger = shown
                .get(inner.saturating_sub(keyword_start(ins))..)
                .unwrap_or_default()
                .to_string();
            match &*o.instruction {
                Instruction::From(_) | Instruction::Onbuild(_) | Instruction::Maintainer(_) => {
                    return Err(syntax(format!(
                        "ONBUILD {} is not allowed",
                        trigger
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_uppercase()
                    )))
                }
                _ => {}
            }
            let _ = text;
            Inst::Onbuild(trigger)
        }
        _ => return Err(syntax("unknown instruction".into())),
    };
    Ok(Step {
        line,
        text: shown,
        inst,
    })
}

fn copy<'a>(
    add: bool,
    flags: &[(String, String)],
    srcs: impl Iterator<Item = &'a parse_dockerfile::Source<'a>>,
    dest: &str,
    line: usize,
) -> Result<Inst, BuildError> {
    let mut out = Vec::new();
    for s in srcs {
        match s {
            parse_dockerfile::Source::Path(p) => out.push(p.value.to_string()),
            _ => {
                return Err(BuildError::Syntax {
                    line,
                    message: "a here-document as a source is not supported".into(),
                })
            }
        }
    }
    Ok(Inst::Copy {
        add,
        from: get(flags, "from"),
        chown: get(flags, "chown"),
        chmod: get(flags, "chmod"),
        srcs: out,
        dest: dest.to_string(),
    })
}

/// Parses a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, BuildError> {
    let parsed = parse_dockerfile::parse(text).map_err(|e| {
        let mut message = format!("{e:#}");
        if message == "expected FROM" {
            message.push_str(": only ARG may come before the first FROM");
        }
        BuildError::Syntax {
            line: e.line(),
            message,
        }
    })?;
    let escape = parsed
        .parser_directives
        .escape
        .as_ref()
        .map_or('\\', |d| d.value.value);
    let starts: Vec<usize> = parsed.instructions.iter().map(keyword_start).collect();
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for (n, ins) in parsed.instructions.iter().enumerate() {
        let start = starts[n];
        let end = starts.get(n + 1).copied().unwrap_or(text.len());
        let line = line_of(text, start);
        let shown = source_text(text, start, end, escape);
        let step = convert(text, ins, line, shown, escape)?;
        match (&step.inst, stages.last_mut()) {
            (Inst::From { .. }, _) => stages.push(Stage {
                from: step,
                steps: Vec::new(),
            }),
            (_, Some(stage)) => stage.steps.push(step),
            (Inst::Arg(_), None) => global_args.push(step),
            (_, None) => {
                return Err(BuildError::Syntax {
                    line,
                    message: format!(
                        "{} before the first FROM: only ARG may come before FROM",
                        step.text
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_uppercase()
                    ),
                })
            }
        }
    }
    if stages.is_empty() {
        return Err(BuildError::Syntax {
            line: line_of(text, text.len()),
            message: "no FROM instruction: a Dockerfile needs at least one".into(),
        });
    }
    Ok(Dockerfile {
        global_args,
        stages,
        escape,
    })
}

/// One instruction's text (an ONBUILD trigger, a `commit --change`).
pub fn parse_one(text: &str) -> Result<Step, BuildError> {
    let df = parse(&format!("FROM scratch\n{text}\n"))?;
    let mut step = df.stages[0]
        .steps
        .first()
        .cloned()
        .ok_or(BuildError::Syntax {
            line: 1,
            message: format!("{text:?} is not an instruction"),
        })?;
    step.line = 1;
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_steps_lines_and_continuations() {
        let df = parse(
            "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM ${BASE} AS Builder\nRUN echo a \\\n# a comment\n    && echo b\n\nCOPY --from=builder --chown=1:2 a* /dst/\nFROM scratch\nCMD [\"sh\"]\n",
        )
        .unwrap();
        assert_eq!(df.global_args.len(), 1);
        assert_eq!(df.stages.len(), 2);
        assert_eq!(df.step_count(), 6);
        let b = &df.stages[0];
        assert!(matches!(&b.from.inst, Inst::From { name: Some(n), .. } if n == "builder"));
        assert_eq!(b.steps[0].line, 4);
        assert_eq!(
            b.steps[0].inst,
            Inst::Run(CommandForm::Shell("echo a     && echo b".into()))
        );
        assert_eq!(b.steps[0].text, "RUN echo a     && echo b");
        assert_eq!(b.steps[1].line, 8);
        assert!(
            matches!(&b.steps[1].inst, Inst::Copy { from: Some(f), chown: Some(c), .. } if f == "builder" && c == "1:2")
        );
        assert_eq!(
            df.stages[1].steps[0].inst,
            Inst::Cmd(CommandForm::Exec(vec!["sh".into()]))
        );
    }

    #[test]
    fn bad_dockerfiles_name_the_line() {
        let e = parse("FROM busybox\nFOO bar\n").unwrap_err();
        assert!(matches!(e, BuildError::Syntax { line: 2, .. }), "{e:?}");
        let e = parse("ENV A=1\nFROM busybox\n").unwrap_err();
        assert!(e.to_string().contains("before the first FROM"), "{e}");
        let e = parse("FROM busybox\nRUN --mount=type=cache,target=/x true\n").unwrap_err();
        assert!(matches!(e, BuildError::Syntax { line: 2, .. }), "{e:?}");
        assert!(parse("# nothing\n").is_err());
    }

    #[test]
    fn escape_directive_changes_the_continuation() {
        let df = parse("# escape=`\nFROM busybox\nRUN echo a `\n  b\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(
            df.stages[0].steps[0].inst,
            Inst::Run(CommandForm::Shell("echo a   b".into()))
        );
    }
}
