//! Usage errors, said as docker says them: one line naming what was wrong,
//! one line pointing at the command's help, exit code 125. Built from clap's
//! error kind and context (never from its rendered text), and from the
//! command tree, to name the subcommand the user was typing.

use std::io::Write;
use std::process::ExitCode;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::Command;

/// docker's exit code for an error of the CLI itself.
pub const EXIT_USAGE: u8 = 125;

/// Reports `err` (from parsing `args`, program name first) and returns the
/// exit code: help and version print to stdout and exit 0, as with docker.
pub fn report(cmd: &Command, args: &[String], err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // print() goes to stdout for these kinds; a closed stdout has
            // nothing left to tell.
            let _ = err.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            // `isola`, `isola image`: docker shows the help and exits 0.
            let path = command_path(cmd, args);
            let mut sub = sub_command(cmd, &path).clone();
            let _ = writeln!(std::io::stdout(), "{}", sub.render_help());
            ExitCode::SUCCESS
        }
        _ => {
            let path = command_path(cmd, args);
            let line = message(cmd, &path, err);
            eprintln!("isola: {line}");
            eprintln!("See '{} --help'.", path.join(" "));
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// The error in docker's words.
fn message(cmd: &Command, path: &[String], err: &clap::Error) -> String {
    let sub = sub_command(cmd, path);
    let name = path.join(" ");
    let arg = context_string(err, ContextKind::InvalidArg);
    let value = context_string(err, ContextKind::InvalidValue);
    match err.kind() {
        ErrorKind::UnknownArgument => match arg {
            Some(a) if a.starts_with("--") => {
                format!("unknown flag: {}", a.split('=').next().unwrap_or(&a))
            }
            Some(a) if a.starts_with('-') && a.len() > 1 => {
                let c = a.chars().nth(1).unwrap_or('-');
                format!("unknown shorthand flag: '{c}' in {a}")
            }
            _ => arity(sub, &name),
        },
        ErrorKind::InvalidSubcommand => {
            let what = context_string(err, ContextKind::InvalidSubcommand).unwrap_or_default();
            format!("'{what}' is not an {name} command.")
        }
        ErrorKind::MissingRequiredArgument => match arg {
            Some(a) if a.starts_with('-') => format!("required flag(s) {a} not set"),
            _ => arity(sub, &name),
        },
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let flag = flag_name(arg.as_deref().unwrap_or_default());
            match value.as_deref() {
                Some("") | None => format!("flag needs an argument: {flag}"),
                Some(v) => {
                    let why = match err.kind() {
                        ErrorKind::ValueValidation => std::error::Error::source(err)
                            .map(|s| s.to_string())
                            .unwrap_or_default(),
                        _ => match err.get(ContextKind::ValidValue) {
                            Some(ContextValue::Strings(valid)) => {
                                format!("expected one of {}", valid.join(", "))
                            }
                            _ => String::new(),
                        },
                    };
                    if why.is_empty() {
                        format!("invalid argument \"{v}\" for \"{flag}\" flag")
                    } else {
                        format!("invalid argument \"{v}\" for \"{flag}\" flag: {why}")
                    }
                }
            }
        }
        ErrorKind::ArgumentConflict => {
            let prior = match err.get(ContextKind::PriorArg) {
                Some(ContextValue::String(s)) => flag_name(s),
                Some(ContextValue::Strings(v)) => v
                    .iter()
                    .map(|s| flag_name(s))
                    .collect::<Vec<_>>()
                    .join(", "),
                _ => String::new(),
            };
            format!(
                "conflicting options: {} and {prior}",
                flag_name(arg.as_deref().unwrap_or_default())
            )
        }
        ErrorKind::NoEquals
        | ErrorKind::TooManyValues
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues => format!(
            "wrong number of values for {}",
            flag_name(arg.as_deref().unwrap_or_default())
        ),
        // Kinds with no context of their own (I/O, format, UTF-8): clap's
        // own first line is the best there is.
        _ => err
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or("invalid usage")
            .trim_start_matches("error: ")
            .to_string(),
    }
}

fn context_string(err: &clap::Error, kind: ContextKind) -> Option<String> {
    match err.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => Some(v.join(" ")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        _ => None,
    }
}

/// `--pull <PULL>` → `--pull`; `-m, --memory <MEMORY>` as clap names it.
fn flag_name(arg: &str) -> String {
    arg.split([' ', '=']).next().unwrap_or(arg).to_string()
}

/// How many arguments `sub` takes, as docker says it:
/// `"isola tag" requires exactly 2 arguments.`
fn arity(sub: &Command, name: &str) -> String {
    let positionals: Vec<_> = sub.get_positionals().filter(|a| !a.is_hide_set()).collect();
    let required = positionals.iter().filter(|a| a.is_required_set()).count();
    let open_ended = positionals
        .iter()
        .any(|a| a.get_num_args().is_some_and(|n| n.max_values() > 1) || !a.is_required_set());
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    if positionals.is_empty() {
        format!("\"{name}\" accepts no arguments.")
    } else if !open_ended {
        format!(
            "\"{name}\" requires exactly {required} {}.",
            plural(required)
        )
    } else if required > 0 {
        format!(
            "\"{name}\" requires at least {required} {}.",
            plural(required)
        )
    } else {
        let most = positionals.len();
        format!("\"{name}\" accepts at most {most} {}.", plural(most))
    }
}

/// The subcommand at `path` (`["isola", "image", "ls"]`).
fn sub_command<'a>(cmd: &'a Command, path: &[String]) -> &'a Command {
    let mut cur = cmd;
    for name in path.iter().skip(1) {
        match cur.find_subcommand(name) {
            Some(s) => cur = s,
            None => break,
        }
    }
    cur
}

/// The words of `args` that name (sub)commands, canonical names, program
/// first: `isola --root /r container ls -a` → `["isola", "container", "ls"]`.
/// Options of each level are skipped, with their values.
pub fn command_path(cmd: &Command, args: &[String]) -> Vec<String> {
    let mut path = vec![cmd.get_name().to_string()];
    let mut cur = cmd;
    let mut globals: Vec<&clap::Arg> = Vec::new();
    let mut words = args.iter().skip(1);
    while let Some(w) = words.next() {
        if w == "--" {
            break;
        }
        globals.extend(cur.get_arguments().filter(|a| a.is_global_set()));
        if let Some(long) = w.strip_prefix("--") {
            if long.contains('=') {
                continue;
            }
            let takes_value = cur
                .get_arguments()
                .chain(globals.iter().copied())
                .find(|a| a.get_long() == Some(long))
                .is_some_and(|a| a.get_action().takes_values());
            if takes_value {
                words.next();
            }
            continue;
        }
        if w.starts_with('-') {
            continue;
        }
        match cur.find_subcommand(w) {
            Some(s) => {
                path.push(s.get_name().to_string());
                cur = s;
            }
            None => break,
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd() -> Command {
        Command::new("isola")
            .arg(clap::Arg::new("root").long("root").global(true))
            .subcommand(
                Command::new("image").subcommand(
                    Command::new("ls").alias("list").arg(
                        clap::Arg::new("all")
                            .short('a')
                            .action(clap::ArgAction::SetTrue),
                    ),
                ),
            )
            .subcommand(
                Command::new("tag")
                    .arg(clap::Arg::new("source").required(true))
                    .arg(clap::Arg::new("target").required(true)),
            )
    }

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn the_command_path_skips_options_and_their_values() {
        let c = cmd();
        assert_eq!(
            command_path(&c, &words("isola --root image image list -a")),
            ["isola", "image", "ls"]
        );
        assert_eq!(command_path(&c, &words("isola tag a b")), ["isola", "tag"]);
        assert_eq!(command_path(&c, &words("isola nope")), ["isola"]);
    }

    #[test]
    fn arity_reads_like_docker() {
        let c = cmd();
        assert_eq!(
            arity(c.find_subcommand("tag").unwrap(), "isola tag"),
            "\"isola tag\" requires exactly 2 arguments."
        );
        assert_eq!(
            arity(c.find_subcommand("image").unwrap(), "isola image"),
            "\"isola image\" accepts no arguments."
        );
    }
}
